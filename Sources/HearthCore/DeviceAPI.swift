import Foundation

// The wire models between an Engine and the Center's device API (docs/openapi.yaml).

/// `POST /api/v1/enroll`: a one-time token and a certificate request for a key the device holds.
public struct EnrollRequest: Codable, Sendable, Equatable {
    public var token: String
    /// PKCS#10 certificate signing request, PEM.
    public var csr: String
    /// What the device calls itself (its host name), shown to admins.
    public var name: String

    public init(token: String, csr: String, name: String) {
        self.token = token
        self.csr = csr
        self.name = name
    }
}

public struct EnrollResponse: Codable, Sendable, Equatable {
    public var deviceID: String
    /// The device's client certificate, PEM, for every later call (mutual TLS).
    public var certificate: String
    /// The Center's CA certificate, PEM: the device pins it for every later connection.
    public var caCertificate: String
    public var userID: String?
    /// Base64 of the Center's Ed25519 lease key: the device pins it to check every lease.
    public var leaseKey: String

    public init(deviceID: String, certificate: String, caCertificate: String, userID: String?, leaseKey: String) {
        self.deviceID = deviceID
        self.certificate = certificate
        self.caCertificate = caCertificate
        self.userID = userID
        self.leaseKey = leaseKey
    }
}

/// What a device reports at check-in.
public struct DeviceStatus: Codable, Sendable, Equatable {
    public struct Inventory: Codable, Sendable, Equatable {
        public var cpuModel: String
        public var cpus: Int
        public var memoryBytes: UInt64
        public var diskBytes: UInt64
        /// "kvm", "tcg", … as the Engine's accelerator probe found.
        public var virtualization: String

        public init(cpuModel: String, cpus: Int, memoryBytes: UInt64, diskBytes: UInt64, virtualization: String) {
            self.cpuModel = cpuModel
            self.cpus = cpus
            self.memoryBytes = memoryBytes
            self.diskBytes = diskBytes
            self.virtualization = virtualization
        }
    }

    public struct VM: Codable, Sendable, Equatable {
        public var name: String
        public var state: String
        public var image: String?

        public init(name: String, state: String, image: String?) {
            self.name = name
            self.state = state
            self.image = image
        }
    }

    public var engineVersion: String
    public var inventory: Inventory
    public var vms: [VM]
    /// As the security zone reports it: "ok", "unapproved", "tampered", "revoked", "no-tpm" or
    /// "insecure-development".
    public var security: String
    /// Image versions the Engine is pulling or has pulled since it started.
    public var updates: [ImageUpdate]?
    /// Where the device falls short of its policies (minimum hardware), in words.
    public var compliance: [String]?
    /// The lease as the device sees it ("valid until …", "ran out on …").
    public var lease: String?
    /// Why IT locked the device, when it is locked.
    public var locked: String?
    /// The security zone's measured start and what its work key needs approved (with a TPM).
    public var measurements: MeasurementReport?

    public init(engineVersion: String, inventory: Inventory, vms: [VM], security: String, updates: [ImageUpdate]? = nil,
                compliance: [String]? = nil, lease: String? = nil, locked: String? = nil, measurements: MeasurementReport? = nil) {
        self.engineVersion = engineVersion
        self.inventory = inventory
        self.vms = vms
        self.security = security
        self.updates = updates
        self.compliance = compliance
        self.lease = lease
        self.locked = locked
        self.measurements = measurements
    }
}

/// An image version on its way to a device.
public struct ImageUpdate: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case pulling, ready, failed
    }

    /// NAME@VERSION.
    public var image: String
    public var state: State
    public var bytesFetched: UInt64
    /// What the delta plan said it must fetch (0 until planned).
    public var bytesToFetch: UInt64
    /// The image's size, to set the delta beside.
    public var virtualSize: UInt64
    public var error: String?

    public init(image: String, state: State, bytesFetched: UInt64 = 0, bytesToFetch: UInt64 = 0, virtualSize: UInt64 = 0, error: String? = nil) {
        self.image = image
        self.state = state
        self.bytesFetched = bytesFetched
        self.bytesToFetch = bytesToFetch
        self.virtualSize = virtualSize
        self.error = error
    }
}

/// A VM the device's user is assigned, with its image version resolved from its channel and
/// its policy resolved by the precedence rules.
public struct AssignedVM: Codable, Sendable, Equatable {
    public var definition: VMDefinition
    /// The channel the version came from ("stable", "pilot", …).
    public var channel: String
    public var policy: EffectivePolicy
    /// Which disks are backed up: "user", "local".
    public var backedUpDisks: [String]

    public init(definition: VMDefinition, channel: String, policy: EffectivePolicy, backedUpDisks: [String]) {
        self.definition = definition
        self.channel = channel
        self.policy = policy
        self.backedUpDisks = backedUpDisks
    }
}

/// Something the Center asks a device to do.
public struct DeviceCommand: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case lock, unlock, wipe, restartVM, resetPersonalVM, collectDiagnostics
    }

    public enum State: String, Codable, Sendable, CaseIterable {
        /// A wipe waiting for a second admin.
        case awaitingApproval
        case pending, delivered, acknowledged, completed, failed, cancelled
    }

    public var id: String
    public var kind: Kind
    /// The VM it concerns (restartVM), by name.
    public var vm: String?
    public var issued: Date

    public init(id: String, kind: Kind, vm: String?, issued: Date) {
        self.id = id
        self.kind = kind
        self.vm = vm
        self.issued = issued
    }
}

/// `POST /api/v1/device/commands/{id}`: how a command went on the device.
public struct CommandReport: Codable, Sendable, Equatable {
    /// acknowledged, completed or failed.
    public var state: DeviceCommand.State
    /// What happened, for the admin: a wipe's receipt, a diagnostics bundle's name, an error.
    public var result: String?

    public init(state: DeviceCommand.State, result: String?) {
        self.state = state
        self.result = result
    }
}

/// `PUT /api/v1/device/commands/{id}/diagnostics`: the log bundle a collectDiagnostics
/// command asks for: the Engine's state and the end of each log, as text.
public struct DiagnosticsBundle: Codable, Sendable, Equatable {
    public struct File: Codable, Sendable, Equatable {
        public var path: String
        /// The file's whole size; `text` is its end when it is larger.
        public var size: UInt64
        public var text: String

        public init(path: String, size: UInt64, text: String) {
            self.path = path
            self.size = size
            self.text = text
        }
    }

    public var collected: Date
    /// VM states, lease, updates, lock: one line each.
    public var summary: String
    public var files: [File]

    /// The most a bundle may hold, in bytes of JSON (the Center refuses more).
    public static let maximumBytes = 200 << 10

    public init(collected: Date, summary: String, files: [File]) {
        self.collected = collected
        self.summary = summary
        self.files = files
    }
}

/// What the Center answers a check-in with: the device's desired state.
public struct CheckInResponse: Codable, Sendable, Equatable {
    public var deviceID: String
    public var userID: String?
    /// The Center's clock when it answered.
    public var serverTime: Date
    /// When to check in next, in seconds (the shortest interval among the VMs' policies).
    public var checkInInterval: Int
    public var vms: [AssignedVM]
    public var lease: Lease
    /// Commands to carry out; each is delivered again until the device acknowledges it.
    public var commands: [DeviceCommand]
    /// Base64 of the Center's ECDSA P-256 policy key (raw x ‖ y): the device pins it and seals
    /// its work key to the policies it signs.
    public var policyKey: String?
    /// The policy the Center signed for the measurements the device reported, when it approves
    /// them.
    public var securityPolicy: SignedMeasurementPolicy?
    /// What the Center made of the reported measurements.
    public var measurementVerdict: String?
    /// A fresh nonce (lowercase hex) for the device's next quote: at its next check-in, and in
    /// the receipt of a wipe this answer delivers.
    public var nonce: String?

    public init(deviceID: String, userID: String?, serverTime: Date, checkInInterval: Int, vms: [AssignedVM], lease: Lease, commands: [DeviceCommand],
                policyKey: String? = nil, securityPolicy: SignedMeasurementPolicy? = nil, measurementVerdict: String? = nil, nonce: String? = nil) {
        self.nonce = nonce
        self.policyKey = policyKey
        self.securityPolicy = securityPolicy
        self.measurementVerdict = measurementVerdict
        self.deviceID = deviceID
        self.userID = userID
        self.serverTime = serverTime
        self.checkInInterval = checkInInterval
        self.vms = vms
        self.lease = lease
        self.commands = commands
    }
}
