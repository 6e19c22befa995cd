import Foundation
import QMP

/// Each VM's QEMU runs as a system user of its own (`hearth-vm-NAME`), which owns that VM's
/// disks and sockets and nothing else: a QEMU taken over by its guest cannot read another VM's
/// disks. Only when the Engine runs as root; otherwise every VM runs as the Engine's user.
enum VMUser {
    static func name(for vm: String) -> String { "hearth-vm-\(vm)" }

    /// The VM's user, created when missing, with `kvm` as an extra group when that group exists.
    static func ensure(for vm: String) throws -> Credentials? {
        guard getuid() == 0 else { return nil }
        let name = name(for: vm)
        if getpwnam(name) == nil {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/useradd")
            process.arguments = ["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--user-group", name]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 || getpwnam(name) != nil else {
                throw EngineError.io(path: "/etc/passwd", reason: "useradd could not create the user \(name) (status \(process.terminationStatus))")
            }
        }
        guard let entry = getpwnam(name) else {
            throw EngineError.io(path: "/etc/passwd", reason: "the user \(name) does not exist")
        }
        let kvm = getgrnam("kvm").map { [UInt32($0.pointee.gr_gid)] } ?? []
        return Credentials(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid, supplementaryGroups: kvm)
    }

    /// Gives `paths` (recursively, not following links) to the VM's user, mode 0700 folders.
    static func own(_ paths: [String], by user: Credentials) throws {
        for path in paths {
            guard lchown(path, user.uid, user.gid) == 0 else {
                throw EngineError.io(path: path, reason: String(cString: strerror(errno)))
            }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                chmod(path, 0o700)
                let children = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                try own(children.map { "\(path)/\($0)" }, by: user)
            }
        }
    }
}
