import Foundation
import GuestKit
import HearthCore
import HearthEngine
import QMP
import Testing
import VirtualDisk

extension VMSuites {
    /// The Engine runtime with real QEMU guests from the guest kit: work and personal VMs side by
    /// side, each with system, local and user disks.
    @Suite struct EngineTests {
        /// A short root (socket paths are limited to 107 bytes) with images kit@1 and kit@2 (the
        /// same root disk, with another release name), and kit@broken, which cannot boot.
        final class Fixture {
            let root: String
            let layout: EngineLayout
            let kit: GuestKit
            let probes: String

            init() throws {
                root = "/tmp/he-\(UUID().uuidString.prefix(6).lowercased())"
                layout = EngineLayout(root: root)
                kit = try BootTests.kit()
                probes = "\(root)/probes"
                try FileManager.default.createDirectory(atPath: probes, withIntermediateDirectories: true)
                for version in ["1", "2"] {
                    let image = ImageReference(name: "kit", version: version)
                    try FileManager.default.createDirectory(atPath: layout.imageDirectory(image), withIntermediateDirectories: true)
                    try FileManager.default.copyItem(atPath: kit.rootDisk, toPath: layout.imageDisk(image))
                }
                // v2 says so in its boot marker.
                let release = "\(root)/release"
                try "kit-v2\n".write(toFile: release, atomically: true, encoding: .utf8)
                try ExtendBootTests.tool("/usr/sbin/debugfs", ["-w", "-R", "rm /etc/hearth-release", layout.imageDisk(.init(name: "kit", version: "2"))])
                try ExtendBootTests.tool("/usr/sbin/debugfs", ["-w", "-R", "write \(release) /etc/hearth-release", layout.imageDisk(.init(name: "kit", version: "2"))])
                // A broken version: no filesystem at all.
                let broken = ImageReference(name: "kit", version: "broken")
                try FileManager.default.createDirectory(atPath: layout.imageDirectory(broken), withIntermediateDirectories: true)
                try DiskFile.create(path: layout.imageDisk(broken)).truncate(to: 64 << 20)
                chmod(layout.imageDisk(broken), 0o644)
            }

            deinit {
                // Whatever a failed test left running under this root is stopped with it.
                let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
                for pid in processes.compactMap(Int32.init) {
                    if let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                       String(decoding: cmdline, as: UTF8.self).contains("\(root)/") {
                        kill(pid, SIGKILL)
                    }
                }
                try? FileManager.default.removeItem(atPath: root)
            }

            /// Runs `body` with an Engine on this fixture's root, then stops every VM, whether
        /// `body` succeeded or not, and returns the Engine for checks after the stop.
        @discardableResult
        func withEngine(_ definitions: VMDefinitionList, _ body: (Engine) async throws -> Void) async throws -> Engine {
            let engine = try self.engine()
            try await engine.define(definitions)
            do {
                try await body(engine)
            } catch {
                await EngineTests.stopAll(engine)
                throw error
            }
            await EngineTests.stopAll(engine)
            return engine
        }

        func engine() throws -> Engine {
                let boot = GuestBoot(kernel: kit.kernel, initrd: kit.initramfs, commandLine: "console=ttyS0 loglevel=4 panic=-1 hearth.root=system", bootMarker: GuestKit.bootMarker, bootTimeout: BootTests.bootTimeout)
                return try Engine(layout: layout, boot: boot, accelerator: AcceleratorProbe.probe().accelerator,
                                  security: SecurityZone(mode: .insecureDevelopment, root: layout.root))
            }

            func definitions(workImage: String = "1") -> VMDefinitionList {
                VMDefinitionList(vms: [
                    VMDefinition(name: "work", role: .work, image: .init(name: "kit", version: workImage), cpus: 1, memoryMiB: 256, localDiskBytes: 32 << 20, userDiskBytes: 64 << 20),
                    VMDefinition(name: "personal", role: .personal, image: .init(name: "kit", version: "1"), cpus: 1, memoryMiB: 256, localDiskBytes: 32 << 20, userDiskBytes: 64 << 20, network: .internet),
                ])
            }

            /// A probe for `vm`: `write` puts a line on each disk, `read` prints what is there.
            func probe(_ vm: String, _ mode: String) throws -> [QEMUConfiguration.FirmwareFile] {
                let script = GuestKit.probeMountingEngineDisks + """
                if [ "\(mode)" = write ]; then
                    echo "system-\(vm)" > /system-probe.txt
                    echo "local-\(vm)" > /mnt/local/probe.txt
                    echo "user-\(vm)" > /mnt/user/probe.txt
                    sync
                fi
                echo "system=$(cat /system-probe.txt 2>/dev/null || echo none)"
                echo "local=$(cat /mnt/local/probe.txt 2>/dev/null || echo none)"
                echo "user=$(cat /mnt/user/probe.txt 2>/dev/null || echo none)"
                echo "release=$(cat /etc/hearth-release)"
                echo "nics=$(ls /sys/class/net | grep -vc '^lo$')"
                umount /mnt/local /mnt/user
                sync
                """
                let path = "\(probes)/\(vm).sh"
                try script.write(toFile: path, atomically: true, encoding: .utf8)
                return [.init(name: GuestKit.probeFirmwareName, path: path)]
            }

            /// The probe's report from this boot's console.
            func report(_ vm: String) async throws -> [String: String] {
                let log = layout.vm(vm).consoleLog
                let deadline = ContinuousClock.now + .seconds(90)
                while ContinuousClock.now < deadline {
                    if let report = ProbeReport.parse(console: ConsoleLog(path: log).contents()) {
                        #expect(report.status == 0, "probe in \(vm): \(report.lines)")
                        return Dictionary(report.lines.compactMap { line in
                            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                            return parts.count == 2 ? (parts[0], parts[1]) : nil
                        }, uniquingKeysWith: { $1 })
                    }
                    try await Task.sleep(for: .milliseconds(200))
                }
                throw OracleTimeout(vm: vm)
            }
        }

        struct OracleTimeout: Error { var vm: String }

        /// The real user id a process runs as, from /proc.
        static func uid(of pid: Int32) -> UInt32 {
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("Uid:") } ?? ""
            return UInt32(line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first ?? "") ?? 0
        }

        static func stopAll(_ engine: Engine) async {
            for name in ["work", "personal"] { try? await engine.stop(name) }
        }

        @Test func workAndPersonalRunSideBySideAndOnlyTheSystemDiskResets() async throws {
            let fixture = try Fixture()
            let engine = try await fixture.withEngine(fixture.definitions()) { engine in
                try await engine.start("work", firmwareFiles: fixture.probe("work", "write"))
                try await engine.start("personal", firmwareFiles: fixture.probe("personal", "write"))
                let running = try await engine.status()
                #expect(running.map(\.phase) == [.running, .running], "\(running)")
                #expect(Set(running.compactMap(\.pid)).count == 2, "one QEMU per VM")
                if getuid() == 0 {
                    // Each QEMU runs as its own user, which cannot read the other VM's disks.
                    let owners = running.compactMap(\.pid).map(Self.uid(of:))
                    #expect(Set(owners).count == 2 && !owners.contains(0), "QEMU users: \(owners)")
                    let workUser = Self.uid(of: try #require(running.first { $0.name == "work" }?.pid))
                    let peek = Process()
                    peek.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
                    peek.arguments = ["--reuid=\(workUser)", "--regid=\(workUser)", "--clear-groups", "/usr/bin/head", "-c", "4", fixture.layout.vm("personal").userDisk]
                    peek.standardOutput = FileHandle.nullDevice
                    peek.standardError = FileHandle.nullDevice
                    try peek.run()
                    peek.waitUntilExit()
                    #expect(peek.terminationStatus != 0, "the work VM's user read the personal VM's user disk")
                }
                let workWrite = try await fixture.report("work")
                let personalWrite = try await fixture.report("personal")
                #expect(workWrite["system"] == "system-work" && workWrite["user"] == "user-work")
                #expect(personalWrite["local"] == "local-personal")
                #expect(workWrite["nics"] == "0", "a VM with network 'none' has no network card")
                #expect(personalWrite["nics"] == "1", "a VM with internet access has one card, behind its own NAT")

                try await engine.restart("work", firmwareFiles: fixture.probe("work", "read"))
                let afterRestart = try await fixture.report("work")
                #expect(afterRestart["system"] == "none", "the system disk must be fresh at every boot")
                #expect(afterRestart["local"] == "local-work")
                #expect(afterRestart["user"] == "user-work")
                #expect(FileManager.default.contents(atPath: fixture.layout.imageDisk(.init(name: "kit", version: "1"))) == FileManager.default.contents(atPath: fixture.kit.rootDisk), "the gold image was written")
            }
            #expect(try await engine.status().map(\.phase) == [.stopped, .stopped])
        }

        @Test func aNewImageBootsWithTheUserDataAndABrokenOneIsRolledBack() async throws {
            let fixture = try Fixture()
            try await fixture.withEngine(fixture.definitions(workImage: "1")) { engine in
                try await engine.start("work", firmwareFiles: fixture.probe("work", "write"))
                _ = try await fixture.report("work")
                try await engine.stop("work")

                // v2 arrives: the VM moves to it at its next boot, and the user's files stay.
                try await engine.define(fixture.definitions(workImage: "2"))
                try await engine.start("work", firmwareFiles: fixture.probe("work", "read"))
                let onV2 = try await fixture.report("work")
                #expect(onV2["release"] == "kit-v2")
                #expect(onV2["user"] == "user-work")
                #expect(try await engine.status().first { $0.name == "work" }?.bootedImage == "kit@2")
                try await engine.stop("work")

                // A version that does not boot: back to v2, with the reason recorded.
                try await engine.define(fixture.definitions(workImage: "broken"))
                try await engine.start("work", firmwareFiles: fixture.probe("work", "read"))
                let status = try #require(try await engine.status().first { $0.name == "work" })
                #expect(status.phase == .running)
                #expect(status.bootedImage == "kit@2")
                #expect(status.rollbackReason?.contains("kit@broken did not boot") == true, "\(status)")
                #expect(try await fixture.report("work")["user"] == "user-work")
            }
        }

        @Test func resettingThePersonalVMLeavesTheWorkVMAloneAndRestorePointsRevert() async throws {
            let fixture = try Fixture()
            try await fixture.withEngine(fixture.definitions()) { engine in
                try await engine.start("work", firmwareFiles: fixture.probe("work", "write"))
                try await engine.start("personal", firmwareFiles: fixture.probe("personal", "write"))
                _ = try await fixture.report("work")
                _ = try await fixture.report("personal")
                try await engine.stop("personal")
                try await engine.snapshot("personal", label: "before-experiment")
                #expect(try await engine.snapshots("personal") == ["before-experiment"])

                // The work VM offers none of this.
                await #expect(throws: EngineError.self) { try await engine.snapshot("work", label: "x") }
                await #expect(throws: EngineError.self) { try await engine.reset("work") }

                // Change the personal VM's files, then go back to the restore point.
                try await engine.start("personal", firmwareFiles: try fixture.probe("personal-2", "write"))
                let changed = try await fixture.report("personal")
                #expect(changed["user"] == "user-personal-2")
                try await engine.stop("personal")
                try await engine.revert("personal", to: "before-experiment")
                try await engine.start("personal", firmwareFiles: fixture.probe("personal", "read"))
                #expect(try await fixture.report("personal")["user"] == "user-personal")
                try await engine.stop("personal")

                try await engine.reset("personal")
                try await engine.start("personal", firmwareFiles: fixture.probe("personal", "read"))
                let fresh = try await fixture.report("personal")
                #expect(fresh["user"] == "none" && fresh["local"] == "none")
                #expect(try await engine.status().first { $0.name == "work" }?.phase == .running, "the work VM kept running")
            }
        }

        @Test func theConsoleAndTheDisplayAreReachable() async throws {
            let fixture = try Fixture()
            let paths = fixture.layout.vm("work")
            try await fixture.withEngine(fixture.definitions()) { engine in
                try await engine.start("work")
                // The display: a VNC server on the VM's socket greets with its protocol version.
                let banner = try Self.firstBytes(ofUnixSocket: paths.vncSocket, count: 12)
                #expect(banner == "RFB 003.008\n")

                // The console: attach, then press the power button; the guest says so on it.
                let console = Process()
                console.executableURL = EngineDaemonTests.hearth
                console.arguments = ["vm", "console", "work", "--root", fixture.root]
                let output = Pipe()
                let input = Pipe()
                console.standardOutput = output
                console.standardInput = input
                try console.run()
                try await Task.sleep(for: .milliseconds(500))
                try await engine.stop("work")
                let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                console.waitUntilExit()
                #expect(printed.contains("attached to work's console"))
                #expect(printed.contains("HEARTH-GUEST: power button pressed"), "console showed: \(printed)")
            }
        }

        static func firstBytes(ofUnixSocket path: String, count: Int) throws -> String {
            let fd = try UnixSocket.connect(path)
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: count)
            let read = recv(fd, &buffer, count, Int32(MSG_WAITALL))
            return String(decoding: buffer.prefix(max(0, read)), as: UTF8.self)
        }

        @Test func anEngineThatDiedFindsItsRunningVMsAgain() async throws {
            let fixture = try Fixture()
            var first: Engine? = try fixture.engine()
            try await first?.define(fixture.definitions())
            try await first?.start("work", firmwareFiles: fixture.probe("work", "write"))
            let pid = try #require(try await first?.status().first { $0.name == "work" }?.pid)
            _ = try await fixture.report("work")
            // The Engine process goes away without stopping anything (as a kill -9 would).
            first = nil

            let second = try fixture.engine()
            try await second.define(fixture.definitions())
            let found = try #require(try await second.status().first { $0.name == "work" })
            #expect(found.phase == .running)
            #expect(found.pid == pid)
            try await second.stop("work")
            #expect(!Engine.isAlive(pid), "the adopted QEMU was stopped")
            #expect(try await second.status().first { $0.name == "work" }?.phase == .stopped)
        }
    }
}
