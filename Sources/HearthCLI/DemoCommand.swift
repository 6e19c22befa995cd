import ArgumentParser
import Foundation
import GuestKit
import QMP

/// `hearth demo`: Hearth's main job on embedded defaults (`MainJob`), narrated step by step.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run Hearth's main job end to end on loopback: a Center, a gold image, an enrolled Engine with two desktops, an update by delta, a lease, a wipe.",
        discussion: """
        Everything runs on this machine: the Center on 127.0.0.1 over HTTPS with SQLite and its own CA, \
        the image repository in the Center's data folder, the Engine with its VMs under QEMU (TCG where \
        KVM cannot run guests). Only the passing of days is simulated, on a clock the Center and the \
        Engine share. Logs go to the work folder; a failing step names itself and where they are.
        """
    )

    @Option(help: "Where kits and downloaded packages are kept.")
    var cacheDir: String = GuestKit.defaultCacheDirectory

    @Option(help: "A new or empty folder for the Center's data, the Engine's root and the logs (default: a new folder under /tmp, removed after a successful run).")
    var workDir: String?

    @Option(help: "auto (KVM where it really works, else TCG), kvm or tcg.")
    var accel: AcceleratorOption = .auto

    @Option(help: "Seconds to wait for a guest to boot.")
    var bootTimeout: Int = 180

    @Flag(help: "Have the Engine check in right after each admin change instead of at its check-in interval (30 s).")
    var fast = false

    @Flag(help: "Leave the Center running afterwards (until Ctrl-C) and print its web console's URL and how to log in.")
    var keep = false

    @Flag(help: "Keep the work folder after a successful run.")
    var keepFiles = false

    enum AcceleratorOption: String, ExpressibleByArgument, CaseIterable {
        case auto, kvm, tcg
    }

    func validate() throws {
        guard (10...3600).contains(bootTimeout) else {
            throw ValidationError("--boot-timeout must be 10 to 3600 seconds")
        }
    }

    func run() async throws {
        let work = try workDir.map(Self.prepare) ?? Self.makeRunDirectory()
        // Only a folder the demo made itself is removed afterwards.
        let removeAfterwards = workDir == nil && !keepFiles && !keep
        let narrator = Narrator(totalSteps: 7)
        print("Hearth demo: a Center, a gold image, an Engine with a work and a personal desktop (files in \(work))")
        let accelerator = chooseAccelerator()
        var options = MainJob.Options(workDirectory: work)
        options.cacheDirectory = cacheDir
        options.accelerator = accelerator
        options.bootTimeout = .seconds(bootTimeout)
        options.fast = fast
        let job = try MainJob(options: options, narrator: narrator)
        // Ctrl-C during the run stops the demo's VMs (an Engine's VMs outlive it by design, a
        // demo's must not); after it, with --keep, it stops the Center.
        let finished = RunState()
        let terminated = Task.detached { await EngineRunCommand.waitForTermination() }
        Task.detached { [work] in
            await terminated.value
            guard !finished.isDone else { return }
            print("\nInterrupted: stopping the demo's VMs; the work folder \(work) is kept.")
            Self.stopProcesses(under: work)
            Foundation.exit(130)
        }
        let outcome: MainJob.Outcome
        do {
            outcome = try await job.run()
        } catch {
            print("The demo stopped at step \(narrator.step) of \(narrator.totalSteps): \(error)")
            print("Logs: \(job.logs). The work folder \(work) is kept.")
            await job.abandon()
            throw ExitCode.failure
        }
        print("Done in \(Narrator.format(narrator.elapsed)).")
        if keep {
            print("""
            The Center keeps running at \(outcome.base) (its clock \(MainJob.leaseDays + 1) days ahead, as the demo left it).
              console: \(outcome.base)/console  (username owner, the password is in \(outcome.passwordFile);
                       the browser warns until it trusts the Center's own CA, \(outcome.caPath))
              or:      hearth admin login --center \(outcome.base) --ca \(outcome.caPath) --username owner < \(outcome.passwordFile)
                       then hearth admin devices; hearth admin audit (HEARTH_ADMIN_SESSION=FILE keeps this session apart from your own)
            Press Ctrl-C to stop it.
            """)
            fflush(nil)
            finished.markDone()
            await terminated.value
        }
        finished.markDone()
        await outcome.finish()
        if removeAfterwards {
            try? FileManager.default.removeItem(atPath: work)
        } else {
            print("Files kept in \(work).")
        }
    }

    private func chooseAccelerator() -> Accelerator {
        let choice = AcceleratorProbe.probe()
        switch accel {
        case .auto:
            if let warning = choice.warning { print(warning) }
            return choice.accelerator
        case .kvm: return .kvm
        case .tcg: return .tcg
        }
    }

    /// A folder named with --work-dir: made if missing, and refused if it holds anything (a
    /// Center or an Engine left there would not be a fresh start).
    static func prepare(_ path: String) throws -> String {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard (try FileManager.default.contentsOfDirectory(atPath: path)).isEmpty else {
            throw ValidationError("--work-dir \(path) is not empty; name a new or empty folder")
        }
        return path
    }

    /// Sends SIGTERM to every process whose command line names a path under `folder`: the
    /// demo's QEMUs, which run as their VMs' own users.
    static func stopProcesses(under folder: String) {
        for pid in ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init) where pid != getpid() {
            if let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
               String(decoding: cmdline, as: UTF8.self).contains("\(folder)/") {
                kill(pid, SIGTERM)
            }
        }
    }

    /// Whether the run is past the point where Ctrl-C means "abandon".
    final class RunState: @unchecked Sendable {
        // @unchecked: `done` is behind `lock`.
        private let lock = NSLock()
        private var done = false
        var isDone: Bool { lock.withLock { done } }
        func markDone() { lock.withLock { done = true } }
    }

    static func makeRunDirectory() throws -> String {
        let path = "/tmp/hearth-demo-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
