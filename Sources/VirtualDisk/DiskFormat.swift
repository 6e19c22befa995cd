/// The on-disk formats this library reads; see ``DiskImage`` for what each supports.
public enum DiskFormat: String, Sendable, Codable, CaseIterable {
    case raw
    case qcow2
    case vhd
    case vmdk

    /// Names the format from the first bytes of a file and, for VHD, its last 512 bytes.
    /// Anything unrecognised is raw, so callers that know the format must name it: a raw
    /// image whose guest wrote a qcow2 header at sector 0 must never be opened as qcow2.
    static func detect(head: [UInt8], tail: [UInt8]) -> DiskFormat {
        if head.starts(with: [0x51, 0x46, 0x49, 0xFB]) { return .qcow2 }
        if head.starts(with: Array("KDMV".utf8)) { return .vmdk }
        if head.starts(with: Array("# Disk DescriptorFile".utf8)) { return .vmdk }
        if head.starts(with: Array("conectix".utf8)) || tail.starts(with: Array("conectix".utf8)) { return .vhd }
        return .raw
    }
}
