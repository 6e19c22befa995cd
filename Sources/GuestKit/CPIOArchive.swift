import Foundation

/// Writes an initramfs in the cpio "newc" format the Linux kernel unpacks at boot.
///
/// Written here rather than by calling `cpio(1)` because an initramfs needs a `/dev/console`
/// device node, which `cpio` can only archive after `mknod` (root only), and because `cpio`
/// copies the builder's own owners and timestamps, so two builds of the same inputs would
/// differ. This writer gives every entry uid 0, gid 0 and mtime 0.
struct CPIOArchive {
    private(set) var data = Data()
    private var nextInode: UInt32 = 1

    mutating func addDirectory(_ path: String, mode: UInt32 = 0o755) {
        append(path: path, mode: 0o040000 | mode, body: Data())
    }

    mutating func addFile(_ path: String, contents: Data, mode: UInt32 = 0o644) {
        append(path: path, mode: 0o100000 | mode, body: contents)
    }

    mutating func addSymlink(_ path: String, target: String) {
        append(path: path, mode: 0o120777, body: Data(target.utf8))
    }

    mutating func addCharacterDevice(_ path: String, major: UInt32, minor: UInt32, mode: UInt32 = 0o600) {
        append(path: path, mode: 0o020000 | mode, body: Data(), rdev: (major, minor))
    }

    /// Appends the trailer and returns the archive.
    mutating func finish() -> Data {
        append(path: "TRAILER!!!", mode: 0, body: Data(), inode: 0)
        return data
    }

    private mutating func append(path: String, mode: UInt32, body: Data, rdev: (UInt32, UInt32) = (0, 0), inode: UInt32? = nil) {
        let name = Data(path.utf8) + [0]
        let fields: [UInt32] = [
            inode ?? nextInode, mode, 0, 0, mode & 0o040000 != 0 ? 2 : 1, 0,
            UInt32(body.count), 0, 0, rdev.0, rdev.1, UInt32(name.count), 0,
        ]
        if inode == nil { nextInode += 1 }
        var header = "070701"
        for field in fields {
            let hex = String(field, radix: 16, uppercase: true)
            header += String(repeating: "0", count: 8 - hex.count) + hex
        }
        data.append(contentsOf: header.utf8)
        data.append(name)
        pad()
        data.append(body)
        pad()
    }

    private mutating func pad() {
        let remainder = data.count % 4
        if remainder != 0 {
            data.append(contentsOf: [UInt8](repeating: 0, count: 4 - remainder))
        }
    }
}
