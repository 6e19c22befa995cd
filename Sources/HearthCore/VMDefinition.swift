/// A desktop as the Center assigns it: the Engine turns one into a running VM. The shape is the
/// wire model the Center will send; for now the Engine reads it from a local file.
public struct VMDefinition: Codable, Sendable, Equatable {
    /// Who owns the VM: IT's locked-down work VM, or the user's own.
    public enum Role: String, Codable, Sendable, CaseIterable {
        case work
        case personal
    }

    /// What the VM may reach on the network.
    public enum NetworkMode: String, Codable, Sendable, CaseIterable {
        case none
        case internet
        case full
    }

    /// Letters, digits and `-`, 1–32 characters, starting with a letter: used in paths and
    /// socket names.
    public var name: String
    public var role: Role
    public var image: ImageReference
    public var cpus: Int
    public var memoryMiB: Int
    /// Size of the local disk (settings, not backed up), in bytes.
    public var localDiskBytes: UInt64
    /// Size of the user disk (the user's files, backed up), in bytes.
    public var userDiskBytes: UInt64
    public var network: NetworkMode

    public init(name: String, role: Role, image: ImageReference, cpus: Int = 1, memoryMiB: Int = 512, localDiskBytes: UInt64 = 1 << 30, userDiskBytes: UInt64 = 4 << 30, network: NetworkMode = .none) {
        self.name = name
        self.role = role
        self.image = image
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.localDiskBytes = localDiskBytes
        self.userDiskBytes = userDiskBytes
        self.network = network
    }

    /// Problems with this definition, in words an admin can act on; empty when it is valid.
    public var problems: [String] {
        var problems: [String] = []
        let allowed = name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        if !(1...32).contains(name.count) || !allowed || !(name.first?.isLetter ?? false) {
            problems.append("name '\(name)' must be 1–32 letters, digits or '-', starting with a letter")
        }
        if !(1...64).contains(cpus) { problems.append("\(name): cpus must be 1–64, not \(cpus)") }
        if !(64...262_144).contains(memoryMiB) { problems.append("\(name): memory must be 64 MiB to 256 GiB, not \(memoryMiB) MiB") }
        for (disk, size) in [("local", localDiskBytes), ("user", userDiskBytes)] where size < 1 << 20 || size % 512 != 0 || size > 64 << 40 {
            problems.append("\(name): the \(disk) disk must be 1 MiB to 64 TiB, a multiple of 512 bytes, not \(size) bytes")
        }
        problems += image.problems.map { "\(name): \($0)" }
        return problems
    }
}

/// A gold image version: immutable once published.
public struct ImageReference: Codable, Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var version: String

    public init(name: String, version: String) {
        self.name = name
        self.version = version
    }

    public var description: String { "\(name)@\(version)" }

    var problems: [String] {
        let safe: (String) -> Bool = { value in
            (1...64).contains(value.count) && value.first != "." && value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        }
        var problems: [String] = []
        if !safe(name) { problems.append("image name '\(name)' must be 1–64 letters, digits, '-', '_' or '.'") }
        if !safe(version) { problems.append("image version '\(version)' must be 1–64 letters, digits, '-', '_' or '.'") }
        return problems
    }
}

/// The VM definitions an Engine runs, as a file holds them.
public struct VMDefinitionList: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1
    public var formatVersion: Int
    public var vms: [VMDefinition]

    public init(vms: [VMDefinition]) {
        self.formatVersion = Self.currentFormatVersion
        self.vms = vms
    }

    /// Problems with the list: each VM's, and names used twice.
    public var problems: [String] {
        var problems: [String] = []
        if formatVersion != Self.currentFormatVersion {
            problems.append("format version \(formatVersion) is not known to this Hearth (expected \(Self.currentFormatVersion))")
        }
        var seen = Set<String>()
        for vm in vms {
            problems += vm.problems
            if !seen.insert(vm.name).inserted { problems.append("the name '\(vm.name)' is used by two VMs") }
        }
        return problems
    }
}
