/// An asynchronous event QEMU sent, such as `SHUTDOWN` or `BLOCK_JOB_COMPLETED`.
public struct QMPEvent: Decodable, Sendable, Equatable {
    public struct Timestamp: Decodable, Sendable, Equatable {
        public var seconds: Int64
        public var microseconds: Int64
    }

    /// The event's name, as the QMP reference spells it (`SHUTDOWN`, `STOP`, …).
    public var event: String
    public var data: JSONValue?
    public var timestamp: Timestamp?
}

/// QEMU's greeting: its version and the capabilities it offers.
public struct QMPGreeting: Decodable, Sendable, Equatable {
    public struct Version: Decodable, Sendable, Equatable {
        public struct Triple: Decodable, Sendable, Equatable {
            public var major: Int
            public var minor: Int
            public var micro: Int
        }

        public var qemu: Triple
        public var package: String
    }

    public var version: Version
    public var capabilities: [String]
}

/// The reply of `query-status`.
public struct QMPStatus: Decodable, Sendable, Equatable {
    /// `running`, `paused`, `shutdown`, `prelaunch`, …
    public var status: String
    public var running: Bool
}
