import Crypto
import Foundation

/// What was measured into a PCR, in order: enough for anyone holding the log to recompute the
/// PCR's value (``replay()``) and compare it with the TPM's, or with a quote of it. (The TPM module
/// measures files into it.)
public struct EventLog: Codable, Sendable, Equatable {
    public struct Event: Codable, Sendable, Equatable {
        /// What the file is ("engine", "qemu", "kernel", …).
        public var component: String
        public var path: String
        /// SHA-256 of the file, lowercase hex.
        public var sha256: String

        public init(component: String, path: String, sha256: String) {
            self.component = component
            self.path = path
            self.sha256 = sha256
        }
    }

    public var pcr: Int
    public var events: [Event]
    /// The PCR's value before the first event (hex), when something measured into it earlier
    /// in the boot; nil for zero.
    public var base: String?

    public init(pcr: Int, events: [Event] = [], base: [UInt8]? = nil) {
        self.pcr = pcr
        self.events = events
        self.base = base.flatMap { $0.allSatisfy { $0 == 0 } ? nil : $0.map { String(format: "%02x", $0) }.joined() }
    }

    /// The PCR value these events give, starting from ``base`` (zero after a reboot).
    public func replay() -> [UInt8] {
        events.reduce(base.map(Self.bytes(hex:)) ?? [UInt8](repeating: 0, count: 32)) { value, event in
            Array(SHA256.hash(data: Data(value + Self.bytes(hex: event.sha256))))
        }
    }

    /// Which event differs from `other`'s at the same place: the first component that changed.
    public func firstDifference(from other: EventLog) -> Event? {
        for (index, event) in events.enumerated() where index >= other.events.count || other.events[index] != event {
            return event
        }
        return nil
    }

    public static func bytes(hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) {
            bytes.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }
}
