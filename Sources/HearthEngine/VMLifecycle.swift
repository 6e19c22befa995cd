import HearthCore

/// Where a VM is in its life. Persisted in the Engine's state.
public enum VMPhase: String, Codable, Sendable {
    case stopped
    /// QEMU is starting and the guest has not confirmed its boot yet.
    case starting
    case running
    case stopping
    /// The last start failed or the VM died; `VMLifecycle.lastFailure` says why.
    case failed
}

/// The VM state machine as a plain value: events in, actions out, no I/O, so every transition
/// is tested on its own. The runtime performs the actions and feeds back what happened.
public struct VMLifecycle: Sendable, Equatable, Codable {
    public enum Event: Sendable, Equatable {
        case startRequested
        case launchFailed(String)
        /// The guest reached its boot marker (or its agent answered).
        case bootConfirmed
        case bootTimedOut
        case stopRequested
        /// QEMU ended; `requested` when a stop asked for it.
        case exited(status: Int32)
    }

    public enum Action: Sendable, Equatable {
        /// Prepare the disks (a fresh system overlay) and start QEMU.
        case prepareAndLaunch
        /// Press the power button, then quit, then kill.
        case powerDown
        /// Kill QEMU at once (a boot that never finished).
        case kill
        /// Nothing to do.
        case none
        /// The event is not valid now; the message says why.
        case reject(String)
    }

    public private(set) var phase: VMPhase = .stopped
    public private(set) var lastFailure: String?

    public init() {}

    /// Applies `event` and returns what the runtime must do.
    public mutating func handle(_ event: Event) -> Action {
        switch (phase, event) {
        case (.stopped, .startRequested), (.failed, .startRequested):
            phase = .starting
            lastFailure = nil
            return .prepareAndLaunch
        case (.starting, .startRequested), (.running, .startRequested):
            return .none
        case (.stopping, .startRequested):
            return .reject("the VM is stopping; start it again once it has stopped")
        case (.starting, .launchFailed(let reason)):
            phase = .failed
            lastFailure = reason
            return .none
        case (.starting, .bootConfirmed):
            phase = .running
            return .none
        case (.starting, .bootTimedOut):
            phase = .failed
            lastFailure = "the guest did not finish booting in time"
            return .kill
        case (.starting, .stopRequested), (.running, .stopRequested):
            phase = .stopping
            return .powerDown
        case (.stopping, .stopRequested), (.stopped, .stopRequested), (.failed, .stopRequested):
            return .none
        case (.stopping, .exited):
            phase = .stopped
            return .none
        case (.starting, .exited(let status)), (.running, .exited(let status)):
            // Not asked for: a guest power-off or reboot (status 0), or QEMU died.
            if status == 0 {
                phase = .stopped
            } else {
                phase = .failed
                lastFailure = "QEMU exited with status \(status)"
            }
            return .none
        case (.stopped, .exited), (.failed, .exited):
            return .none
        case (_, .launchFailed), (_, .bootConfirmed), (_, .bootTimedOut):
            return .reject("\(event) does not apply to a VM that is \(phase.rawValue)")
        }
    }
}
