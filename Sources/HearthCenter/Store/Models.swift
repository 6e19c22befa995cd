import HearthCore
import Foundation

/// What an admin may do; the role decides the set (docs/CENTER.md has the table).
public enum AdminRole: String, Codable, Sendable, CaseIterable {
    case owner, `operator`, helpdesk, auditor

    public func may(_ permission: Permission) -> Bool {
        switch self {
        case .owner: return true
        case .operator: return permission != .manageAdmins && permission != .manageSettings
        case .helpdesk: return [.read, .enrollDevices, .commandDevices].contains(permission)
        case .auditor: return [.read, .readAudit].contains(permission)
        }
    }
}

public enum Permission: String, Sendable, CaseIterable {
    /// Read the fleet, users, groups, images, VM definitions, policies, tokens and commands.
    case read
    /// Create and disable admins.
    case manageAdmins
    /// Change Center-wide settings (whether a wipe needs a second admin).
    case manageSettings
    /// Create, change and delete users and groups.
    case manageDirectory
    /// Create enrollment tokens.
    case enrollDevices
    /// Retire devices (their certificates stop working).
    case retireDevices
    /// Images, their versions and channels.
    case manageImages
    /// VM definitions, their assignments, and policies.
    case manageDesktops
    /// Lock, unlock, restart a VM, reset the personal VM, collect diagnostics; cancel commands.
    case commandDevices
    /// Issue and approve wipes.
    case wipe
    /// Read the audit log.
    case readAudit
}

public struct Admin: Codable, Sendable, Equatable {
    public var id: String
    public var username: String
    public var role: AdminRole
    public var mustChangePassword: Bool
    public var created: Date
    public var disabled: Date?
}

public struct User: Codable, Sendable, Equatable {
    public var id: String
    public var username: String
    public var displayName: String
    public var email: String
    public var created: Date
    public var groups: [String]
}

public struct Group: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var created: Date
    public var members: [String]
}

public struct Device: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var userID: String?
    public var certificateSerial: String
    public var enrolled: Date
    public var lastCheckIn: Date?
    public var lastAddress: String?
    public var retired: Date?
    /// The status the device last reported, as it sent it.
    public var status: DeviceStatus?
    /// What the Center made of the measurements the device last reported (docs/SECURITY.md).
    public var measurementVerdict: String?
}

public struct EnrollmentToken: Codable, Sendable, Equatable {
    public var id: String
    public var userID: String?
    public var note: String
    public var createdBy: String
    public var created: Date
    public var expires: Date
    public var used: Date?
    public var deviceID: String?
}

public struct AuditEntry: Codable, Sendable, Equatable {
    public var seq: Int64
    public var at: Date
    /// `admin:NAME`, `device:ID` or `center`.
    public var actor: String
    public var action: String
    public var target: String
    public var address: String
    public var before: String?
    public var after: String?
}
