/// The findings of `hearth disk check`.
public struct CheckReport: Sendable, Codable, Equatable {
    /// Problems that can lose data: a cluster counted fewer times than it is used, a table
    /// pointing outside the file, an unreadable structure.
    public var errors: [String] = []
    /// Clusters counted but used by nothing: wasted space, harmless.
    public var leakedClusters: UInt64 = 0
    public var leakedBytes: UInt64 = 0
    /// Whether `repair` changed the image.
    public var repaired = false

    public var isClean: Bool { errors.isEmpty && leakedClusters == 0 }
}

/// Checks an image's structure and, for qcow2, every refcount against what really uses each
/// cluster. Repair is offered only where it is safe: setting refcounts to the true counts
/// (which reclaims leaks and stops a shared cluster from being overwritten).
public enum DiskChecker {
    public static func check(_ path: String, format: DiskFormat? = nil, repair: Bool = false, policy: DiskAccessPolicy? = nil) throws(VirtualDiskError) -> CheckReport {
        var resolved = format
        if resolved == nil {
            resolved = try DiskOpener.detect(try DiskFile(path: path))
        }
        let image = try DiskOpener.open(path, format: resolved, policy: policy ?? .sameDirectory(as: path))
        var report = CheckReport()
        if image is QCOW2Image {
            try checkQCOW2(path, report: &report, repair: repair)
        }
        // Every format: walk every extent of this layer, which touches every table entry.
        var offset: UInt64 = 0
        while offset < image.virtualSize {
            do {
                let extent = try image.extent(at: offset, maxLength: image.virtualSize - offset)
                offset += extent.length
            } catch {
                report.errors.append("\(error)")
                break
            }
        }
        return report
    }

    private static func checkQCOW2(_ path: String, report: inout CheckReport, repair: Bool) throws(VirtualDiskError) {
        let editor = try QCOW2Editor(path: path, allowDirty: true)
        let header = editor.header
        let clusterSize = header.clusterSize
        let fileSize = try editor.file.size()
        let fileClusters = (fileSize + clusterSize - 1) / clusterSize
        var expected: [UInt64: UInt64] = [:]
        func use(_ offset: UInt64, bytes: UInt64, what: String) {
            let count = max(1, (bytes + clusterSize - 1) / clusterSize)
            for cluster in (offset / clusterSize)..<(offset / clusterSize + count) {
                expected[cluster, default: 0] += 1
            }
        }
        use(0, bytes: clusterSize, what: "header")
        use(header.l1TableOffset, bytes: UInt64(header.l1Size) * 8, what: "L1 table")
        use(header.refcountTableOffset, bytes: UInt64(header.refcountTableClusters) * clusterSize, what: "refcount table")
        for block in editor.refcountTable where block != 0 {
            use(block, bytes: clusterSize, what: "refcount block")
        }
        let (snapshots, tableBytes) = try editor.snapshotTable()
        if !snapshots.isEmpty {
            use(header.snapshotsOffset, bytes: tableBytes, what: "snapshot table")
        }
        var trees: [[UInt64]] = [editor.l1]
        for snapshot in snapshots {
            use(snapshot.l1TableOffset, bytes: UInt64(snapshot.l1Size) * 8, what: "snapshot L1 table")
            trees.append(try editor.readTable(at: snapshot.l1TableOffset, entries: Int(snapshot.l1Size)))
        }
        for tree in trees {
            for entry in tree where entry & QCOW2Image.l1OffsetMask >= fileSize {
                report.errors.append("an L1 entry points at \(entry & QCOW2Image.l1OffsetMask), past the end of the \(fileSize)-byte file")
            }
            let valid = tree.map { $0 & QCOW2Image.l1OffsetMask < fileSize ? $0 : 0 }
            for cluster in try editor.clustersReached(by: valid) {
                expected[cluster, default: 0] += 1
                if cluster >= fileClusters {
                    report.errors.append("cluster \(cluster) is in use but lies past the end of the file")
                }
            }
        }
        // Compare with what is stored, cluster by cluster.
        var corrections: [(UInt64, Int64)] = []
        let last = max(fileClusters, (expected.keys.max() ?? 0) + 1)
        var block: (index: UInt64, bytes: [UInt8]?) = (UInt64.max, nil)
        for cluster in 0..<last {
            // One read per refcount block, not per cluster.
            let tableIndex = cluster / editor.entriesPerBlock
            if block.index != tableIndex {
                block = (tableIndex, try editor.refcountBlock(tableIndex))
            }
            let stored = block.bytes.map { QCOW2Editor.entry($0, index: cluster % editor.entriesPerBlock, bits: editor.refcountBits) } ?? 0
            let wanted = expected[cluster] ?? 0
            if stored == wanted { continue }
            if stored < wanted {
                report.errors.append("cluster \(cluster) is used \(wanted) times but counted \(stored): a write could overwrite data still in use")
            } else if wanted == 0 {
                report.leakedClusters += 1
                report.leakedBytes += clusterSize
            } else {
                report.errors.append("cluster \(cluster) is used \(wanted) times but counted \(stored)")
            }
            corrections.append((cluster, Int64(wanted) - Int64(stored)))
        }
        if header.incompatibleFeatures.contains(.dirty), !repair {
            report.errors.append("the image is marked dirty: its refcounts were not written back; --repair recomputes them")
        }
        if repair, !corrections.isEmpty || header.incompatibleFeatures.contains(.dirty) {
            for delta in Set(corrections.map(\.1)) {
                try editor.adjustRefcounts(corrections.filter { $0.1 == delta }.map(\.0), by: delta)
            }
            try editor.updateCopiedFlags()
            try editor.file.sync()
            try editor.markClean()
            report.repaired = true
        }
    }
}
