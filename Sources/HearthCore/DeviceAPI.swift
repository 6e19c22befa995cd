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

    public init(deviceID: String, certificate: String, caCertificate: String, userID: String?) {
        self.deviceID = deviceID
        self.certificate = certificate
        self.caCertificate = caCertificate
        self.userID = userID
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
    /// "ok", "tampered", "unmeasured", … as the security zone reports it.
    public var security: String

    public init(engineVersion: String, inventory: Inventory, vms: [VM], security: String) {
        self.engineVersion = engineVersion
        self.inventory = inventory
        self.vms = vms
        self.security = security
    }
}

/// What the Center answers a check-in with.
public struct CheckInResponse: Codable, Sendable, Equatable {
    public var deviceID: String
    public var userID: String?
    /// The Center's clock when it answered.
    public var serverTime: Date
    /// When to check in next, in seconds.
    public var checkInInterval: Int

    public init(deviceID: String, userID: String?, serverTime: Date, checkInInterval: Int) {
        self.deviceID = deviceID
        self.userID = userID
        self.serverTime = serverTime
        self.checkInInterval = checkInInterval
    }
}
