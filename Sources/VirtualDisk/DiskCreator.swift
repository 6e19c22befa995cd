import Foundation

/// Makes new, empty images.
public enum DiskCreator {
    /// Creates an empty qcow2 image of `size` bytes at `path` (atomically; an existing file is
    /// left alone unless `replace`).
    public static func createQCOW2(at path: String, size: UInt64, clusterSize: UInt64 = 64 << 10, replace: Bool = false) throws(VirtualDiskError) {
        if !replace, FileManager.default.fileExists(atPath: path) {
            throw .invalidRequest("\(path) already exists; remove it or ask to replace it")
        }
        try AtomicOutput.write(to: path) { (file) throws(VirtualDiskError) in
            try QCOW2Writer(file: file, virtualSize: size, clusterSize: clusterSize).finish()
        }
    }
}
