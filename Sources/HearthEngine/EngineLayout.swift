import HearthCore

/// Where the Engine keeps everything, under one root (default `/var/lib/hearth`):
///
///     ROOT/state.json                       the Engine's state, written atomically
///     ROOT/images/NAME/VERSION/system.img   gold image versions, never written
///     ROOT/vms/VM/system.qcow2              the throwaway overlay, new at every boot
///     ROOT/vms/VM/local.qcow2, user.qcow2   persistent disks
///     ROOT/run/VM/                          QMP, console and VNC sockets, logs
///
/// Socket paths must fit 107 bytes, so keep the root short.
public struct EngineLayout: Sendable, Equatable {
    public var root: String

    public init(root: String) {
        self.root = root
    }

    public var stateFile: String { "\(root)/state.json" }

    public func imageDirectory(_ image: ImageReference) -> String { "\(root)/images/\(image.name)/\(image.version)" }
    public func imageDisk(_ image: ImageReference) -> String { "\(imageDirectory(image))/system.img" }

    public func vm(_ name: String) -> VMPaths { VMPaths(disks: "\(root)/vms/\(name)", run: "\(root)/run/\(name)") }
}

/// The files of one VM.
public struct VMPaths: Sendable, Equatable {
    public var disks: String
    public var run: String

    public var systemDisk: String { "\(disks)/system.qcow2" }
    public var localDisk: String { "\(disks)/local.qcow2" }
    public var userDisk: String { "\(disks)/user.qcow2" }
    public var qmpSocket: String { "\(run)/qmp.sock" }
    public var consoleSocket: String { "\(run)/console.sock" }
    public var consoleLog: String { "\(run)/console.log" }
    public var vncSocket: String { "\(run)/vnc.sock" }
    public var qemuLog: String { "\(run)/qemu.log" }
}
