import Foundation

/// How a VM ended when asked to stop.
public enum ShutdownOutcome: String, Sendable, Equatable {
    /// QEMU had already ended.
    case alreadyExited
    /// The guest handled the ACPI power button and powered off.
    case guestPoweredOff
    /// The guest ignored the power button; QEMU quit on the `quit` command.
    case quit
    /// QEMU did not answer; it was killed.
    case killed
}

extension QEMUProcess {
    /// Stops the VM the way a careful person would: the ACPI power button, waiting `grace` for
    /// the guest to power off; then QMP `quit`; then SIGKILL. Always returns with QEMU gone.
    public func shutdown(qmp: QMPClient?, grace: Duration = .seconds(30)) async -> ShutdownOutcome {
        guard exitCode == nil else { return .alreadyExited }
        if let qmp {
            if (try? await qmp.execute("system_powerdown", timeout: .seconds(5))) != nil,
               await waitForExit(timeout: grace) != nil {
                return .guestPoweredOff
            }
            // `quit` may close the connection before its reply arrives; the exit is what counts.
            _ = try? await qmp.execute("quit", timeout: .seconds(5))
            if await waitForExit(timeout: .seconds(10)) != nil {
                return .quit
            }
        }
        await kill()
        return .killed
    }
}
