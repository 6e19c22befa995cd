import Foundation
import Logging

/// Assembles a ``GuestKit`` from downloaded packages.
struct GuestKitBuilder {
    let cacheDirectory: String
    let kernel: DebianPackage
    let busybox: DebianPackage
    let release: String
    let logger: Logger

    /// Size of the root disk: busybox needs 2 MiB; the rest is room for probes to write.
    static let rootDiskBytes = 64 << 20

    func build(into kitDirectory: String, progress: (String) -> Void) throws(GuestKitError) -> GuestKit {
        let files = FileManager.default
        let downloads = "\(cacheDirectory)/debs"
        let scratch = "\(cacheDirectory)/.build-\(UUID().uuidString)"
        defer { try? files.removeItem(atPath: scratch) }
        try createDirectory(downloads)
        try createDirectory("\(scratch)/kit")

        progress("downloading \(kernel.name) \(kernel.version) and busybox-static \(busybox.version)")
        let kernelDeb = try kernel.download(into: downloads)
        let busyboxDeb = try busybox.download(into: downloads)

        progress("unpacking the kernel and busybox")
        let unpacked = "\(scratch)/unpacked"
        try DebianPackage.extract(kernelDeb, into: unpacked)
        try DebianPackage.extract(busyboxDeb, into: unpacked)
        let busyboxBinary = try read("\(unpacked)/bin/busybox", item: "bin/busybox", package: busybox.name)
        let release = try kernelRelease(in: unpacked)
        let kernelImage = "\(unpacked)/boot/vmlinuz-\(release)"
        guard files.fileExists(atPath: kernelImage) else {
            throw .missingFromPackage(item: "boot/vmlinuz-\(release)", package: kernel.name)
        }

        progress("writing the initramfs (virtio modules for kernel \(release))")
        var initramfs = CPIOArchive()
        for directory in ["bin", "dev", "lib", "lib/modules", "newroot", "proc", "sys"] {
            initramfs.addDirectory(directory)
        }
        initramfs.addCharacterDevice("dev/console", major: 5, minor: 1)
        initramfs.addFile("init", contents: Data(GuestScripts.initramfsInit.utf8), mode: 0o755)
        initramfs.addFile("bin/busybox", contents: busyboxBinary, mode: 0o755)
        initramfs.addFile("bin/hearth-disk", contents: Data(GuestScripts.hearthDisk.utf8), mode: 0o755)
        var order: [String] = []
        for module in GuestScripts.modules {
            let name = (module as NSString).lastPathComponent
            let contents = try read("\(unpacked)/lib/modules/\(release)/\(module)", item: module, package: kernel.name)
            initramfs.addFile("lib/modules/\(name)", contents: contents)
            order.append(name)
        }
        initramfs.addFile("lib/modules/order", contents: Data((order.joined(separator: "\n") + "\n").utf8))
        try write(initramfs.finish(), to: "\(scratch)/kit/initramfs.cpio")
        do {
            try files.copyItem(atPath: kernelImage, toPath: "\(scratch)/kit/vmlinuz")
        } catch {
            throw .fileSystem(path: "\(scratch)/kit/vmlinuz", reason: error.localizedDescription)
        }

        progress("making the busybox root disk (ext4, \(Self.rootDiskBytes >> 20) MiB)")
        try makeRootDisk(busybox: busyboxBinary, busyboxPath: "\(unpacked)/bin/busybox", at: "\(scratch)/kit/root.img", scratch: scratch)

        let kit = GuestKit(
            directory: kitDirectory, kernelPackage: kernel.name, kernelVersion: kernel.version,
            kernelRelease: release, busyboxVersion: busybox.version, release: self.release
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let manifest: Data
        do {
            manifest = try encoder.encode(kit)
        } catch {
            throw .fileSystem(path: "kit.json", reason: "\(error)")
        }
        try write(manifest, to: "\(scratch)/kit/kit.json")

        // Publish whole: an older incomplete kit under the same key is replaced.
        try? files.removeItem(atPath: kitDirectory)
        do {
            try files.createDirectory(atPath: (kitDirectory as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try files.moveItem(atPath: "\(scratch)/kit", toPath: kitDirectory)
        } catch {
            throw .fileSystem(path: kitDirectory, reason: error.localizedDescription)
        }
        logger.info("guest kit built", metadata: ["kit.directory": "\(kitDirectory)", "kernel.release": "\(release)"])
        return kit
    }

    private func kernelRelease(in unpacked: String) throws(GuestKitError) -> String {
        let modules = (try? FileManager.default.contentsOfDirectory(atPath: "\(unpacked)/lib/modules")) ?? []
        guard modules.count == 1, let release = modules.first else {
            throw .missingFromPackage(item: "exactly one lib/modules/RELEASE folder", package: kernel.name)
        }
        return release
    }

    private func makeRootDisk(busybox: Data, busyboxPath: String, at image: String, scratch: String) throws(GuestKitError) {
        let root = "\(scratch)/root"
        for directory in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp", "mnt", "run"] {
            try createDirectory("\(root)/\(directory)")
        }
        try write(busybox, to: "\(root)/bin/busybox", mode: 0o755)
        // One link per applet, where busybox says it belongs (bin/sh, sbin/poweroff, …).
        let applets = try HostTool(name: busyboxPath, debianPackage: "busybox-static").run(["--list-full"])
        for applet in applets.split(separator: "\n") where !applet.isEmpty {
            let path = "\(root)/\(applet)"
            try? FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: "/bin/busybox")
        }
        try? FileManager.default.removeItem(atPath: "\(root)/sbin/init")
        try write(Data(GuestScripts.rootInit.utf8), to: "\(root)/sbin/init", mode: 0o755)
        try write(Data(GuestScripts.hearthDisk.utf8), to: "\(root)/bin/hearth-disk", mode: 0o755)
        try write(Data("\(release)\n".utf8), to: "\(root)/etc/hearth-release")
        try HostTool.mke2fs.run(
            ["-q", "-F", "-t", "ext4", "-L", "hearth-root", "-E", "root_owner=0:0", "-d", root, image, "\(Self.rootDiskBytes >> 10)k"],
            environment: ["E2FSPROGS_FAKE_TIME": "1"]
        )
    }

    private func createDirectory(_ path: String) throws(GuestKitError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .fileSystem(path: path, reason: error.localizedDescription)
        }
    }

    private func read(_ path: String, item: String, package: String) throws(GuestKitError) -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .missingFromPackage(item: item, package: package)
        }
        return data
    }

    private func write(_ data: Data, to path: String, mode: Int = 0o644) throws(GuestKitError) {
        do {
            try data.write(to: URL(fileURLWithPath: path))
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        } catch {
            throw .fileSystem(path: path, reason: error.localizedDescription)
        }
    }
}
