import Foundation
import Testing
@testable import VirtualDisk

/// qemu-img and qemu-io, the oracle these tests hold Hearth's disk code against.
enum Oracle {
    /// Runs a QEMU tool and returns its standard output; a failure is a test failure.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/\(tool)")
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw OracleError(message: "\(tool) \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): \(String(decoding: err, as: UTF8.self))\(String(decoding: out, as: UTF8.self))")
        }
        return String(decoding: out, as: UTF8.self)
    }

    @discardableResult
    static func qemuImg(_ arguments: String...) throws -> String {
        try run("qemu-img", arguments)
    }

    static func qemuIO(_ image: String, format: String, _ commands: String...) throws {
        try run("qemu-io", ["-f", format] + commands.flatMap { ["-c", $0] } + [image])
    }

    /// The virtual size qemu-img reports.
    static func virtualSize(_ image: String, format: String) throws -> UInt64 {
        let json = try qemuImg("info", "-f", format, "--output=json", image)
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        return (object?["virtual-size"] as? NSNumber)?.uint64Value ?? 0
    }

    /// What the guest sees, as qemu-img converts it to raw.
    static func rawBytes(_ image: String, format: String? = nil, snapshot: String? = nil, scratch: String) throws -> Data {
        let raw = "\(scratch)/oracle-\(UUID().uuidString.prefix(6)).raw"
        var arguments = ["convert"]
        if let format { arguments += ["-f", format] }
        if let snapshot { arguments += ["-l", "snapshot.name=\(snapshot)"] }
        arguments += ["-O", "raw", image, raw]
        try run("qemu-img", arguments)
        defer { try? FileManager.default.removeItem(atPath: raw) }
        return try Data(contentsOf: URL(fileURLWithPath: raw))
    }
}

struct OracleError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// A scratch folder per test, removed afterwards.
final class Scratch {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-disk-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    /// A sparse raw disk of `size` bytes with data in scattered, unaligned places, explicit
    /// zeros in one place, and holes elsewhere. Deterministic for a given seed.
    func patternDisk(_ name: String = "source.raw", size: UInt64 = 9 << 20 + 1536, seed: UInt64 = 1) throws -> String {
        let path = file(name)
        let disk = try DiskFile.create(path: path, replace: true)
        try disk.truncate(to: size)
        var generator = SplitMix(seed: seed)
        let regions: [(UInt64, Int, Bool)] = [
            (0, 100_000, true),
            ((1 << 20) + 512, 70_000, true),
            (3 << 20, 2 << 20, true),
            (5 << 20 + 4096, 512 << 10, false),
            (size - 4096, 4096, true),
        ]
        for (offset, length, random) in regions where offset + UInt64(length) <= size {
            let bytes = random ? (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) } : [UInt8](repeating: 0, count: length)
            try disk.write(bytes, at: offset)
        }
        return path
    }
}

/// A small deterministic generator (SplitMix64), so failures reproduce.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension DiskImage {
    /// Everything the guest sees, read in uneven pieces to exercise boundaries.
    func readAll() throws -> Data {
        var data = Data(count: Int(virtualSize))
        var offset: UInt64 = 0
        var step: UInt64 = 77_777
        while offset < virtualSize {
            let length = Int(min(step, virtualSize - offset))
            let chunk = try read(at: offset, count: length)
            data.replaceSubrange(Int(offset)..<Int(offset) + length, with: chunk)
            offset += UInt64(length)
            step = step == 77_777 ? 1 << 20 : 77_777
        }
        return data
    }
}
