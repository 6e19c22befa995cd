import Foundation

extension Collection where Element == UInt8 {
    /// Whether `needle` occurs in these bytes (memchr for the first byte, then memcmp: test
    /// files are disk images of many MiB).
    public func contains(subsequence needle: some Collection<UInt8>) -> Bool {
        let haystack = Array(self), needle = Array(needle)
        guard !needle.isEmpty else { return true }
        guard needle.count <= haystack.count else { return false }
        return haystack.withUnsafeBytes { outer in
            needle.withUnsafeBytes { inner in
                let base = outer.baseAddress!, last = outer.count - inner.count
                var offset = 0
                while offset <= last {
                    guard let hit = memchr(base + offset, Int32(inner[0]), last - offset + 1) else { return false }
                    let position = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + position, inner.baseAddress!, inner.count) == 0 { return true }
                    offset = position + 1
                }
                return false
            }
        }
    }
}
