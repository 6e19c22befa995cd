/// Internal snapshots of a qcow2 image: the personal VM's restore points. Not for an image a
/// running QEMU has open (take those through QMP). They work on LUKS-encrypted images too: a
/// snapshot moves tables and refcounts, which LUKS leaves in clear, and never touches the data.
public enum DiskSnapshots {
    public static func list(_ path: String) throws(VirtualDiskError) -> [QCOW2Snapshot] {
        try QCOW2Editor(path: path, allowDirty: true, allowLUKS: true, writable: false).snapshotTable().0
    }

    /// Takes a disk-only snapshot named `name`; its ID is the next free number.
    @discardableResult
    public static func create(_ path: String, name: String) throws(VirtualDiskError) -> QCOW2Snapshot {
        try QCOW2Editor(path: path, allowLUKS: true).createSnapshot(name: name)
    }

    /// Makes the disk read exactly as it did when the snapshot was taken.
    public static func revert(_ path: String, to idOrName: String) throws(VirtualDiskError) {
        try QCOW2Editor(path: path, allowLUKS: true).revert(to: idOrName)
    }

    public static func delete(_ path: String, _ idOrName: String) throws(VirtualDiskError) {
        try QCOW2Editor(path: path, allowLUKS: true).deleteSnapshot(idOrName)
    }
}
