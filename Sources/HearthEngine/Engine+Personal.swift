import Foundation
import HearthCore
import VirtualDisk

/// Restore points and reset: the personal VM's own; the work VM offers none of them.
extension Engine {
    /// Takes a restore point of the personal VM's local and user disks (the system disk is new
    /// at every boot anyway). The VM must be stopped.
    public func snapshot(_ name: String, label: String) throws {
        let paths = try personalStopped(name, action: "take a restore point")
        for disk in [paths.localDisk, paths.userDisk] where FileManager.default.fileExists(atPath: disk) {
            try DiskSnapshots.create(disk, name: label)
        }
    }

    /// The personal VM's restore points, oldest first.
    public func snapshots(_ name: String) throws -> [String] {
        let paths = try personal(name)
        guard FileManager.default.fileExists(atPath: paths.userDisk) else { return [] }
        return try DiskSnapshots.list(paths.userDisk).map(\.name)
    }

    /// Brings the personal VM's local and user disks back to exactly a restore point.
    public func revert(_ name: String, to label: String) throws {
        let paths = try personalStopped(name, action: "revert to a restore point")
        for disk in [paths.localDisk, paths.userDisk] {
            guard try DiskSnapshots.list(disk).contains(where: { $0.name == label }) else {
                throw EngineError.rejected(vm: name, reason: "there is no restore point named '\(label)'")
            }
        }
        for disk in [paths.localDisk, paths.userDisk] {
            try DiskSnapshots.revert(disk, to: label)
        }
    }

    /// Resets the personal VM to a fresh state: its local and user disks, and their restore
    /// points, are deleted; the next start makes them anew.
    public func reset(_ name: String) throws {
        let paths = try personalStopped(name, action: "reset")
        for disk in [paths.localDisk, paths.userDisk] {
            try? FileManager.default.removeItem(atPath: disk)
        }
        security.forget(vm: name)
    }

    private func personal(_ name: String) throws -> VMPaths {
        guard let definition = definitionIfKnown(name) else { throw EngineError.unknownVM(name) }
        guard definition.role == .personal else {
            throw EngineError.notAllowed(vm: name, reason: "restore points and reset are for the personal VM; the work VM is managed by IT")
        }
        return layout.vm(name)
    }

    private func personalStopped(_ name: String, action: String) throws -> VMPaths {
        let paths = try personal(name)
        let phase = try status().first { $0.name == name }?.phase
        guard phase == .stopped || phase == .failed else {
            throw EngineError.rejected(vm: name, reason: "stop the VM to \(action) (it is \(phase?.rawValue ?? "unknown"))")
        }
        return paths
    }
}
