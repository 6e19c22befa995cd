import Foundation
import GuestKit
import HearthCLI
import QMP
import Testing

extension VMSuites {
    /// Boots the guest test kit under real QEMU (TCG where KVM cannot run guests). Serialized: each
    /// test runs a VM, and two TCG guests at once on two cores only make both slow.
    @Suite struct BootTests {
        static let bootTimeout: Duration = .seconds(180)

        /// Prepared once per test run: resolving the packages with apt takes a few seconds.
        static let preparedKit = Result { try GuestKit.prepare().kit }

        static func kit() throws -> GuestKit {
            try preparedKit.get()
        }

        static func runDirectory() throws -> String {
            let path = "/tmp/hearth-it-\(UUID().uuidString.prefix(8).lowercased())"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            return path
        }

        static func isGone(_ pid: Int32) -> Bool {
            kill(pid, 0) == -1 && errno == ESRCH
        }

        @Test func bootsTheKitRunsAProbeOnASecondDiskAndShutsDownCleanly() async throws {
            let kit = try Self.kit()
            let run = try Self.runDirectory()
            defer { try? FileManager.default.removeItem(atPath: run) }
            let rootBefore = try #require(FileManager.default.contents(atPath: kit.rootDisk))
            let dataDisk = "\(run)/data.img"
            try GuestKit.makeDataDisk(at: dataDisk)
            let probe = """
            set -e
            disk=$(hearth-disk data)
            mkdir -p /mnt/data
            mount -t ext4 "$disk" /mnt/data
            echo "probe-$(cat /proc/sys/kernel/random/uuid)" > /mnt/data/result.txt
            sync
            cat /mnt/data/result.txt
            echo "root is $(grep ' / ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)"
            umount /mnt/data
            """
            let vm = KitVM(kit: kit, runDirectory: run, name: "it-boot", accelerator: AcceleratorProbe.probe().accelerator,
                           disks: [.init(name: "data", path: dataDisk)], probe: probe)
            let process = try QEMUProcess.launch(try vm.prepare(), stderrLog: vm.qemuLog)
            let qmp = try await process.connectQMP()
            do {
                let status = try await qmp.execute("query-status", returning: QMPStatus.self)
                #expect(status.running)

                let bootTime = try await process.waitForConsole(containing: GuestKit.bootMarker, timeout: Self.bootTimeout)
                print("boot-to-marker: \(bootTime) (accelerator \(vm.accelerator.rawValue))")

                let report = try await vm.waitForProbe(in: process, timeout: .seconds(60))
                #expect(report.status == 0, "probe output: \(report.lines)")
                let written = try #require(report.lines.first)
                #expect(written.hasPrefix("probe-"))
                #expect(report.lines.contains("root is ro"), "the kit's root disk must be mounted read-only")

                let outcome = await process.shutdown(qmp: qmp, grace: .seconds(30))
                #expect(outcome == .guestPoweredOff)
                var shutdownReason: String?
                for await event in qmp.events where event.event == "SHUTDOWN" {
                    shutdownReason = event.data?["reason"]?.stringValue
                }
                #expect(shutdownReason == "guest-shutdown")
                #expect(Self.isGone(process.pid))

                let onDisk = try GuestKit.readFile("/result.txt", fromDisk: dataDisk).map { String(decoding: $0, as: UTF8.self) }
                #expect(onDisk == written + "\n")
                #expect(FileManager.default.contents(atPath: kit.rootDisk) == rootBefore, "the kit's root disk was written")
            } catch {
                await process.kill()
                throw error
            }
            await qmp.close()
        }

        @Test func aGuestThatNeverPrintsTheMarkerTimesOutAndLeavesNoQEMU() async throws {
            let run = try Self.runDirectory()
            defer { try? FileManager.default.removeItem(atPath: run) }
            let vm = KitVM(kit: try Self.kit(), runDirectory: run, name: "it-silent", accelerator: AcceleratorProbe.probe().accelerator)
            let process = try QEMUProcess.launch(try vm.prepare(), stderrLog: vm.qemuLog)
            let qmp = try await process.connectQMP()
            await #expect(throws: QEMUError.consoleTimeout(expected: "A-MARKER-NO-GUEST-PRINTS", seconds: 3, consoleLog: vm.consoleLog)) {
                try await process.waitForConsole(containing: "A-MARKER-NO-GUEST-PRINTS", timeout: .seconds(3))
            }
            #expect(Self.isGone(process.pid))
            #expect(process.exitCode != nil)
            await qmp.close()
        }

        /// A daemon blocks the signals it waits for (libdispatch's signal sources do) and a child
        /// inherits the mask: QEMU must still stop on SIGTERM, as at a system shutdown.
        @Test func qemuStopsOnSIGTERMEvenWhenItsLauncherBlocksIt() async throws {
            let run = try Self.runDirectory()
            defer { try? FileManager.default.removeItem(atPath: run) }
            let vm = KitVM(kit: try Self.kit(), runDirectory: run, name: "it-sigterm", accelerator: AcceleratorProbe.probe().accelerator)
            let configuration = try vm.prepare()
            var blocked = sigset_t(), previous = sigset_t()
            sigemptyset(&blocked)
            sigaddset(&blocked, SIGTERM)
            pthread_sigmask(SIG_BLOCK, &blocked, &previous)
            let launched = Result { try QEMUProcess.launch(configuration, stderrLog: vm.qemuLog) }
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            let process = try launched.get()
            let qmp = try await process.connectQMP()
            kill(process.pid, SIGTERM)
            let status = await process.waitForExit(timeout: .seconds(60))
            if status == nil { await process.kill() }
            #expect(status != nil, "QEMU did not stop on SIGTERM")
            await qmp.close()
        }

        @Test func aMissingQEMUIsNamedWithTheRemedy() throws {
            let run = try Self.runDirectory()
            defer { try? FileManager.default.removeItem(atPath: run) }
            let vm = KitVM(kit: try Self.kit(), runDirectory: run, name: "it-missing", accelerator: .tcg)
            let configuration = try vm.prepare()
            #expect(throws: QEMUError.executableNotFound("qemu-system-hearth-none")) {
                try QEMUProcess.launch(configuration, executable: "qemu-system-hearth-none", stderrLog: vm.qemuLog)
            }
            #expect(QEMUError.executableNotFound("qemu-system-x86_64").description.contains("apt-get install qemu-system-x86"))
        }

        @Test func aQMPSocketThatNeverAppearsTimesOutAndTheProcessIsStopped() async throws {
            let run = try Self.runDirectory()
            defer { try? FileManager.default.removeItem(atPath: run) }
            // Something that runs like QEMU but never opens its monitor.
            let impostor = "\(run)/qemu-impostor"
            try "#!/bin/sh\nexec sleep 600\n".write(toFile: impostor, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: impostor)
            let vm = KitVM(kit: try Self.kit(), runDirectory: run, name: "it-nosocket", accelerator: .tcg)
            let configuration = try vm.prepare()
            let process = try QEMUProcess.launch(configuration, executable: impostor, stderrLog: vm.qemuLog)
            await #expect(throws: QEMUError.qmpSocketTimeout(path: configuration.qmpSocket, seconds: 2, stderrLog: vm.qemuLog)) {
                _ = try await process.connectQMP(timeout: .seconds(2))
            }
            #expect(Self.isGone(process.pid))
        }

        @Test func aQEMUThatRefusesItsConfigurationIsReportedInItsOwnWords() async throws {
            let run = try Self.runDirectory()
            defer { try? FileManager.default.removeItem(atPath: run) }
            let vm = KitVM(kit: try Self.kit(), runDirectory: run, name: "it-nodisk", accelerator: .tcg,
                           disks: [.init(name: "gone", path: "\(run)/does-not-exist.img")])
            let process = try QEMUProcess.launch(try vm.prepare(), stderrLog: vm.qemuLog)
            do {
                _ = try await process.connectQMP(timeout: .seconds(30))
                Issue.record("QEMU started with a disk that does not exist")
                await process.kill()
            } catch let error as QEMUError {
                guard case .exitedEarly(let status, let detail, _) = error else {
                    Issue.record("expected exitedEarly, got \(error)")
                    return
                }
                #expect(status != 0)
                #expect(detail.contains("does-not-exist.img"))
            }
        }

        @Test func theKitIsReusedFromTheCacheUntilItsInputsChange() throws {
            let first = try GuestKit.prepare()
            let second = try GuestKit.prepare()
            #expect(second.provenance == .cached)
            #expect(second.kit == first.kit)
            #expect(second.kit.release.hasPrefix("guest-kit-"))
        }

        @Test func anUnfetchableKernelPackageIsNamed() throws {
            let error = #expect(throws: GuestKitError.self) {
                _ = try GuestKit.prepare(kernelMetapackage: "linux-image-hearth-no-such-package")
            }
            #expect(error == .packageNotFound(package: "linux-image-hearth-no-such-package"))
            #expect(error?.description.contains("apt-get update") == true)
        }

        /// `hearth demo` as a user runs it: the command's exit status and its refusal of a work
        /// folder that is not empty. (MainJobTests checks each step's outcome.)
        @Test func theDemoCommandExitsCleanlyAndRefusesAFolderInUse() throws {
            let binDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            let hearth = binDirectory.appendingPathComponent("hearth")
            try #require(FileManager.default.isExecutableFile(atPath: hearth.path), "build the hearth product first (scripts/test does)")
            func demo(_ arguments: [String]) throws -> (Int32, String) {
                let process = Process()
                process.executableURL = hearth
                process.arguments = ["demo", "--fast"] + arguments
                let output = Pipe()
                process.standardOutput = output
                process.standardError = output
                try process.run()
                let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                return (process.terminationStatus, printed)
            }
            let (status, printed) = try demo([])
            #expect(status == 0, "hearth demo failed:\n\(printed)")
            let folder = "/tmp/hdemo-\(UUID().uuidString.prefix(6).lowercased())"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            FileManager.default.createFile(atPath: "\(folder)/something", contents: Data())
            let (refused, message) = try demo(["--work-dir", folder])
            #expect(refused != 0 && message.contains("not empty"), "\(refused): \(message)")
        }
    }
}
