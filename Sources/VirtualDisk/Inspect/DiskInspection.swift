/// What `hearth disk inspect` shows: the partition table and each partition's filesystem,
/// or the filesystem of a disk without partitions.
public struct DiskInspection: Sendable, Codable, Equatable {
    public var virtualSize: UInt64
    public var partitionTable: PartitionTable?
    /// A filesystem on the whole disk (no partition table).
    public var filesystem: Filesystem?

    public init(of image: any DiskImage) throws(VirtualDiskError) {
        virtualSize = image.virtualSize
        if var table = try PartitionTable.read(from: image) {
            for index in table.partitions.indices {
                let partition = table.partitions[index]
                guard partition.offset < image.virtualSize else { continue }
                let length = min(partition.length, image.virtualSize - partition.offset)
                table.partitions[index].filesystem = try Filesystem.probe(image, offset: partition.offset, length: length)
            }
            partitionTable = table
        } else {
            filesystem = try Filesystem.probe(image, offset: 0, length: image.virtualSize)
        }
    }
}
