import Foundation
@testable import ImageSync

/// A repository with its keys, disks to publish and stores to pull into, in a scratch folder
/// removed afterwards.
final class Fixture {
    let path: URL
    let repo: URL
    let keys: URL
    let anchor: URL
    var publisher: Publisher { Publisher(repository: repo, keys: KeyStore(directory: keys)) }

    init(expiry: ExpiryPolicy = ExpiryPolicy(), now: Date = Date()) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-sync-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
        repo = path.appendingPathComponent("repo")
        keys = path.appendingPathComponent("keys")
        anchor = try Publisher(repository: repo, keys: KeyStore(directory: keys)).initialize(expiry: expiry, now: now)
    }

    deinit {
        try? FileManager.default.removeItem(at: path)
    }

    func file(_ name: String) -> URL { path.appendingPathComponent(name) }

    /// A sparse raw disk: `regions` of (offset, length, seed) hold pseudo-random data (not
    /// compressible, like real binaries; or, `compressible`, text of random words, like logs and
    /// configuration), the rest is holes.
    @discardableResult
    func disk(_ name: String, size: UInt64, regions: [(UInt64, Int, UInt64)], base: URL? = nil, compressible: Bool = false) throws -> URL {
        let url = file(name)
        if let base {
            try? FileManager.default.removeItem(at: url)
            try FileManager.default.copyItem(at: base, to: url)
        } else {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: size)
        for (offset, length, seed) in regions {
            try handle.seek(toOffset: offset)
            try handle.write(contentsOf: compressible ? Self.text(length, seed: seed) : Self.noise(length, seed: seed))
        }
        try handle.close()
        return url
    }

    /// Words drawn at random from a vocabulary of 512 made-up ones: zstd shrinks it about
    /// threefold, more when it sees more of it at once.
    static func text(_ count: Int, seed: UInt64) -> Data {
        let letters = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        let source = noise(512 * 8 + count, seed: seed &+ 7919)
        var vocabulary: [[UInt8]] = []
        for word in 0..<512 {
            let bytes = source[(word * 8)..<(word * 8 + 8)]
            let length = 3 + Int(bytes.first! % 6)
            vocabulary.append(bytes.prefix(length).map { letters[Int($0) % letters.count] })
        }
        var text: [UInt8] = []
        text.reserveCapacity(count + 16)
        var pick = 512 * 8
        while text.count < count {
            let choice = Int(source[pick]) | Int(source[pick + 1] & 1) << 8
            pick += 1
            text.append(contentsOf: vocabulary[choice])
            text.append(pick % 13 == 0 ? 0x0a : 0x20)
        }
        return Data(text.prefix(count))
    }

    static func noise(_ count: Int, seed: UInt64) -> Data {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        var data = [UInt8](repeating: 0, count: count)
        data.withUnsafeMutableBytes { buffer in
            var index = 0
            while index < count {
                state = state &+ 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                withUnsafeBytes(of: z) { word in
                    for byte in word where index < count {
                        buffer[index] = byte
                        index += 1
                    }
                }
            }
        }
        return Data(data)
    }

    /// A client for the repository, served by `transport`, keeping state in `store`.
    func client(_ transport: any RepositoryTransport, store: URL, now: @escaping @Sendable () -> Date = { Date() }) throws -> Puller {
        let anchorData = try Data(contentsOf: anchor)
        let trusted = try TrustedRepository(
            transport: transport, pinnedRoot: anchor,
            stateDirectory: ImageStore(root: store).trustDirectory(anchor: anchorData), now: now)
        return Puller(repository: trusted, store: ImageStore(root: store))
    }

    func local() -> LocalTransport { LocalTransport(root: repo) }

    /// True when two files hold the same bytes.
    static func same(_ a: URL, _ b: URL) throws -> Bool {
        let x = try FileHandle(forReadingFrom: a)
        let y = try FileHandle(forReadingFrom: b)
        defer { try? x.close(); try? y.close() }
        while true {
            let left = try x.read(upToCount: 1 << 20) ?? Data()
            let right = try y.read(upToCount: 1 << 20) ?? Data()
            if left != right { return false }
            if left.isEmpty { return true }
        }
    }
}
