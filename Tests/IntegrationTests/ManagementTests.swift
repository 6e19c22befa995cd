import Foundation
import GuestKit
import HearthCenter
@testable import HearthCLI
import HearthCore
@testable import HearthEngine
import ImageSync
import Logging
import NIOConcurrencyHelpers
import NIOHTTP1
import QMP
import Testing

extension VMSuites {
    /// The management zone against a real Center on loopback (SQLite) with real QEMU guests: the
    /// Engine enrolls, runs what the admin assigns, updates by delta, keeps its lease offline and
    /// obeys a wipe.
    @Suite struct ManagementTests {
        /// The clock of both the Center and the Engine, moved by the test.
        final class Clock: @unchecked Sendable {
            private let box = NIOLockedValueBox(Date())
            var now: Date {
                get { box.withLockedValue { $0 } }
                set { box.withLockedValue { $0 = newValue } }
            }
        }

        /// A Center's admin API as `hearth admin` calls it.
        struct Admin {
            let base: String
            let caPEM: String
            var token: String?

            @discardableResult
            func call(_ method: HTTPMethod, _ path: String, _ body: [String: String]? = nil) async throws -> [String: Any] {
                let data = try await AdminClient(center: base, caPEM: caPEM, token: token).send(method, path, json: body)
                return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? ["list": (try? JSONSerialization.jsonObject(with: data)) ?? []]
            }

            func login(_ username: String, _ password: String) async throws -> Admin {
                let answer = try await call(.POST, "/api/v1/session", ["username": username, "password": password])
                return Admin(base: base, caPEM: caPEM, token: try #require(answer["token"] as? String))
            }
        }

        static func startCenter(_ folder: URL, port: Int, clock: Clock) async throws -> (RunningCenter, FirstStart) {
            var configuration = CenterConfiguration(dataDirectory: folder)
            configuration.port = port
            configuration.passwordCost = 4
            configuration.now = { clock.now }
            var logger = Logger(label: "test.center")
            logger.logLevel = .warning
            let (center, first) = try await Center.prepare(configuration, logger: logger)
            return (try await center.start(), first)
        }

        /// What the probe printed in this boot of `vm`.
        static func report(_ layout: EngineLayout, _ vm: String) async throws -> [String: String] {
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline {
                if let report = ProbeReport.parse(console: ConsoleLog(path: layout.vm(vm).consoleLog).contents()) {
                    #expect(report.status == 0, "probe in \(vm): \(report.lines)")
                    return Dictionary(report.lines.compactMap { line in
                        let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                        return parts.count == 2 ? (parts[0], parts[1]) : nil
                    }, uniquingKeysWith: { $1 })
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw EngineTests.OracleTimeout(vm: vm)
        }

        @Test func anEnrolledEngineConvergesUpdatesByDeltaKeepsItsLeaseAndObeysAWipe() async throws {
            let root = "/tmp/hm-\(UUID().uuidString.prefix(6).lowercased())"
            let clock = Clock()
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let kit = try BootTests.kit()
            let centerFolder = URL(fileURLWithPath: "\(root)/center")
            let port = Self.freePort()
            var (running, first) = try await Self.startCenter(centerFolder, port: port, clock: clock)
            let layout = EngineLayout(root: "\(root)/e")
            var engine: Engine?
            defer {
                // Whatever a failed test left running under this root is stopped with it.
                for pid in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init) {
                    if let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                       String(decoding: cmdline, as: UTF8.self).contains("\(root)/") {
                        kill(pid, SIGKILL)
                    }
                }
                try? FileManager.default.removeItem(atPath: root)
            }
            do {
                let base = "https://127.0.0.1:\(port)"
                let caPEM = running.center.ca.pem
                var owner = try await Admin(base: base, caPEM: caPEM).login("owner", try #require(first.ownerPassword))
                try await owner.call(.POST, "/api/v1/me/password", ["current": try #require(first.ownerPassword), "new": "owner-password-1"])
                owner = try await owner.login("owner", "owner-password-1")

                // The admin publishes kit v1 into the Center's repository and assigns a work and a
                // personal VM on its stable channel to alice.
                let publisher = Publisher(repository: centerFolder.appendingPathComponent("repository"),
                                          keys: KeyStore(directory: URL(fileURLWithPath: "\(root)/keys")))
                _ = try publisher.initialize()
                try publisher.publish(disk: kit.rootDisk, name: "kit", version: "1")
                try await owner.call(.POST, "/api/v1/images", ["name": "kit"])
                try await owner.call(.POST, "/api/v1/images/kit/versions", ["version": "1"])
                try await owner.call(.PUT, "/api/v1/images/kit/channels/stable", ["version": "1"])
                try await owner.call(.POST, "/api/v1/users", ["username": "alice"])
                for (name, role, network) in [("work", "work", "none"), ("personal", "personal", "internet")] {
                    let data = try await AdminClient(center: base, caPEM: caPEM, token: owner.token).send(.POST, "/api/v1/vms", json: VMBody(
                        name: name, role: role, image: "kit", cpus: 1, memoryMiB: 256, localDiskBytes: 32 << 20, userDiskBytes: 64 << 20, network: network))
                    #expect(!data.isEmpty)
                    try await owner.call(.PUT, "/api/v1/vms/\(name)/assignments/user/alice")
                }
                let token = try #require(try await owner.call(.POST, "/api/v1/enrollment-tokens", ["user": "alice"])["secret"] as? String)

                // The Engine enrolls and checks in: it pulls kit v1 and boots both VMs, each with a
                // probe that writes on its disks the first time and reads afterwards.
                let probes = "\(root)/probes"
                try FileManager.default.createDirectory(atPath: probes, withIntermediateDirectories: true)
                func probe(_ mode: String) throws {
                    for vm in ["work", "personal"] {
                        try """
                        for disk in local user; do
                            dev=$(hearth-disk $disk)
                            mkdir -p /mnt/$disk
                            mount -t ext2 $dev /mnt/$disk 2>/dev/null || { mke2fs -q $dev && mount -t ext2 $dev /mnt/$disk; }
                        done
                        [ "\(mode)" = write ] && echo "user-\(vm)" > /mnt/user/probe.txt
                        echo "user=$(cat /mnt/user/probe.txt 2>/dev/null || echo none)"
                        echo "release=$(cat /etc/hearth-release)"
                        umount /mnt/local /mnt/user
                        sync
                        """.write(toFile: "\(probes)/\(vm).sh", atomically: true, encoding: .utf8)
                    }
                }
                try probe("write")
                let boot = GuestBoot(kernel: kit.kernel, initrd: kit.initramfs, commandLine: "console=ttyS0 loglevel=4 panic=-1 hearth.root=system",
                                     bootMarker: GuestKit.bootMarker, bootTimeout: BootTests.bootTimeout)
                let theEngine = try Engine(layout: layout, boot: boot, accelerator: AcceleratorProbe.probe().accelerator)
                engine = theEngine
                await theEngine.setFirmwareProvider { definition in
                    [.init(name: GuestKit.probeFirmwareName, path: "\(probes)/\(definition.name).sh")]
                }
                let (identity, files) = try await EngineIdentity.enroll(center: base, caPEM: caPEM, token: token, deviceName: "alice-laptop", layout: layout)
                #expect(identity.userID != nil)
                await #expect(throws: ManagementError.self) {
                    _ = try await EngineIdentity.enroll(center: base, caPEM: caPEM, token: token, deviceName: "again", layout: EngineLayout(root: "\(root)/e2"))
                }
                var options = ManagementZone.Options()
                options.now = { clock.now }
                let zone = try await ManagementZone(engine: theEngine, identity: identity, files: files, options: options)
                let firstAnswer = try await zone.checkIn()
                #expect(firstAnswer.vms.map(\.definition.name).sorted() == ["personal", "work"])
                await zone.waitForPulls()
                var vms = try await theEngine.status()
                #expect(vms.map(\.phase) == [.running, .running], "\(vms)")
                #expect(vms.map(\.bootedImage) == ["kit@1", "kit@1"])
                #expect(try await Self.report(layout, "work")["user"] == "user-work")
                #expect(try await Self.report(layout, "personal")["user"] == "user-personal")
                let v1 = try #require(zone.updates.first { $0.image == "kit@1" })
                #expect(v1.state == .ready && v1.bytesFetched > 0)

                // At the next check-in the Center sees the device, its inventory and VMs.
                try await zone.checkIn()
                let devices = try #require(try await owner.call(.GET, "/api/v1/devices")["list"] as? [[String: Any]])
                let status = try #require(devices.first?["status"] as? [String: Any])
                #expect((status["vms"] as? [[String: Any]])?.count == 2)
                #expect(((status["inventory"] as? [String: Any])?["cpus"] as? Int ?? 0) > 0)

                // v2: one file changed. The Engine pulls only the delta; the work VM switches at its
                // next boot, here a restart the admin asks for, and the user's files stay.
                let v2Disk = "\(root)/v2.img"
                try FileManager.default.copyItem(atPath: kit.rootDisk, toPath: v2Disk)
                try "kit-v2\n".write(toFile: "\(root)/release", atomically: true, encoding: .utf8)
                try ExtendBootTests.tool("/usr/sbin/debugfs", ["-w", "-R", "rm /etc/hearth-release", v2Disk])
                try ExtendBootTests.tool("/usr/sbin/debugfs", ["-w", "-R", "write \(root)/release /etc/hearth-release", v2Disk])
                try publisher.publish(disk: v2Disk, name: "kit", version: "2")
                try await owner.call(.POST, "/api/v1/images/kit/versions", ["version": "2"])
                try await owner.call(.PUT, "/api/v1/images/kit/channels/stable", ["version": "2"])
                try await zone.checkIn()
                await zone.waitForPulls()
                let v2 = try #require(zone.updates.first { $0.image == "kit@2" })
                #expect(v2.state == .ready)
                #expect(v2.bytesFetched * 10 < v1.bytesFetched, "v2 fetched \(v2.bytesFetched) bytes, v1 \(v1.bytesFetched): not a delta")
                vms = try await theEngine.status()
                #expect(vms.first { $0.name == "work" }?.bootedImage == "kit@1", "a running VM switches at its next boot, not under the user")
                try probe("read")
                let deviceID = identity.deviceID
                let restart = try await AdminClient(center: base, caPEM: caPEM, token: owner.token)
                    .send(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "restartVM", "vm": "work"])
                let restartID = try #require((try JSONSerialization.jsonObject(with: restart) as? [String: Any])?["id"] as? String)
                try await zone.checkIn()
                let onV2 = try await Self.report(layout, "work")
                #expect(onV2["release"] == "kit-v2" && onV2["user"] == "user-work", "\(onV2)")
                #expect(try await theEngine.status().first { $0.name == "work" }?.bootedImage == "kit@2")
                let commands = try #require(try await owner.call(.GET, "/api/v1/devices/\(deviceID)/commands")["list"] as? [[String: Any]])
                #expect(commands.first { $0["id"] as? String == restartID }?["state"] as? String == "completed")

                // The Center goes away: the VMs keep running and restart within the lease.
                await running.shutdown()
                await #expect(throws: ManagementError.self) { try await zone.checkIn() }
                #expect(try await theEngine.status().map(\.phase) == [.running, .running])
                try await theEngine.restart("work")
                #expect(try await theEngine.status().first { $0.name == "work" }?.phase == .running)

                // Fifteen days offline: the lease (14 days by default) has run out. The work VM
                // refuses to start, and says why; the personal VM still starts.
                clock.now = clock.now.addingTimeInterval(15 * 86400)
                try await theEngine.stop("work")
                await #expect { try await theEngine.start("work") } throws: { "\($0)".contains("lease") }
                let blocked = try await theEngine.status().first { $0.name == "work" }
                #expect(blocked?.phase == .stopped && blocked?.blocked?.contains("lease") == true)
                try await theEngine.restart("personal")
                #expect(try await theEngine.status().first { $0.name == "personal" }?.phase == .running)

                // The Center is back; a check-in renews the lease and the work VM starts again.
                (running, first) = try await Self.startCenter(centerFolder, port: port, clock: clock)
                owner = try await owner.login("owner", "owner-password-1")
                try await zone.checkIn()
                guard case .valid = zone.lease.standing else { throw HarnessError("the lease was not renewed: \(zone.lease.standing)") }
                try await theEngine.start("work")
                #expect(try await theEngine.status().first { $0.name == "work" }?.phase == .running)

                // A wipe, approved by a second admin: the work VM's disks are gone, the device is
                // locked, and the receipt is in the Center's audit log.
                try await AdminClient(center: base, caPEM: caPEM, token: owner.token).send(.POST, "/api/v1/admins", json: [
                    "username": "second", "password": "second-password-1", "role": "operator"])
                var second = try await owner.login("second", "second-password-1")
                try await second.call(.POST, "/api/v1/me/password", ["current": "second-password-1", "new": "second-password-2"])
                second = try await owner.login("second", "second-password-2")
                let wipe = try await AdminClient(center: base, caPEM: caPEM, token: owner.token)
                    .send(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "wipe"])
                let wipeID = try #require((try JSONSerialization.jsonObject(with: wipe) as? [String: Any])?["id"] as? String)
                try await second.call(.POST, "/api/v1/commands/\(wipeID)/approve")
                try await zone.checkIn()
                #expect(!FileManager.default.fileExists(atPath: layout.vm("work").userDisk))
                #expect(FileManager.default.fileExists(atPath: layout.vm("personal").userDisk), "a wipe takes the work VM's disks, not the user's own VM")
                #expect(try await theEngine.status().allSatisfy { $0.phase == .stopped && $0.blocked?.contains("locked") == true })
                let audit = try #require(try await owner.call(.GET, "/api/v1/audit?action=command.completed&target=device:\(deviceID)")["list"] as? [[String: Any]])
                let receipt = try #require(audit.first { ($0["after"] as? String)?.contains(wipeID) == true }?["after"] as? String)
                #expect(receipt.contains("wipedAt") && receipt.contains("user.qcow2"), "\(receipt)")
                // Delivered again (a lost answer): reported again, nothing done twice.
                let before = try #require(try await owner.call(.GET, "/api/v1/audit?target=device:\(deviceID)")["list"] as? [[String: Any]])
                await zone.carryOut(DeviceCommand(id: wipeID, kind: .wipe, vm: nil, issued: Date()))
                let after = try #require(try await owner.call(.GET, "/api/v1/audit?target=device:\(deviceID)")["list"] as? [[String: Any]])
                #expect(after.count == before.count, "a redelivered wipe was carried out or recorded again")
            } catch {
                if let engine { for name in ["work", "personal"] { try? await engine.stop(name) } }
                await running.shutdown()
                throw error
            }
            if let engine { for name in ["work", "personal"] { try? await engine.stop(name) } }
            await running.shutdown()
        }

        struct VMBody: Encodable {
            let name, role, image: String
            let cpus, memoryMiB: Int
            let localDiskBytes, userDiskBytes: UInt64
            let network: String
        }

        struct HarnessError: Error, CustomStringConvertible {
            let description: String
            init(_ description: String) { self.description = description }
        }

        static func freePort() -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            return Int(UInt16(bigEndian: address.sin_port))
        }
    }
}
