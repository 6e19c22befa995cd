/// Builds QEMU's command line from a ``QEMUConfiguration``: a pure function, checked by golden
/// tests, so that what a VM is started with can be read and reviewed as text.
public enum QEMUArguments {
    /// The arguments after the executable's name.
    ///
    /// - Throws: ``QEMUError/invalidConfiguration(field:reason:)`` when a field is out of range
    ///   or a name would break QEMU's option syntax.
    public static func build(for configuration: QEMUConfiguration) throws(QEMUError) -> [String] {
        try validate(configuration)
        var arguments: [String] = [
            "-name", "guest=\(configuration.name),debug-threads=on",
            // Nothing implicit: no default NIC, no default VGA, no user config files.
            "-nodefaults", "-no-user-config",
            "-machine", "\(configuration.machine.rawValue),accel=\(configuration.accelerator.rawValue)",
            "-cpu", configuration.accelerator == .kvm ? "host" : "max",
            "-smp", String(configuration.cpus),
            "-m", "\(configuration.memoryMiB)M",
            // A guest reboot ends the process: the caller restarts the VM so that boot-time work
            // (a fresh system overlay, an image switch) happens on every boot.
            "-no-reboot",
            "-msg", "timestamp=on",
        ]
        if configuration.sandbox {
            arguments += ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
        }
        arguments += [
            "-chardev", "socket,id=qmp,path=\(escaped(configuration.qmpSocket)),server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-chardev", "socket,id=console,path=\(escaped(configuration.consoleSocket)),server=on,wait=off,logfile=\(escaped(configuration.consoleLog)),logappend=on",
            "-serial", "chardev:console",
        ]
        if let boot = configuration.kernelBoot {
            arguments += ["-kernel", boot.kernel]
            if let initrd = boot.initrd {
                arguments += ["-initrd", initrd]
            }
            arguments += ["-append", boot.commandLine]
        }
        // Encrypted disks are plugged over QMP once QEMU holds their keys: start paused, with a
        // PCIe port for each to be plugged into (q35's root bus takes no hot-plugged device).
        let encrypted = configuration.disks.filter { $0.encryption != nil }
        if !encrypted.isEmpty {
            arguments.append("-S")
            if configuration.machine == .q35 {
                for (number, disk) in encrypted.enumerated() {
                    arguments += ["-device", "pcie-root-port,id=\(disk.id)-port,chassis=\(number + 1)"]
                }
            }
        }
        for disk in configuration.disks where disk.encryption == nil {
            let readOnly = disk.readOnly ? "on" : "off"
            arguments += [
                "-blockdev", "driver=file,node-name=\(disk.id)-file,filename=\(escaped(disk.path)),read-only=\(readOnly)",
                "-blockdev", "driver=\(disk.format.rawValue),node-name=\(disk.id),file=\(disk.id)-file,read-only=\(readOnly)",
            ]
            var device = "virtio-blk-pci,drive=\(disk.id),id=\(disk.id)-device"
            if let serial = disk.serial {
                device += ",serial=\(serial)"
            }
            arguments += ["-device", device]
        }
        switch configuration.network {
        case .userNAT:
            arguments += ["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,id=net0-device"]
        case nil:
            break // -nodefaults: no network card at all
        }
        for file in configuration.firmwareFiles {
            arguments += ["-fw_cfg", "name=\(file.name),file=\(escaped(file.path))"]
        }
        if let vnc = configuration.vncSocket {
            arguments += ["-device", "VGA", "-display", "none", "-vnc", "unix:\(escaped(vnc))"]
        } else {
            arguments += ["-display", "none"]
        }
        return arguments
    }

    /// QEMU's option syntax splits on commas; a literal comma is written twice.
    static func escaped(_ value: String) -> String {
        value.replacingOccurrences(of: ",", with: ",,")
    }

    static func validate(_ configuration: QEMUConfiguration) throws(QEMUError) {
        guard configuration.formatVersion == QEMUConfiguration.currentFormatVersion else {
            throw .invalidConfiguration(field: "formatVersion", reason: "version \(configuration.formatVersion) is not known to this Hearth (expected \(QEMUConfiguration.currentFormatVersion)); upgrade Hearth")
        }
        guard isPlainName(configuration.name, allowDot: true) else {
            throw .invalidConfiguration(field: "name", reason: "'\(configuration.name)' must be 1–64 letters, digits, '-', '_' or '.', starting with a letter or digit")
        }
        guard (1...64).contains(configuration.cpus) else {
            throw .invalidConfiguration(field: "cpus", reason: "\(configuration.cpus) is outside 1…64")
        }
        guard (16...65536).contains(configuration.memoryMiB) else {
            throw .invalidConfiguration(field: "memoryMiB", reason: "\(configuration.memoryMiB) MiB is outside 16…65536")
        }
        var seen = Set<String>()
        for disk in configuration.disks {
            guard isPlainName(disk.id, allowDot: false), disk.id.first?.isLetter == true else {
                throw .invalidConfiguration(field: "disks.id", reason: "'\(disk.id)' must start with a letter and hold only letters, digits, '-' and '_'")
            }
            guard seen.insert(disk.id).inserted else {
                throw .invalidConfiguration(field: "disks.id", reason: "'\(disk.id)' is used by two disks")
            }
            if let serial = disk.serial {
                guard serial.count <= 20, isPlainName(serial, allowDot: true) else {
                    throw .invalidConfiguration(field: "disks.serial", reason: "'\(serial)' must be at most 20 letters, digits, '-', '_' or '.'")
                }
            }
            try requireAbsolute(disk.path, field: "disks.path")
            if let encryption = disk.encryption {
                guard disk.format == .qcow2, !disk.readOnly else {
                    throw .invalidConfiguration(field: "disks.encryption", reason: "'\(disk.id)': only writable qcow2 disks are encrypted")
                }
                if let backing = encryption.backing { try requireAbsolute(backing, field: "disks.encryption.backing") }
            }
        }
        for file in configuration.firmwareFiles {
            guard file.name.hasPrefix("opt/"), file.name.count <= 55, !file.name.contains(",") else {
                throw .invalidConfiguration(field: "firmwareFiles.name", reason: "'\(file.name)' must start with 'opt/', hold no comma and be at most 55 characters")
            }
            try requireAbsolute(file.path, field: "firmwareFiles.path")
        }
        if let boot = configuration.kernelBoot {
            try requireAbsolute(boot.kernel, field: "kernelBoot.kernel")
            if let initrd = boot.initrd {
                try requireAbsolute(initrd, field: "kernelBoot.initrd")
            }
        }
        try requireAbsolute(configuration.qmpSocket, field: "qmpSocket")
        try requireAbsolute(configuration.consoleSocket, field: "consoleSocket")
        try requireAbsolute(configuration.consoleLog, field: "consoleLog")
        for socket in [configuration.qmpSocket, configuration.consoleSocket] + [configuration.vncSocket].compactMap({ $0 }) {
            // sun_path holds 108 bytes including the terminating NUL.
            guard socket.utf8.count <= 107 else {
                throw .invalidConfiguration(field: "socket path", reason: "'\(socket)' is longer than the 107 bytes a unix socket path may have; use a shorter state directory")
            }
        }
    }

    private static func isPlainName(_ value: String, allowDot: Bool) -> Bool {
        guard (1...64).contains(value.count), let first = value.first, first.isASCII, first.isLetter || first.isNumber else {
            return false
        }
        return value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || (allowDot && $0 == ".")) }
    }

    private static func requireAbsolute(_ path: String, field: String) throws(QEMUError) {
        guard path.hasPrefix("/"), !path.contains("\n"), !path.contains("\0") else {
            throw .invalidConfiguration(field: field, reason: "'\(path)' must be an absolute path without newlines")
        }
    }
}
