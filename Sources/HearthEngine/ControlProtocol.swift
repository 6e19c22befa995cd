/// The Engine's local control API: one JSON object per line on a unix socket, a response per
/// request. A closed set of actions; each says which VM states it is valid in.
public struct ControlRequest: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable, CaseIterable {
        /// Any state.
        case list
        /// Stopped or failed VMs start; others are left as they are.
        case start
        /// Running or starting VMs stop; others are left as they are.
        case stop
        case restart
        /// Personal VM, stopped.
        case snapshot
        /// Personal VM, any state.
        case snapshots
        /// Personal VM, stopped.
        case revert
        /// Personal VM, stopped.
        case reset
    }

    public var action: Action
    public var vm: String?
    /// The restore point's name, for snapshot and revert.
    public var label: String?

    public init(action: Action, vm: String? = nil, label: String? = nil) {
        self.action = action
        self.vm = vm
        self.label = label
    }
}

public struct ControlResponse: Codable, Sendable, Equatable {
    public var ok: Bool
    public var error: String?
    public var vms: [VMStatus]?
    public var snapshots: [String]?

    public static func failure(_ message: String) -> ControlResponse {
        ControlResponse(ok: false, error: message)
    }

    public init(ok: Bool, error: String? = nil, vms: [VMStatus]? = nil, snapshots: [String]? = nil) {
        self.ok = ok
        self.error = error
        self.vms = vms
        self.snapshots = snapshots
    }
}

extension Engine {
    /// Carries out one control request.
    public func handle(_ request: ControlRequest) async -> ControlResponse {
        do {
            if request.action == .list {
                return ControlResponse(ok: true, vms: try status())
            }
            guard let vm = request.vm else {
                return .failure("'\(request.action.rawValue)' needs the name of a VM")
            }
            switch request.action {
            case .list: break
            case .start: try await start(vm)
            case .stop: try await stop(vm)
            case .restart: try await restart(vm)
            case .snapshots: return ControlResponse(ok: true, snapshots: try snapshots(vm))
            case .snapshot, .revert:
                guard let label = request.label, !label.isEmpty else {
                    return .failure("'\(request.action.rawValue)' needs the name of a restore point")
                }
                if request.action == .snapshot { try snapshot(vm, label: label) } else { try revert(vm, to: label) }
            case .reset: try reset(vm)
            }
            return ControlResponse(ok: true, vms: try status().filter { $0.name == vm })
        } catch {
            return .failure("\(error)")
        }
    }
}
