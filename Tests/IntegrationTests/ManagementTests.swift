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

        /// A Center on loopback (SQLite) whose repository holds kit v1, with a work and a personal
        /// VM on its stable channel assigned to alice.
        final class Scenario: @unchecked Sendable {
            let root = "/tmp/hm-\(UUID().uuidString.prefix(6).lowercased())"
            let clock = Clock()
            let kit: GuestKit
            let centerFolder: URL
            let port = ManagementTests.freePort()
            var running: RunningCenter
            let owner: Admin
            let publisher: Publisher
            var base: String { "https://127.0.0.1:\(port)" }
            var caPEM: String { running.center.ca.pem }

            init() async throws {
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
                kit = try BootTests.kit()
                centerFolder = URL(fileURLWithPath: "\(root)/center")
                let (running, first) = try await ManagementTests.startCenter(centerFolder, port: port, clock: clock)
                self.running = running
                let base = "https://127.0.0.1:\(port)", caPEM = running.center.ca.pem
                let password = try #require(first.ownerPassword)
                let once = try await Admin(base: base, caPEM: caPEM).login("owner", password)
                try await once.call(.POST, "/api/v1/me/password", ["current": password, "new": "owner-password-1"])
                owner = try await once.login("owner", "owner-password-1")
                publisher = Publisher(repository: centerFolder.appendingPathComponent("repository"),
                                      keys: KeyStore(directory: URL(fileURLWithPath: "\(root)/keys")))
                _ = try publisher.initialize()
                try publisher.publish(disk: kit.rootDisk, name: "kit", version: "1")
                try await owner.call(.POST, "/api/v1/images", ["name": "kit"])
                try await owner.call(.POST, "/api/v1/images/kit/versions", ["version": "1"])
                try await owner.call(.PUT, "/api/v1/images/kit/channels/stable", ["version": "1"])
                try await owner.call(.POST, "/api/v1/users", ["username": "alice"])
                for (name, role, network) in [("work", "work", "none"), ("personal", "personal", "internet")] {
                    _ = try await AdminClient(center: base, caPEM: caPEM, token: owner.token).send(.POST, "/api/v1/vms", json: VMBody(
                        name: name, role: role, image: "kit", cpus: 1, memoryMiB: 256, localDiskBytes: 32 << 20, userDiskBytes: 64 << 20, network: network))
                    try await owner.call(.PUT, "/api/v1/vms/\(name)/assignments/user/alice")
                }
            }

            func enrollmentToken() async throws -> String {
                try #require(try await owner.call(.POST, "/api/v1/enrollment-tokens", ["user": "alice"])["secret"] as? String)
            }

            /// kit v2: the same disk with another /etc/hearth-release; returns its path.
            @discardableResult
            func publishV2() throws -> String {
                let v2Disk = "\(root)/v2.img"
                try FileManager.default.copyItem(atPath: kit.rootDisk, toPath: v2Disk)
                try GuestKit.writeFile(Data("kit-v2\n".utf8), to: "/etc/hearth-release", inDisk: v2Disk)
                try publisher.publish(disk: v2Disk, name: "kit", version: "2")
                return v2Disk
            }

            func promoteV2() async throws {
                try await owner.call(.POST, "/api/v1/images/kit/versions", ["version": "2"])
                try await owner.call(.PUT, "/api/v1/images/kit/channels/stable", ["version": "2"])
            }

            func restartCenter() async throws {
                running = try await ManagementTests.startCenter(centerFolder, port: port, clock: clock).0
            }

            /// Stops the Center and whatever runs under the root, and removes it.
            func finish() async {
                await running.shutdown()
                for pid in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init) {
                    if let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                       String(decoding: cmdline, as: UTF8.self).contains("\(root)/") {
                        kill(pid, SIGKILL)
                    }
                }
                try? FileManager.default.removeItem(atPath: root)
            }
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
            let scenario = try await Scenario()
            let root = scenario.root, clock = scenario.clock, kit = scenario.kit, base = scenario.base, caPEM = scenario.caPEM
            var owner = scenario.owner
            let layout = EngineLayout(root: "\(root)/e")
            var engine: Engine?
            do {
                let token = try await scenario.enrollmentToken()

                // The Engine enrolls and checks in: it pulls kit v1 and boots both VMs, each with a
                // probe that writes on its disks the first time and reads afterwards.
                let probes = "\(root)/probes"
                try FileManager.default.createDirectory(atPath: probes, withIntermediateDirectories: true)
                func probe(_ mode: String) throws {
                    for vm in ["work", "personal"] {
                        try (GuestKit.probeMountingEngineDisks + """
                        [ "\(mode)" = write ] && echo "user-\(vm)" > /mnt/user/probe.txt
                        echo "user=$(cat /mnt/user/probe.txt 2>/dev/null || echo none)"
                        echo "release=$(cat /etc/hearth-release)"
                        umount /mnt/local /mnt/user
                        sync
                        """).write(toFile: "\(probes)/\(vm).sh", atomically: true, encoding: .utf8)
                    }
                }
                try probe("write")
                let boot = GuestBoot(kernel: kit.kernel, initrd: kit.initramfs, commandLine: "console=ttyS0 loglevel=4 panic=-1 hearth.root=system",
                                     bootMarker: GuestKit.bootMarker, bootTimeout: BootTests.bootTimeout)
                let theEngine = try Engine(layout: layout, boot: boot, accelerator: AcceleratorProbe.probe().accelerator,
                                           security: SecurityZone(mode: .insecureDevelopment, root: layout.root))
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
                try scenario.publishV2()
                try await scenario.promoteV2()
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

                // Diagnostics: the Engine uploads its logs; the admin reads the work VM's console
                // there, and nothing of the device's identity.
                let ask = try await AdminClient(center: base, caPEM: caPEM, token: owner.token)
                    .send(.POST, "/api/v1/devices/\(deviceID)/commands", json: ["kind": "collectDiagnostics"])
                let askID = try #require((try JSONSerialization.jsonObject(with: ask) as? [String: Any])?["id"] as? String)
                try await zone.checkIn()
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                let diagnostics = try decoder.decode(DiagnosticsRecord.self, from: try await AdminClient(center: base, caPEM: caPEM, token: owner.token)
                    .send(.GET, "/api/v1/commands/\(askID)/diagnostics"))
                #expect(diagnostics.bundle.files.contains { $0.path == layout.vm("work").consoleLog && $0.text.contains(GuestKit.bootMarker) })
                #expect(diagnostics.bundle.summary.contains("vm work (work): running"), "\(diagnostics.bundle.summary)")
                #expect(!diagnostics.bundle.files.contains { $0.path.contains("/identity") })

                // The Center goes away: the VMs keep running and restart within the lease.
                await scenario.running.shutdown()
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
                try await scenario.restartCenter()
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
                await scenario.finish()
                throw error
            }
            if let engine { for name in ["work", "personal"] { try? await engine.stop(name) } }
            await scenario.finish()
        }

        /// `hearth engine run` as a real process, killed with SIGKILL at 50 random moments while it
        /// enrolls (an enrollment cut after the Center spent the token resumes), pulls (slowed by a bandwidth limit), starts VMs and takes a new version; every
        /// restart carries on, and in the end it has converged: whole images, the VMs running
        /// once each, their disks consistent.
        @Test func killedAtFiftyRandomMomentsTheEngineConverges() async throws {
            let scenario = try await Scenario()
            let root = scenario.root
            do {
                let engineRoot = "\(root)/e"
                try scenario.caPEM.write(toFile: "\(root)/ca.pem", atomically: true, encoding: .utf8)
                FileManager.default.createFile(atPath: "\(root)/token", contents: Data(try await scenario.enrollmentToken().utf8),
                                               attributes: [.posixPermissions: 0o600])
                let arguments = ["engine", "run", "--root", engineRoot, "--center", scenario.base, "--center-ca", "\(root)/ca.pem",
                                 "--enroll-token-file", "\(root)/token", "--bandwidth-limit", "1000000", "--insecure-no-tpm"]
                FileManager.default.createFile(atPath: "\(root)/engine.log", contents: nil)
                let log = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(root)/engine.log"))
                func launch() throws -> Process {
                    let process = Process()
                    process.executableURL = EngineDaemonTests.hearth
                    process.arguments = arguments
                    process.standardOutput = log
                    process.standardError = log
                    try process.run()
                    return process
                }
                var delays: [Int] = []
                for round in 0..<50 {
                    if round == 20 {
                        try scenario.publishV2()
                        try await scenario.promoteV2()
                    }
                    let process = try launch()
                    let delay = Int.random(in: 100...2500)
                    delays.append(delay)
                    try await Task.sleep(for: .milliseconds(delay))
                    kill(process.processIdentifier, SIGKILL)
                    process.waitUntilExit()
                }

                // Left to run: it converges.
                let last = try launch()
                defer { kill(last.processIdentifier, SIGTERM) }
                let layout = EngineLayout(root: engineRoot)
                let deadline = ContinuousClock.now + .seconds(240)
                var vms: [VMStatus] = []
                while ContinuousClock.now < deadline {
                    vms = (try? ControlClient.send(ControlRequest(action: .list), to: "\(engineRoot)/control.sock"))?.vms ?? []
                    let images = FileManager.default.fileExists(atPath: layout.imageDisk(.init(name: "kit", version: "2")))
                    if images, vms.count == 2, vms.allSatisfy({ $0.phase == .running }) { break }
                    try await Task.sleep(for: .milliseconds(500))
                }
                let engineLog = (try? String(contentsOfFile: "\(root)/engine.log", encoding: .utf8)) ?? ""
                #expect(vms.map(\.phase) == [.running, .running], "kill delays (ms) \(delays); \(vms); log: \(engineLog.suffix(3000))")
                // Whole images, byte for byte what was published. (v1 is there only if its pull
                // ended before v2 replaced it in the desired state.)
                if let v1 = FileManager.default.contents(atPath: layout.imageDisk(.init(name: "kit", version: "1"))) {
                    #expect(v1 == FileManager.default.contents(atPath: scenario.kit.rootDisk))
                }
                #expect(FileManager.default.contents(atPath: layout.imageDisk(.init(name: "kit", version: "2"))) == FileManager.default.contents(atPath: "\(root)/v2.img"))
                // One QEMU per VM, however many Engines were killed while starting them.
                let qemus = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
                    guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
                    let text = String(decoding: cmdline, as: UTF8.self)
                    return text.contains("qemu-system") && text.contains("\(engineRoot)/") && Engine.isAlive(pid)
                }
                #expect(qemus.count == 2, "QEMU processes: \(qemus)")
                // Every persistent disk is consistent.
                for vm in ["work", "personal"] {
                    for disk in [layout.vm(vm).localDisk, layout.vm(vm).userDisk] {
                        let check = Process()
                        check.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
                        check.arguments = ["check", "-U", disk]
                        check.standardOutput = FileHandle.nullDevice
                        check.standardError = FileHandle.nullDevice
                        try check.run()
                        check.waitUntilExit()
                        #expect(check.terminationStatus == 0, "qemu-img check \(disk)")
                    }
                }
                // The Center heard from it.
                let devices = try #require(try await scenario.owner.call(.GET, "/api/v1/devices")["list"] as? [[String: Any]])
                #expect(devices.count == 1 && devices.first?["lastCheckIn"] != nil)
            } catch {
                await scenario.finish()
                throw error
            }
            await scenario.finish()
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

/// An Engine that lost the Center's answer to its enrollment (cut off, or killed before it kept
/// it) enrolls again with the same token; nobody else can.
@Suite struct EnrollmentResumeTests {
    @Test func anEnrollmentWhoseAnswerWasLostResumesWithTheSameKeyOnlyAndTheCertificateIsRenewedBeforeItExpires() async throws {
        let root = "/tmp/her-\(UUID().uuidString.prefix(6).lowercased())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let clock = VMSuites.ManagementTests.Clock()
        let (running, first) = try await VMSuites.ManagementTests.startCenter(URL(fileURLWithPath: "\(root)/center"), port: 0, clock: clock)
        let base = "https://127.0.0.1:\(running.port)", caPEM = running.center.ca.pem
        do {
            let once = try await VMSuites.ManagementTests.Admin(base: base, caPEM: caPEM).login("owner", try #require(first.ownerPassword))
            try await once.call(.POST, "/api/v1/me/password", ["current": try #require(first.ownerPassword), "new": "owner-password-1"])
            let owner = try await once.login("owner", "owner-password-1")
            let token = try #require(try await owner.call(.POST, "/api/v1/enrollment-tokens", [:])["secret"] as? String)
            let layout = EngineLayout(root: "\(root)/e")

            // The Engine keeps its key, the request goes out, the Center spends the token, and
            // the answer never arrives (here: it is dropped).
            let key = try EngineIdentity.pendingKey(layout)
            let keptKey = try #require(FileManager.default.contents(atPath: "\(EngineIdentity.pendingFolder(layout))/device.key"))
            let client = try CenterClient(center: base, caPEM: caPEM, identity: nil)
            let lost = try await client.enroll(EnrollRequest(token: token, csr: try EngineIdentity.certificateRequest(key: key, deviceName: "laptop"), name: "laptop"))
            await client.shutdown()

            // Another Engine with the same token and its own key: refused.
            await #expect { _ = try await EngineIdentity.enroll(center: base, caPEM: caPEM, token: token, deviceName: "thief", layout: EngineLayout(root: "\(root)/other")) }
                throws: { "\($0)".contains("already used") }
            // The same Engine, started again: enrolled as the same device, the pending key gone.
            let (identity, files) = try await EngineIdentity.enroll(center: base, caPEM: caPEM, token: token, deviceName: "laptop", layout: layout)
            #expect(identity.deviceID == lost.deviceID)
            #expect(Data(files.keyPEM.utf8) == keptKey)
            #expect(!FileManager.default.fileExists(atPath: EngineIdentity.pendingFolder(layout)))
            let kit = try VMSuites.BootTests.kit()
            let boot = GuestBoot(kernel: kit.kernel, initrd: kit.initramfs, commandLine: "console=ttyS0", bootMarker: GuestKit.bootMarker)
            let zone = try await ManagementZone(engine: try Engine(layout: layout, boot: boot, accelerator: .tcg, security: SecurityZone(mode: .insecureDevelopment, root: layout.root)), identity: identity, files: files)
            try await zone.checkIn()
            let devices = try #require(try await owner.call(.GET, "/api/v1/devices")["list"] as? [[String: Any]])
            #expect(devices.count == 1 && devices.first?["lastCheckIn"] != nil)

            // Eleven months on (the Engine's clock; certificates run a year), the check-in
            // renews the certificate first, keeps it on disk, and calls with it.
            var later = ManagementZone.Options()
            later.now = { Date().addingTimeInterval(336 * 86_400) }
            let aged = try await ManagementZone(engine: zone.engine, identity: identity, files: files, options: later)
            try await aged.checkIn()
            let kept = try #require(try EngineIdentity.load(layout)?.1)
            #expect(kept.certificatePEM != files.certificatePEM && kept.keyPEM == files.keyPEM)
            let renewals = try #require(try await owner.call(.GET, "/api/v1/audit?action=device.certificate.renew")["list"] as? [[String: Any]])
            #expect(renewals.count == 1)
            // The next check-in goes out on the renewed certificate's client.
            try await aged.checkIn()
        } catch {
            await running.shutdown()
            throw error
        }
        await running.shutdown()
    }
}
