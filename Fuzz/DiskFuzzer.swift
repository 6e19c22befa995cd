// libFuzzer target for every disk parser. scripts/fuzz compiles it together with the
// VirtualDisk sources into one module with `-sanitize=fuzzer,address` (SwiftPM's executables
// bring their own main, which libFuzzer must provide). HEARTH_FUZZ_FORMAT picks the parser
// (qcow2, vhd, vmdk, inspect, detect). Any input must end in a clear error or a result: never a
// crash, a hang or unbounded memory.
import Foundation

private let format = ProcessInfo.processInfo.environment["HEARTH_FUZZ_FORMAT"] ?? "qcow2"
private let path = "/dev/shm/hearth-fuzz-\(getpid()).img"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size)) else { return 0 }
    defer { unlink(path) }
    let named: DiskFormat? = switch format {
    case "inspect": .raw
    case "detect": nil
    default: DiskFormat(rawValue: format)
    }
    do {
        let image = try DiskOpener.open(path, format: named, policy: .standalone)
        _ = try? DiskInfo(of: image)
        // Walk a bounded number of extents and read a little of each: a hostile header may
        // claim an enormous disk, and the harness, not the parser, bounds the walk.
        var offset: UInt64 = 0
        for _ in 0..<256 where offset < image.virtualSize {
            let extent = try image.extent(at: offset, maxLength: image.virtualSize - offset)
            _ = try image.read(at: offset, count: Int(min(extent.length, 4096)))
            offset += extent.length
        }
        if let qcow2 = image as? QCOW2Image, let first = try qcow2.snapshots().first {
            _ = try qcow2.opening(snapshot: first.id).read(at: 0, count: Int(min(4096, first.virtualSize)))
        }
        _ = try DiskInspection(of: image)
    } catch {
        _ = "\(error)"
    }
    return 0
}
