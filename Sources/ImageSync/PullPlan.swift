/// One HTTP Range request (or file read): a run of a pack holding frames with blocks the client
/// lacks, with small gaps between them fetched rather than split into more requests.
public struct RangeRequest: Sendable, Equatable {
    /// One frame, and the blocks wanted from it.
    public struct Item: Sendable, Equatable {
        public struct Member: Sendable, Equatable {
            public var digest: Digest
            public var slot: UInt8
            public var length: UInt32
        }

        public var packOffset: UInt64
        public var storedLength: UInt32
        public var compressed: Bool
        public var frameBlocks: UInt8
        public var members: [Member]

        var end: UInt64 { packOffset + UInt64(storedLength) }
    }

    public var pack: Digest
    public var range: Range<UInt64>
    public var items: [Item]
}

/// What pulling a version will do: which blocks come from this machine and which from the
/// repository, in how many requests.
public struct PullPlan: Sendable {
    public var blocks: Int
    public var blocksAlreadyDone: Int
    public var blocksFromLocal: Int
    public var bytesFromLocal: UInt64
    /// Distinct blocks to download.
    public var blocksToFetch: Int
    public var requests: [RangeRequest]
    /// Bytes the requests move (compressed blocks plus the gaps between them).
    public var bytesToFetch: UInt64 { requests.reduce(0) { $0 + UInt64($1.range.count) } }

    /// Builds the requests for `needed` blocks (distinct digests) of `index`: each frame holding
    /// one of them is fetched once, whatever else it holds.
    /// - Parameter maximumGap: gaps up to this size between needed blocks in a pack are read
    ///   through rather than starting another request.
    static func requests(for needed: Set<Digest>, in index: BlockIndex, maximumGap: UInt64 = 64 << 10,
                         maximumRequest: UInt64 = 64 << 20) -> [RangeRequest] {
        var byPack: [UInt32: [UInt64: RangeRequest.Item]] = [:]
        var seen = Set<Digest>()
        for entry in index.entries where needed.contains(entry.digest) && seen.insert(entry.digest).inserted {
            let member = RangeRequest.Item.Member(digest: entry.digest, slot: entry.frameSlot, length: entry.length)
            if byPack[entry.pack]?[entry.packOffset] != nil {
                byPack[entry.pack]![entry.packOffset]!.members.append(member)
            } else {
                byPack[entry.pack, default: [:]][entry.packOffset] = .init(
                    packOffset: entry.packOffset, storedLength: entry.storedLength, compressed: entry.compressed,
                    frameBlocks: entry.frameBlocks, members: [member])
            }
        }
        var requests: [RangeRequest] = []
        for pack in byPack.keys.sorted() {
            let items = byPack[pack]!.values.sorted { $0.packOffset < $1.packOffset }
            var current: RangeRequest?
            for item in items {
                let end = item.packOffset + UInt64(item.storedLength)
                if var open = current {
                    if item.packOffset >= open.range.upperBound, item.packOffset - open.range.upperBound <= maximumGap,
                       end - open.range.lowerBound <= maximumRequest {
                        open.range = open.range.lowerBound..<end
                        open.items.append(item)
                        current = open
                        continue
                    }
                    if item.packOffset < open.range.upperBound {
                        // Overlapping items cannot come from an honest index; read separately.
                        requests.append(open)
                        current = RangeRequest(pack: index.packs[Int(pack)], range: item.packOffset..<end, items: [item])
                        continue
                    }
                    requests.append(open)
                }
                current = RangeRequest(pack: index.packs[Int(pack)], range: item.packOffset..<end, items: [item])
            }
            if let current { requests.append(current) }
        }
        return requests
    }
}

/// What pulling one version onto a machine holding others costs, from the signed indexes alone.
public struct DeltaEstimate: Codable, Sendable {
    public var name: String
    public var from: [String]
    public var to: String
    public var blocks: Int
    public var blocksReused: Int
    public var blocksToFetch: Int
    public var bytesToFetch: UInt64
    public var requests: Int
    /// The whole version, compressed: what a full download would move.
    public var fullBytes: UInt64
    public var virtualSize: UInt64
    public var dataBytes: UInt64

    /// - Parameters:
    ///   - held: indexes of the versions already on the machine.
    public static func estimate(target: TargetFile, index: BlockIndex, held: [(String, BlockIndex)]) -> DeltaEstimate {
        var have = Set<Digest>()
        for (_, other) in held { for entry in other.entries { have.insert(entry.digest) } }
        let needed = Set(index.entries.lazy.map(\.digest).filter { !have.contains($0) })
        let reused = index.entries.filter { have.contains($0.digest) }.count
        let requests = PullPlan.requests(for: needed, in: index)
        return DeltaEstimate(name: target.custom.name, from: held.map(\.0), to: target.custom.version,
                             blocks: index.entries.count, blocksReused: reused, blocksToFetch: needed.count,
                             bytesToFetch: requests.reduce(0) { $0 + UInt64($1.range.count) }, requests: requests.count,
                             fullBytes: index.storedBytes, virtualSize: index.virtualSize, dataBytes: index.dataBytes)
    }
}
