import Foundation
import Logging

/// A bootable Linux guest for tests and demos, built from Debian packages only: Debian's cloud
/// kernel, an initramfs that loads virtio in the right order, and a busybox root disk on ext4
/// whose init prints ``bootMarker`` and runs a probe script handed to it.
public struct GuestKit: Sendable, Equatable, Codable {
    /// The guest prints this on its serial console once it is up.
    public static let bootMarker = "HEARTH-BOOT-MARKER"
    /// The fw_cfg name under which the guest looks for its probe script.
    public static let probeFirmwareName = "opt/org.hearth/probe"
    /// A probe's first lines when it runs under the Engine: mounts the VM's local and user disks
    /// (serials `local` and `user`) at `/mnt/local` and `/mnt/user`, making an ext2 filesystem on
    /// a disk that has none yet (its first boot). The probe ends with `umount /mnt/local /mnt/user`.
    public static let probeMountingEngineDisks = """
    for disk in local user; do
        dev=$(hearth-disk $disk)
        mkdir -p /mnt/$disk
        mount -t ext2 $dev /mnt/$disk 2>/dev/null || { mke2fs -q $dev && mount -t ext2 $dev /mnt/$disk; }
    done

    """
    /// The virtio serial of the root disk, which the initramfs mounts.
    public static let rootDiskSerial = "hearth-root"
    /// The kernel metapackage the kit follows.
    public static let kernelMetapackage = "linux-image-cloud-amd64"
    /// Bumped when the layout of a built kit changes.
    static let layoutVersion = 1

    /// The folder holding the kit's files.
    public var directory: String
    /// The kernel package and version the kit was built from.
    public var kernelPackage: String
    public var kernelVersion: String
    /// `uname -r` inside the guest.
    public var kernelRelease: String
    public var busyboxVersion: String
    /// What `/etc/hearth-release` says in the guest, and what the boot marker prints.
    public var release: String

    public var kernel: String { "\(directory)/vmlinuz" }
    public var initramfs: String { "\(directory)/initramfs.cpio" }
    /// The root disk image (raw, ext4). Treat as read-only: boot from an overlay or a copy.
    public var rootDisk: String { "\(directory)/root.img" }

    /// The kernel command line the kit's guest expects.
    public var kernelCommandLine: String {
        "console=ttyS0 loglevel=4 panic=-1 hearth.root=\(Self.rootDiskSerial)"
    }

    /// What a build did.
    public enum Provenance: String, Sendable {
        case cached
        case built
    }
}

extension GuestKit {
    /// The default cache: `$XDG_CACHE_HOME/hearth/guest-kit`, else `~/.cache/hearth/guest-kit`.
    public static var defaultCacheDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") {
            return "\(xdg)/hearth/guest-kit"
        }
        return "\(NSHomeDirectory())/.cache/hearth/guest-kit"
    }

    /// Returns the kit for the current Debian packages, building it unless an identical one is
    /// cached. A build happens in a scratch folder that is renamed into place whole, so an
    /// interrupted build never leaves a kit that looks complete.
    ///
    /// - Parameters:
    ///   - cacheDirectory: where kits and downloaded packages are kept.
    ///   - kernelMetapackage: the Debian metapackage whose kernel the kit boots.
    ///   - progress: called with one line per step, for a narrating caller.
    /// - Throws: ``GuestKitError``.
    public static func prepare(
        cacheDirectory: String = defaultCacheDirectory,
        kernelMetapackage: String = kernelMetapackage,
        logger: Logger = Logger(label: "hearth.guest-kit"),
        progress: (String) -> Void = { _ in }
    ) throws(GuestKitError) -> (kit: GuestKit, provenance: Provenance) {
        progress("resolving \(kernelMetapackage) and busybox-static with apt")
        let kernel = try DebianPackage.resolve(kernelMetapackage, followMetapackage: true)
        let busybox = try DebianPackage.resolve("busybox-static")
        let key = cacheKey(kernel: kernel, busybox: busybox)
        let kitDirectory = "\(cacheDirectory)/kits/\(key)"
        if let cached = load(from: kitDirectory) {
            logger.debug("guest kit cached", metadata: ["kit.directory": "\(kitDirectory)"])
            return (cached, .cached)
        }
        let builder = GuestKitBuilder(cacheDirectory: cacheDirectory, kernel: kernel, busybox: busybox, release: "guest-kit-\(key)", logger: logger)
        let kit = try builder.build(into: kitDirectory, progress: progress)
        return (kit, .built)
    }

    /// A kit previously built in `directory`, if it is whole.
    static func load(from directory: String) -> GuestKit? {
        guard let data = FileManager.default.contents(atPath: "\(directory)/kit.json"),
              var kit = try? JSONDecoder().decode(GuestKit.self, from: data)
        else { return nil }
        kit.directory = directory
        let complete = [kit.kernel, kit.initramfs, kit.rootDisk].allSatisfy { FileManager.default.fileExists(atPath: $0) }
        return complete ? kit : nil
    }

    /// Names a kit by everything that goes into it, so a new kernel, a new busybox or an
    /// edited script makes a new kit. FNV-1a is enough: this names cache entries and guards
    /// against nothing.
    static func cacheKey(kernel: DebianPackage, busybox: DebianPackage) -> String {
        let inputs = [
            "layout=\(layoutVersion)", kernel.name, kernel.version, busybox.version,
            GuestScripts.modules.joined(separator: ","), GuestScripts.initramfsInit, GuestScripts.rootInit, GuestScripts.hearthDisk,
        ].joined(separator: "\n")
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in inputs.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
