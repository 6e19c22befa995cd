/// Bounds-checked reads of fixed-width integers from a byte array: every header field goes
/// through here, so a short or hostile header is an error naming the field, never a crash.
struct ByteReader {
    let bytes: [UInt8]
    let path: String
    /// Where `bytes` start in the file, for error messages.
    let baseOffset: UInt64

    init(_ bytes: [UInt8], path: String, baseOffset: UInt64 = 0) {
        self.bytes = bytes
        self.path = path
        self.baseOffset = baseOffset
    }

    func bigEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int, field: String) throws(VirtualDiskError) -> T {
        try check(offset, MemoryLayout<T>.size, field: field)
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size {
            value = value << 8 | T(bytes[offset + index])
        }
        return value
    }

    func littleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int, field: String) throws(VirtualDiskError) -> T {
        try check(offset, MemoryLayout<T>.size, field: field)
        var value: T = 0
        for index in (0..<MemoryLayout<T>.size).reversed() {
            value = value << 8 | T(bytes[offset + index])
        }
        return value
    }

    func slice(_ offset: Int, _ count: Int, field: String) throws(VirtualDiskError) -> ArraySlice<UInt8> {
        try check(offset, count, field: field)
        return bytes[offset..<offset + count]
    }

    func corrupt(_ field: String, at offset: Int, _ reason: String) -> VirtualDiskError {
        .corrupt(path: path, field: field, offset: baseOffset + UInt64(offset), reason: reason)
    }

    private func check(_ offset: Int, _ count: Int, field: String) throws(VirtualDiskError) {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
            throw corrupt(field, at: offset, "the structure ends before this field")
        }
    }
}

extension FixedWidthInteger {
    /// The value's bytes, most significant first.
    var bigEndianBytes: [UInt8] {
        (0..<MemoryLayout<Self>.size).reversed().map { UInt8(truncatingIfNeeded: self >> ($0 * 8)) }
    }

    /// The value's bytes, least significant first.
    var littleEndianBytes: [UInt8] {
        (0..<MemoryLayout<Self>.size).map { UInt8(truncatingIfNeeded: self >> ($0 * 8)) }
    }
}

extension Array where Element == UInt8 {
    mutating func putBigEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: value.bigEndianBytes)
    }

    mutating func putLittleEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: value.littleEndianBytes)
    }
}
