/// An internal snapshot of a qcow2 image, as its snapshot table records it.
public struct QCOW2Snapshot: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    /// When it was taken, seconds since the Epoch.
    public var date: UInt64
    /// Guest run time when it was taken, in nanoseconds.
    public var vmClockNanoseconds: UInt64
    /// Bytes of saved VM state (0 for disk-only snapshots).
    public var vmStateSize: UInt64
    /// The virtual size when it was taken.
    public var virtualSize: UInt64
    public var l1TableOffset: UInt64
    public var l1Size: UInt32
}

extension QCOW2Image {
    /// The snapshot table, each entry bounds-checked.
    public func snapshots() throws(VirtualDiskError) -> [QCOW2Snapshot] {
        guard header.snapshotCount > 0 else { return [] }
        var snapshots: [QCOW2Snapshot] = []
        var offset = header.snapshotsOffset
        // The table's size is not in the header; read it entry by entry, each at most 64 KiB + 40.
        for index in 0..<Int(header.snapshotCount) {
            let fixed = try file.read(count: 40, at: offset, field: "snapshot \(index)")
            let reader = ByteReader(fixed, path: path, baseOffset: offset)
            let l1Offset = try reader.bigEndian(UInt64.self, at: 0, field: "snapshot l1_table_offset")
            let l1Size = try reader.bigEndian(UInt32.self, at: 8, field: "snapshot l1_size")
            let idLength = Int(try reader.bigEndian(UInt16.self, at: 12, field: "snapshot id_str_size"))
            let nameLength = Int(try reader.bigEndian(UInt16.self, at: 14, field: "snapshot name_size"))
            let dateSeconds = try reader.bigEndian(UInt32.self, at: 16, field: "snapshot date_sec")
            let vmClock = try reader.bigEndian(UInt64.self, at: 24, field: "snapshot vm_clock_nsec")
            var vmState = UInt64(try reader.bigEndian(UInt32.self, at: 32, field: "snapshot vm_state_size"))
            let extraLength = Int(try reader.bigEndian(UInt32.self, at: 36, field: "snapshot extra_data_size"))
            guard extraLength <= 1024 else {
                throw corrupt("snapshot \(index) extra_data_size", at: offset + 36, "\(extraLength) bytes of extra data is over 1024")
            }
            let variable = try file.read(count: extraLength + idLength + nameLength, at: offset + 40, field: "snapshot \(index)")
            let extra = ByteReader(variable, path: path, baseOffset: offset + 40)
            var diskSize = virtualSize
            if extraLength >= 8 {
                vmState = try extra.bigEndian(UInt64.self, at: 0, field: "snapshot vm_state_size_large")
            }
            if extraLength >= 16 {
                diskSize = try extra.bigEndian(UInt64.self, at: 8, field: "snapshot disk_size")
            }
            let id = String(decoding: variable[extraLength..<extraLength + idLength], as: UTF8.self)
            let name = String(decoding: variable[(extraLength + idLength)...], as: UTF8.self)
            guard l1Offset % header.clusterSize == 0, UInt64(l1Size) * 8 <= QCOW2Header.maximumL1Bytes,
                  l1Offset <= fileSize, UInt64(l1Size) * 8 <= fileSize - l1Offset
            else {
                throw corrupt("snapshot \(index) l1_table_offset", at: offset, "an L1 table of \(l1Size) entries at \(l1Offset) is misaligned or outside the file")
            }
            snapshots.append(QCOW2Snapshot(
                id: id, name: name, date: UInt64(dateSeconds), vmClockNanoseconds: vmClock, vmStateSize: vmState,
                virtualSize: diskSize, l1TableOffset: l1Offset, l1Size: l1Size
            ))
            offset += UInt64(40 + extraLength + idLength + nameLength + 7) / 8 * 8
        }
        return snapshots
    }

    /// A read-only view of the disk as it was when `idOrName` was taken.
    public func opening(snapshot idOrName: String) throws(VirtualDiskError) -> QCOW2Image {
        guard let snapshot = try snapshots().first(where: { $0.id == idOrName || $0.name == idOrName }) else {
            throw .invalidRequest("\(path) has no snapshot with the ID or name '\(idOrName)'")
        }
        let needed = snapshot.virtualSize == 0 ? 0 : (snapshot.virtualSize - 1) / header.bytesPerL2 + 1
        guard UInt64(snapshot.l1Size) >= needed else {
            throw corrupt("snapshot '\(snapshot.name)' l1_size", at: header.snapshotsOffset, "\(snapshot.l1Size) entries cannot map \(snapshot.virtualSize) bytes")
        }
        let table = try Self.readL1(file, offset: snapshot.l1TableOffset, count: snapshot.l1Size, field: "snapshot L1 table")
        return try QCOW2Image(file: file, header: header, l1: table, virtualSize: snapshot.virtualSize, backing: backing, dataFile: dataFile === file ? nil : dataFile, snapshot: snapshot)
    }
}
