import Foundation

extension GuestKit {
    /// Makes an empty ext4 disk image (raw) for a probe to write to.
    ///
    /// - Parameters:
    ///   - sizeMiB: 8…65536.
    ///   - label: the filesystem label.
    public static func makeDataDisk(at path: String, sizeMiB: Int = 64, label: String = "hearth-data") throws(GuestKitError) {
        guard (8...65536).contains(sizeMiB) else {
            throw .fileSystem(path: path, reason: "a data disk must be 8 to 65536 MiB, not \(sizeMiB)")
        }
        try HostTool.mke2fs.run(["-q", "-F", "-t", "ext4", "-L", label, path, "\(sizeMiB)M"])
    }

    /// Reads a file from an ext4 disk image without mounting it (with `debugfs`), so a test can
    /// check on the host what the guest wrote.
    ///
    /// - Returns: the file's contents, or `nil` when the filesystem has no such file.
    public static func readFile(_ pathInImage: String, fromDisk image: String) throws(GuestKitError) -> Data? {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-read-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // debugfs reports a missing file on stderr and still exits 0; `dump` writes nothing then.
        try HostTool(name: "debugfs", debianPackage: "e2fsprogs").run(["-R", "dump \(pathInImage) \(scratch)", image])
        return FileManager.default.contents(atPath: scratch)
    }

    /// Replaces (or creates) a file in an ext4 disk image without mounting it (with `debugfs`),
    /// as an image's next version changes a file.
    public static func writeFile(_ contents: Data, to pathInImage: String, inDisk image: String) throws(GuestKitError) {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-write-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        guard FileManager.default.createFile(atPath: scratch, contents: contents) else {
            throw .fileSystem(path: scratch, reason: "cannot write a scratch file")
        }
        let debugfs = HostTool(name: "debugfs", debianPackage: "e2fsprogs")
        // `rm` of a missing file only complains; `write` refuses to replace, hence both.
        try debugfs.run(["-w", "-R", "rm \(pathInImage)", image])
        try debugfs.run(["-w", "-R", "write \(scratch) \(pathInImage)", image])
        guard try readFile(pathInImage, fromDisk: image) == contents else {
            throw .fileSystem(path: image, reason: "debugfs did not write \(pathInImage)")
        }
    }
}
