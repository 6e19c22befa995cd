extension QCOW2Editor {
    /// Writes one whole guest cluster, allocating or copying (for clusters and L2 tables shared
    /// with a snapshot) as needed. Data goes to disk before the L2 entry that points at it, and
    /// the L2 table before the L1 entry.
    func writeCluster(_ cluster: UInt64, _ data: UnsafeRawBufferPointer) throws(VirtualDiskError) {
        precondition(UInt64(data.count) == clusterSize, "whole clusters only")
        let l1Index = Int(cluster / header.l2Entries)
        let width = header.hasExtendedL2 ? 2 : 1
        let l2Index = Int(cluster % header.l2Entries) * width
        guard l1Index < l1.count else {
            throw .invalidRequest("cluster \(cluster) is past the end of \(path)")
        }
        var l2Offset = l1[l1Index] & QCOW2Image.l1OffsetMask
        var table: [UInt64]
        var movedTable = false
        if l2Offset == 0 {
            l2Offset = try allocate(clusters: 1)
            table = [UInt64](repeating: 0, count: Int(clusterSize / 8))
            movedTable = true
        } else {
            table = try readTable(at: l2Offset, entries: Int(clusterSize / 8))
            if try refcount(ofCluster: l2Offset / clusterSize) > 1 {
                // Shared with a snapshot: the active L1 gets its own copy of the table. What the
                // table maps is reached as often as before (once per L1), so its counts stay.
                for index in stride(from: 0, to: table.count, by: width) {
                    table[index] &= ~QCOW2Image.copiedFlag
                }
                let old = l2Offset
                l2Offset = try allocate(clusters: 1)
                try release(old, clusters: 1)
                movedTable = true
            }
        }
        let entry = table[l2Index]
        let host = entry & QCOW2Image.l1OffsetMask
        let compressed = entry & QCOW2Image.compressedFlag != 0
        if !compressed, host != 0, try refcount(ofCluster: host / clusterSize) == 1 {
            try file.write(data, at: host)
            table[l2Index] = host | QCOW2Image.copiedFlag
        } else {
            let fresh = try allocate(clusters: 1)
            try file.write(data, at: fresh)
            try adjustRefcounts(clustersUsed(byL2Entry: entry), by: -1)
            table[l2Index] = fresh | QCOW2Image.copiedFlag
        }
        if width == 2 {
            table[l2Index + 1] = 0x0000_0000_FFFF_FFFF // every subcluster allocated, none zero
        }
        try writeTable(table, at: l2Offset)
        if movedTable || l1[l1Index] & QCOW2Image.copiedFlag == 0 {
            l1[l1Index] = l2Offset | QCOW2Image.copiedFlag
            try writeTable(l1, at: header.l1TableOffset)
        }
    }
}
