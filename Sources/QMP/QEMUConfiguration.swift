/// A QEMU virtual machine as Hearth starts it: everything the argument builder needs, and
/// nothing of Hearth's own concepts (roles, users, images). Versioned and `Codable` so that a
/// running VM's configuration can be written beside it and read back after a restart.
public struct QEMUConfiguration: Codable, Sendable, Equatable {
    /// Bumped when a field changes meaning; readers reject versions they do not know.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// Shown in `ps` and in QEMU's own messages. Letters, digits, `-`, `_` and `.` only.
    public var name: String
    public var machine: Machine
    public var accelerator: Accelerator
    /// Virtual CPUs, 1…64.
    public var cpus: Int
    /// Guest memory in MiB, 16…65536.
    public var memoryMiB: Int
    /// Direct kernel boot; `nil` boots from the first disk through the firmware.
    public var kernelBoot: KernelBoot?
    /// Disks in the order the guest enumerates them (`vda`, `vdb`, …).
    public var disks: [Disk]
    /// Files handed to the guest through QEMU's firmware configuration device; the guest reads
    /// them under `/sys/firmware/qemu_fw_cfg/by_name/`.
    public var firmwareFiles: [FirmwareFile]
    /// Unix socket of the QMP monitor (server side: QEMU listens).
    public var qmpSocket: String
    /// Unix socket of the serial console (QEMU listens; `hearth vm console` attaches here).
    public var consoleSocket: String
    /// Everything the guest prints on its serial console, appended here.
    public var consoleLog: String
    /// Unix socket of the VNC display; `nil` runs without a display.
    public var vncSocket: String?
    /// The VM's network card, `nil` for none.
    public var network: Network?
    /// QEMU's seccomp sandbox. Off only for debugging QEMU itself.
    public var sandbox: Bool

    public init(
        name: String,
        machine: Machine = .q35,
        accelerator: Accelerator,
        cpus: Int = 1,
        memoryMiB: Int = 256,
        kernelBoot: KernelBoot? = nil,
        disks: [Disk] = [],
        firmwareFiles: [FirmwareFile] = [],
        qmpSocket: String,
        consoleSocket: String,
        consoleLog: String,
        vncSocket: String? = nil,
        network: Network? = nil,
        sandbox: Bool = true
    ) {
        self.formatVersion = Self.currentFormatVersion
        self.name = name
        self.machine = machine
        self.accelerator = accelerator
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.kernelBoot = kernelBoot
        self.disks = disks
        self.firmwareFiles = firmwareFiles
        self.qmpSocket = qmpSocket
        self.consoleSocket = consoleSocket
        self.consoleLog = consoleLog
        self.vncSocket = vncSocket
        self.network = network
        self.sandbox = sandbox
    }

    /// The emulated chipset. Both use PCI virtio devices, which Debian's kernels accept.
    public enum Machine: String, Codable, Sendable {
        case q35
        case pc
    }

    /// Boot a kernel and initramfs directly, without firmware or boot loader.
    public struct KernelBoot: Codable, Sendable, Equatable {
        public var kernel: String
        public var initrd: String?
        public var commandLine: String

        public init(kernel: String, initrd: String? = nil, commandLine: String) {
            self.kernel = kernel
            self.initrd = initrd
            self.commandLine = commandLine
        }
    }

    /// One virtio block device.
    public struct Disk: Codable, Sendable, Equatable {
        public enum Format: String, Codable, Sendable {
            case raw
            case qcow2
        }

        /// Node name inside QEMU; letters, digits, `-` and `_`, starting with a letter.
        public var id: String
        public var path: String
        public var format: Format
        public var readOnly: Bool
        /// What the guest sees in `/sys/block/vdX/serial` (at most 20 characters), so that a
        /// guest finds a disk by name rather than by enumeration order.
        public var serial: String?
        /// A qcow2 disk encrypted with LUKS. Its key never appears here: QEMU starts paused
        /// without the disk, and ``QEMUProcess/attachEncryptedDisks(_:keys:)`` hands the key
        /// over QMP as a secret object, opens (or creates) the disk, plugs it and resumes.
        public var encryption: Encryption?

        public init(id: String, path: String, format: Format, readOnly: Bool = false, serial: String? = nil, encryption: Encryption? = nil) {
            self.id = id
            self.path = path
            self.format = format
            self.readOnly = readOnly
            self.serial = serial
            self.encryption = encryption
        }
    }

    /// How an encrypted disk is opened.
    public struct Encryption: Codable, Sendable, Equatable {
        /// Create the disk (virtual size `createSize`) when its file does not exist; an
        /// existing file is opened as it is.
        public var createSize: UInt64?
        /// For an overlay created here: the image under it and that image's format.
        public var backing: String?
        public var backingFormat: Disk.Format?

        public init(createSize: UInt64? = nil, backing: String? = nil, backingFormat: Disk.Format? = nil) {
            self.createSize = createSize
            self.backing = backing
            self.backingFormat = backingFormat
        }
    }

    /// How the VM reaches the network.
    public enum Network: String, Codable, Sendable {
        /// QEMU's user-mode NAT: the guest reaches out, nothing reaches in, and each VM's NAT is
        /// its own, so VMs cannot reach each other.
        case userNAT
    }

    /// A file offered to the guest over fw_cfg. QEMU requires user names to start with `opt/`.
    public struct FirmwareFile: Codable, Sendable, Equatable {
        public var name: String
        public var path: String

        public init(name: String, path: String) {
            self.name = name
            self.path = path
        }
    }
}
