// Disk conversion and overlay reset, Hearth beside qemu-img, measured in one run on the same
// files. Build in release: swift run -c release disk-convert-bench [--size-gib N] [--dir DIR]
//
// The source is a raw disk of N GiB (default 4) whose every other 64 MiB stripe holds
// pseudo-random data: half full, as the issue asks. Each conversion runs twice per tool,
// alternating tools, and the faster run of each counts (the page cache is warm for both).
import Foundation
import VirtualDisk

struct Options {
    var sizeGiB: UInt64 = 4
    var directory = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-bench-\(getpid())").path

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--size-gib": sizeGiB = UInt64(iterator.next() ?? "") ?? sizeGiB
            case "--dir": directory = iterator.next() ?? directory
            default: FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8)); exit(2)
            }
        }
    }
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let elapsed = try clock.measure(body)
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func qemuImg(_ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw VirtualDiskError.invalidRequest("qemu-img \(arguments) failed") }
}

func makeSource(_ path: String, size: UInt64) throws {
    let file = try DiskFile.create(path: path, replace: true)
    try file.truncate(to: size)
    let stripe: UInt64 = 64 << 20
    var state: UInt64 = 0x1234_5678
    var block = [UInt8](repeating: 0, count: 4 << 20)
    var offset: UInt64 = 0
    while offset < size {
        for position in stride(from: offset, to: min(offset + stripe, size), by: block.count) {
            block.withUnsafeMutableBytes { raw in
                for index in 0..<(raw.count / 8) {
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    raw.storeBytes(of: state, toByteOffset: index * 8, as: UInt64.self)
                }
            }
            try file.write(block, at: position)
        }
        offset += 2 * stripe
    }
    try file.sync()
}

let options = Options(CommandLine.arguments)
let size = options.sizeGiB << 30
try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: options.directory) }
let raw = "\(options.directory)/source.raw"
let qcow2 = "\(options.directory)/source.qcow2"
print("making a \(options.sizeGiB) GiB raw disk, half full, in \(options.directory)")
try makeSource(raw, size: size)
try qemuImg(["convert", "-f", "raw", "-O", "qcow2", raw, qcow2])

func hearthConvert(_ source: String, _ format: DiskFormat, to output: String) throws {
    let image = try DiskOpener.open(source, format: format == .raw ? .qcow2 : .raw, policy: .standalone)
    _ = try DiskConverter.convert(image, to: output, options: .init(format: format, replace: true))
}

// qemu-img convert writes its output with cache=unsafe (no flush) by default; Hearth syncs
// before it renames the image into place. Both qemu-img modes are shown.
var rows: [(String, Double, Double, Double)] = []
for (name, source, sourceFormat, target) in [("qcow2 → raw", qcow2, "qcow2", DiskFormat.raw), ("raw → qcow2", raw, "raw", DiskFormat.qcow2)] {
    var hearth = Double.infinity
    var peer = Double.infinity
    var peerSynced = Double.infinity
    for _ in 0..<3 {
        let out = "\(options.directory)/out.\(target.rawValue)"
        hearth = min(hearth, try seconds { try hearthConvert(source, target, to: out) })
        try FileManager.default.removeItem(atPath: out)
        peer = min(peer, try seconds { try qemuImg(["convert", "-f", sourceFormat, "-O", target.rawValue, source, out]) })
        try FileManager.default.removeItem(atPath: out)
        peerSynced = min(peerSynced, try seconds { try qemuImg(["convert", "-t", "writeback", "-f", sourceFormat, "-O", target.rawValue, source, out]) })
        try FileManager.default.removeItem(atPath: out)
    }
    rows.append((name, hearth, peer, peerSynced))
}

let gib = Double(size) / Double(1 << 30)
print("\nconvert, \(options.sizeGiB) GiB disk half full (best of 3, runs alternating)")
print("direction     hearth (synced)     qemu-img (default)  qemu-img -t writeback")
for (name, hearth, peer, peerSynced) in rows {
    print(String(format: "%@  %6.2f s %5.2f GiB/s  %6.2f s %5.2f GiB/s  %6.2f s %5.2f GiB/s", name.padding(toLength: 11, withPad: " ", startingAt: 0), hearth, gib / hearth, peer, gib / peer, peerSynced, gib / peerSynced))
}

// Overlay reset: the same work whatever the size of the disk below.
print("\noverlay reset (median of 21)")
print("base size   hearth disk reset")
for baseSize in ["1G", "64G", "4T"] {
    let base = "\(options.directory)/base-\(baseSize).qcow2"
    try qemuImg(["create", "-q", "-f", "qcow2", base, baseSize])
    let overlay = "\(options.directory)/overlay-\(baseSize).qcow2"
    try Overlay.create(at: overlay, base: base, baseFormat: .qcow2)
    var times: [Double] = []
    for _ in 0..<21 {
        times.append(try seconds { try Overlay.reset(overlay) })
    }
    times.sort()
    print(String(format: "%@   %7.3f ms", baseSize.padding(toLength: 9, withPad: " ", startingAt: 0), times[10] * 1000))
}
