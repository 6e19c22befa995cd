import Foundation

/// Rules an admin sets on a group or a VM definition. Every field is optional: a policy says
/// only what it decides, and the precedence rules (docs/CENTER.md, `EffectivePolicy.resolve`)
/// fill in the rest.
public struct Policy: Codable, Sendable, Equatable {
    /// Days a device may stay offline before its work VMs lock.
    public var leaseDays: Int?
    public var checkInIntervalSeconds: Int?
    /// After this day the VM does not start with its current image.
    public var imageExpiry: Date?
    /// USB device classes the VM may be given ("hid", "storage", "audio", "video", "printer",
    /// "smartcard", "wireless", …).
    public var usbClasses: [String]?
    /// The most a VM may reach: none, internet only, or full.
    public var network: VMDefinition.NetworkMode?
    /// "never", "hourly", "daily" or "weekly".
    public var backupSchedule: String?
    public var minimumCPUs: Int?
    public var minimumMemoryMiB: Int?
    public var minimumDiskGiB: Int?

    public init(leaseDays: Int? = nil, checkInIntervalSeconds: Int? = nil, imageExpiry: Date? = nil, usbClasses: [String]? = nil,
                network: VMDefinition.NetworkMode? = nil, backupSchedule: String? = nil, minimumCPUs: Int? = nil,
                minimumMemoryMiB: Int? = nil, minimumDiskGiB: Int? = nil) {
        self.leaseDays = leaseDays
        self.checkInIntervalSeconds = checkInIntervalSeconds
        self.imageExpiry = imageExpiry
        self.usbClasses = usbClasses
        self.network = network
        self.backupSchedule = backupSchedule
        self.minimumCPUs = minimumCPUs
        self.minimumMemoryMiB = minimumMemoryMiB
        self.minimumDiskGiB = minimumDiskGiB
    }

    public static let usbClassNames: Set<String> = ["hid", "storage", "audio", "video", "printer", "smartcard", "wireless", "communications"]
    public static let backupSchedules = ["never", "hourly", "daily", "weekly"]

    /// What is wrong with this policy, in words an admin can act on; empty when valid.
    public var problems: [String] {
        var problems: [String] = []
        if let leaseDays, !(1...365).contains(leaseDays) { problems.append("leaseDays must be 1 to 365, not \(leaseDays)") }
        if let interval = checkInIntervalSeconds, !(30...86_400).contains(interval) {
            problems.append("checkInIntervalSeconds must be 30 to 86400 (one day), not \(interval)")
        }
        if let classes = usbClasses {
            let unknown = classes.filter { !Self.usbClassNames.contains($0) }
            if !unknown.isEmpty {
                problems.append("usbClasses has unknown classes \(unknown.joined(separator: ", ")); known: \(Self.usbClassNames.sorted().joined(separator: ", "))")
            }
        }
        if let schedule = backupSchedule, !Self.backupSchedules.contains(schedule) {
            problems.append("backupSchedule must be one of \(Self.backupSchedules.joined(separator: ", ")), not \(schedule)")
        }
        if let cpus = minimumCPUs, !(1...256).contains(cpus) { problems.append("minimumCPUs must be 1 to 256, not \(cpus)") }
        if let memory = minimumMemoryMiB, !(128...4_194_304).contains(memory) { problems.append("minimumMemoryMiB must be 128 to 4194304, not \(memory)") }
        if let disk = minimumDiskGiB, !(1...65_536).contains(disk) { problems.append("minimumDiskGiB must be 1 to 65536, not \(disk)") }
        return problems
    }
}

/// A policy with every field decided: what a device enforces for one VM.
public struct EffectivePolicy: Codable, Sendable, Equatable {
    public var leaseDays: Int
    public var checkInIntervalSeconds: Int
    public var imageExpiry: Date?
    public var usbClasses: [String]
    public var network: VMDefinition.NetworkMode
    public var backupSchedule: String
    public var minimumCPUs: Int
    public var minimumMemoryMiB: Int
    public var minimumDiskGiB: Int

    /// What holds when no policy says otherwise.
    public static let defaults = EffectivePolicy(leaseDays: 14, checkInIntervalSeconds: 300, imageExpiry: nil, usbClasses: ["hid"],
                                                 network: .internet, backupSchedule: "daily", minimumCPUs: 1, minimumMemoryMiB: 1024,
                                                 minimumDiskGiB: 16)

    /// The precedence rules: start from the defaults; the user's groups' policies apply next,
    /// and where two groups disagree the stricter value wins (shorter lease and interval, earlier
    /// expiry, fewer USB classes, less network, the more frequent backup, higher minimum
    /// hardware); last, the VM definition's own policy overrides every field it sets.
    public static func resolve(groups: [Policy], vm: Policy?) -> EffectivePolicy {
        var result = defaults
        var fromGroups = Policy()
        for policy in groups {
            fromGroups.leaseDays = stricter(fromGroups.leaseDays, policy.leaseDays, by: <)
            fromGroups.checkInIntervalSeconds = stricter(fromGroups.checkInIntervalSeconds, policy.checkInIntervalSeconds, by: <)
            fromGroups.imageExpiry = stricter(fromGroups.imageExpiry, policy.imageExpiry, by: <)
            if let classes = policy.usbClasses {
                fromGroups.usbClasses = fromGroups.usbClasses.map { current in current.filter(classes.contains) } ?? classes
            }
            fromGroups.network = stricter(fromGroups.network, policy.network) { $0.rank < $1.rank }
            fromGroups.backupSchedule = stricter(fromGroups.backupSchedule, policy.backupSchedule) { frequency($0) > frequency($1) }
            fromGroups.minimumCPUs = stricter(fromGroups.minimumCPUs, policy.minimumCPUs, by: >)
            fromGroups.minimumMemoryMiB = stricter(fromGroups.minimumMemoryMiB, policy.minimumMemoryMiB, by: >)
            fromGroups.minimumDiskGiB = stricter(fromGroups.minimumDiskGiB, policy.minimumDiskGiB, by: >)
        }
        for policy in [fromGroups, vm ?? Policy()] {
            if let value = policy.leaseDays { result.leaseDays = value }
            if let value = policy.checkInIntervalSeconds { result.checkInIntervalSeconds = value }
            if let value = policy.imageExpiry { result.imageExpiry = value }
            if let value = policy.usbClasses { result.usbClasses = value.sorted() }
            if let value = policy.network { result.network = value }
            if let value = policy.backupSchedule { result.backupSchedule = value }
            if let value = policy.minimumCPUs { result.minimumCPUs = value }
            if let value = policy.minimumMemoryMiB { result.minimumMemoryMiB = value }
            if let value = policy.minimumDiskGiB { result.minimumDiskGiB = value }
        }
        return result
    }

    private static func stricter<T>(_ a: T?, _ b: T?, by isStricter: (T, T) -> Bool) -> T? {
        guard let a else { return b }
        guard let b else { return a }
        return isStricter(b, a) ? b : a
    }

    private static func frequency(_ schedule: String) -> Int {
        ["never": 0, "weekly": 1, "daily": 2, "hourly": 3][schedule] ?? 0
    }
}

extension VMDefinition.NetworkMode {
    /// How much it lets through: none < internet < full.
    public var rank: Int {
        switch self {
        case .none: return 0
        case .internet: return 1
        case .full: return 2
        }
    }
}

/// The Center's word that a device may run its work VMs until `expires`, signed with the
/// Center's lease key (Ed25519) over `payload`, the canonical JSON of `Lease.Terms`.
public struct Lease: Codable, Sendable, Equatable {
    public struct Terms: Codable, Sendable, Equatable {
        public var deviceID: String
        public var issued: Date
        public var expires: Date

        public init(deviceID: String, issued: Date, expires: Date) {
            self.deviceID = deviceID
            self.issued = issued
            self.expires = expires
        }
    }

    /// Base64 of the terms' JSON, exactly as signed.
    public var payload: String
    /// Base64 of the Ed25519 signature over the payload's bytes.
    public var signature: String

    public init(payload: String, signature: String) {
        self.payload = payload
        self.signature = signature
    }

    /// The terms, read without checking the signature (the Engine checks it first).
    public var unverifiedTerms: Terms? {
        guard let data = Data(base64Encoded: payload) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(Terms.self, from: data)
    }
}
