// Disk conversion and overlay reset, Hearth beside qemu-img, measured in one run on the same
// files. Build in release: swift run -c release disk-convert-bench [--size-gib N] [--dir DIR]
//
// The source is a raw disk of N GiB (default 4) whose every other 64 MiB stripe holds
// pseudo-random data: half full, as the issue asks. Each conversion runs N times (default 8)
// per tool and mode, in rotating order, and the median counts: these machines are noisy enough that
// one run of either tool can take three times another.
import Foundation
import VirtualDisk

struct Options {
    var sizeGiB: UInt64 = 4
    var runs = 8
    var directory = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-bench-\(getpid())").path

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--size-gib": sizeGiB = UInt64(iterator.next() ?? "") ?? sizeGiB
            case "--dir": directory = iterator.next() ?? directory
            case "--runs": runs = max(1, Int(iterator.next() ?? "") ?? runs)
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

func hearthConvert(_ source: String, _ format: DiskFormat, to output: String, durable: Bool = true) throws {
    let image = try DiskOpener.open(source, format: format == .raw ? .qcow2 : .raw, policy: .standalone)
    _ = try DiskConverter.convert(image, to: output, options: .init(format: format, replace: true, durable: durable))
}

// Before each run, sync(2) writes back what earlier runs left dirty, so no run pays for
// another's writeback. qemu-img convert writes its output with cache=unsafe (no flush) by default; Hearth syncs
// before it renames the image into place. Each is measured both ways: Hearth with --no-sync
// beside qemu-img's default, Hearth's default beside qemu-img -t writeback (which flushes). Hearth
// writes a raw image around the page cache (O_DIRECT); so does qemu-img -t none (which flushes
// too), measured as a third peer.
struct Row {
    var name: String
    var hearthUnsynced: [Double] = []
    var peerUnsynced: [Double] = []
    var hearthSynced: [Double] = []
    var peerSynced: [Double] = []
    var peerDirect: [Double] = []
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}
var rows: [Row] = []
for (name, source, sourceFormat, target) in [("qcow2 → raw", qcow2, "qcow2", DiskFormat.raw), ("raw → qcow2", raw, "raw", DiskFormat.qcow2)] {
    var row = Row(name: name)
    let out = "\(options.directory)/out.\(target.rawValue)"
    func measure(_ body: () throws -> Void) throws -> Double {
        // Every run starts with no dirty pages of an earlier run still being written back.
        sync()
        let time = try seconds(body)
        try FileManager.default.removeItem(atPath: out)
        sync()
        return time
    }
    // The runs of an iteration go in a rotating order: removing a flushed 2 GiB output
    // leaves the filesystem work that the next run pays for, so no configuration may always
    // follow the same one.
    let configurations: [(inout Row) throws -> Void] = [
        { $0.hearthUnsynced.append(try measure { try hearthConvert(source, target, to: out, durable: false) }) },
        { $0.peerUnsynced.append(try measure { try qemuImg(["convert", "-f", sourceFormat, "-O", target.rawValue, source, out]) }) },
        { $0.hearthSynced.append(try measure { try hearthConvert(source, target, to: out) }) },
        { $0.peerSynced.append(try measure { try qemuImg(["convert", "-t", "writeback", "-f", sourceFormat, "-O", target.rawValue, source, out]) }) },
        { $0.peerDirect.append(try measure { try qemuImg(["convert", "-t", "none", "-f", sourceFormat, "-O", target.rawValue, source, out]) }) },
    ]
    for iteration in 0..<options.runs {
        for index in 0..<configurations.count {
            try configurations[(index + iteration) % configurations.count](&row)
        }
    }
    rows.append(row)
}

let gib = Double(size) / Double(1 << 30)
func cell(_ time: Double) -> String { String(format: "%6.2f s %5.2f GiB/s", time, gib / time) }
print("\nconvert, \(options.sizeGiB) GiB disk half full (median of \(options.runs), rotating order)")
print("               no flush                                     flushed before done")
print("direction      hearth --no-sync      qemu-img (default)      hearth                qemu-img -t writeback   qemu-img -t none")
for row in rows {
    print("\(row.name.padding(toLength: 13, withPad: " ", startingAt: 0))  \(cell(median(row.hearthUnsynced)))   \(cell(median(row.peerUnsynced)))    \(cell(median(row.hearthSynced)))   \(cell(median(row.peerSynced)))     \(cell(median(row.peerDirect)))")
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
