/// How the Engine boots guests: a kernel and initramfs it hands to every VM, the command line
/// (whose root is the disk with serial `system`), and how it knows a boot succeeded.
public struct GuestBoot: Sendable, Equatable {
    public var kernel: String
    public var initrd: String?
    public var commandLine: String
    /// Printed on the serial console by a guest that booted.
    public var bootMarker: String
    public var bootTimeout: Duration

    public init(kernel: String, initrd: String?, commandLine: String, bootMarker: String, bootTimeout: Duration = .seconds(180)) {
        self.kernel = kernel
        self.initrd = initrd
        self.commandLine = commandLine
        self.bootMarker = bootMarker
        self.bootTimeout = bootTimeout
    }
}

/// What `hearth vm list` shows of a VM.
public struct VMStatus: Sendable, Codable, Equatable {
    public var name: String
    public var role: String
    public var phase: VMPhase
    public var image: String
    public var bootedImage: String?
    public var lastFailure: String?
    public var rollbackReason: String?
    public var pid: Int32?
    /// Why the VM may not start now (a lock, a lease that ran out, an expired image), if so.
    public var blocked: String?
}
