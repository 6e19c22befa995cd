import Foundation

extension QCOW2Editor {
    /// The snapshot table as stored, and how many bytes it occupies.
    func snapshotTable() throws(VirtualDiskError) -> ([QCOW2Snapshot], UInt64) {
        let image = try QCOW2Image(file: file, header: header, l1: l1, virtualSize: header.virtualSize, backing: nil, dataFile: nil, snapshot: nil)
        let snapshots = try image.snapshots()
        let bytes = snapshots.reduce(UInt64(0)) { $0 + Self.serialize($1).count.asUInt64 }
        return (snapshots, bytes)
    }

    /// Writes a new snapshot table, points the header at it, then releases the old one.
    func replaceSnapshotTable(_ snapshots: [QCOW2Snapshot], oldBytes: UInt64) throws(VirtualDiskError) {
        let bytes = snapshots.flatMap(Self.serialize)
        var offset: UInt64 = 0
        if !bytes.isEmpty {
            offset = try allocate(clusters: (UInt64(bytes.count) + clusterSize - 1) / clusterSize)
            try file.write(bytes, at: offset)
            try file.sync()
        }
        let oldOffset = header.snapshotsOffset
        let oldCount = header.snapshotCount
        setSnapshotTable(offset: offset, count: UInt32(snapshots.count))
        try writeHeader()
        if oldCount > 0, oldBytes > 0 {
            try release(oldOffset, clusters: (oldBytes + clusterSize - 1) / clusterSize)
        }
    }

    static func serialize(_ snapshot: QCOW2Snapshot) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 40)
        bytes.putBigEndian(snapshot.l1TableOffset, at: 0)
        bytes.putBigEndian(snapshot.l1Size, at: 8)
        bytes.putBigEndian(UInt16(snapshot.id.utf8.count), at: 12)
        bytes.putBigEndian(UInt16(snapshot.name.utf8.count), at: 14)
        bytes.putBigEndian(UInt32(truncatingIfNeeded: snapshot.date), at: 16)
        bytes.putBigEndian(snapshot.vmClockNanoseconds, at: 24)
        bytes.putBigEndian(UInt32(truncatingIfNeeded: min(snapshot.vmStateSize, UInt64(UInt32.max))), at: 32)
        bytes.putBigEndian(UInt32(16), at: 36)
        bytes += snapshot.vmStateSize.bigEndianBytes + snapshot.virtualSize.bigEndianBytes
        bytes += Array(snapshot.id.utf8) + Array(snapshot.name.utf8)
        bytes += [UInt8](repeating: 0, count: (8 - bytes.count % 8) % 8)
        return bytes
    }

    /// Takes a disk-only snapshot of the active state.
    func createSnapshot(name: String, date: Date = Date()) throws(VirtualDiskError) -> QCOW2Snapshot {
        guard !name.isEmpty, name.utf8.count <= 1024 else {
            throw .invalidRequest("a snapshot name must be 1 to 1024 bytes")
        }
        guard header.refcountOrder > 0 else {
            throw .unsupported(path: path, feature: "snapshots in an image with 1-bit refcounts (convert it with larger refcounts first)")
        }
        let (existing, oldBytes) = try snapshotTable()
        guard !existing.contains(where: { $0.name == name || $0.id == name }) else {
            throw .invalidRequest("\(path) already has a snapshot named '\(name)'")
        }
        let id = String((existing.compactMap { UInt64($0.id) }.max() ?? 0) + 1)
        // Count the new references first: a crash from here on leaks, never shares unknowingly.
        try adjustRefcounts(try clustersReached(by: l1), by: 1)
        let l1Bytes = UInt64(l1.count) * 8
        let copy = try allocate(clusters: max(1, (l1Bytes + clusterSize - 1) / clusterSize))
        try writeTable(l1.map { $0 & ~QCOW2Image.copiedFlag }, at: copy)
        try updateCopiedFlags()
        let snapshot = QCOW2Snapshot(
            id: id, name: name, date: UInt64(date.timeIntervalSince1970), vmClockNanoseconds: 0, vmStateSize: 0,
            virtualSize: header.virtualSize, l1TableOffset: copy, l1Size: UInt32(l1.count)
        )
        try replaceSnapshotTable(existing + [snapshot], oldBytes: oldBytes)
        return snapshot
    }

    /// Deletes a snapshot and releases what only it used.
    func deleteSnapshot(_ idOrName: String) throws(VirtualDiskError) {
        let (existing, oldBytes) = try snapshotTable()
        guard let snapshot = existing.first(where: { $0.id == idOrName || $0.name == idOrName }) else {
            throw .invalidRequest("\(path) has no snapshot with the ID or name '\(idOrName)'")
        }
        try replaceSnapshotTable(existing.filter { $0 != snapshot }, oldBytes: oldBytes)
        let table = try readTable(at: snapshot.l1TableOffset, entries: Int(snapshot.l1Size))
        try adjustRefcounts(try clustersReached(by: table), by: -1)
        try release(snapshot.l1TableOffset, clusters: max(1, (UInt64(snapshot.l1Size) * 8 + clusterSize - 1) / clusterSize))
        try updateCopiedFlags()
    }

    /// Makes the disk read as it was when the snapshot was taken; the snapshot stays.
    func revert(to idOrName: String) throws(VirtualDiskError) {
        let (existing, _) = try snapshotTable()
        guard let snapshot = existing.first(where: { $0.id == idOrName || $0.name == idOrName }) else {
            throw .invalidRequest("\(path) has no snapshot with the ID or name '\(idOrName)'")
        }
        let table = try readTable(at: snapshot.l1TableOffset, entries: Int(snapshot.l1Size)).map { $0 & ~QCOW2Image.copiedFlag }
        // Only the difference changes: clusters both trees reach keep their count, so a
        // narrow refcount cannot overflow on the way.
        var balance: [UInt64: Int] = [:]
        for cluster in try clustersReached(by: table) { balance[cluster, default: 0] += 1 }
        for cluster in try clustersReached(by: l1) { balance[cluster, default: 0] -= 1 }
        let gained = balance.flatMap { cluster, delta in delta > 0 ? Array(repeating: cluster, count: delta) : [] }
        let lost = balance.flatMap { cluster, delta in delta < 0 ? Array(repeating: cluster, count: -delta) : [] }
        try adjustRefcounts(gained, by: 1)
        let newL1 = try allocate(clusters: max(1, (UInt64(table.count) * 8 + clusterSize - 1) / clusterSize))
        try writeTable(table, at: newL1)
        try file.sync()
        let oldL1 = header.l1TableOffset
        let oldL1Clusters = max(1, (UInt64(l1.count) * 8 + clusterSize - 1) / clusterSize)
        l1 = table
        setActiveL1(offset: newL1, size: snapshot.virtualSize)
        try writeHeader()
        try adjustRefcounts(lost, by: -1)
        try release(oldL1, clusters: oldL1Clusters)
        try updateCopiedFlags()
    }
}

extension Int {
    var asUInt64: UInt64 { UInt64(self) }
}
