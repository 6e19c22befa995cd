import Foundation
import Testing
@testable import ImageSync

/// `hearth image pull` killed with SIGKILL at random moments, again and again: afterwards the
/// version is either absent or whole and verified, and the pull always finishes in the end.
@Suite struct KillResumeTests {
    /// The `hearth` executable built beside this test bundle.
    static var hearth: URL {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("hearth")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/hearth")
    }

    @Test func fiftyRandomKillsLoseNothingAndNeverShowAHalfImage() async throws {
        let fixture = try Fixture()
        let v1 = try fixture.disk("v1.raw", size: 32 << 20, regions: [(0, 6 << 20, 1), (20 << 20, 2 << 20, 2)])
        let v2 = try fixture.disk("v2.raw", size: 32 << 20, regions: [(2 << 20, 3 << 20, 3), (28 << 20, 1 << 20, 4)], base: v1)
        try fixture.publisher.publish(disk: v1.path, name: "debian", version: "1")
        try fixture.publisher.publish(disk: v2.path, name: "debian", version: "2")
        let binary = Self.hearth
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build hearth first (swift build --build-tests)")

        var generator = SystemRandomNumberGenerator()
        var kills = 0
        var attempts = 0
        var round = 0
        // Rounds of v1 then v2 into a fresh folder, each pull killed until one gets through.
        while kills < 50 {
            round += 1
            let store = fixture.file("store-\(round)")
            for (version, disk) in [("1", v1), ("2", v2)] {
                let final = ImageStore(root: store).imagePath(name: "debian", version: version)
                var finished = false
                while !finished {
                    attempts += 1
                    try #require(attempts < 1000, "the pulls never finished")
                    let process = Process()
                    process.executableURL = binary
                    // Slowed to 4 MiB/s so kills land in every phase (metadata, copying,
                    // fetching, finishing).
                    process.arguments = ["image", "pull", "debian", "--version", version, "--repo", fixture.repo.path,
                                         "--trust", fixture.anchor.path, "--into", store.path, "--limit-rate", "4M", "--json"]
                    process.standardOutput = FileHandle.nullDevice
                    process.standardError = FileHandle.nullDevice
                    try process.run()
                    try await Task.sleep(for: .seconds(Double.random(in: 0.0...1.5, using: &generator)))
                    if process.isRunning {
                        kill(process.processIdentifier, SIGKILL)
                        kills += 1
                    }
                    process.waitUntilExit()
                    // The invariant after every stop: no version, or the whole one.
                    if FileManager.default.fileExists(atPath: final.path) {
                        #expect(try Fixture.same(final, disk), "a visible \(version) that is not whole after \(kills) kills")
                        finished = true
                    } else {
                        #expect(process.terminationReason == .uncaughtSignal, "pull exited \(process.terminationStatus) without installing")
                    }
                }
            }
            #expect(ImageStore(root: store).installed().map(\.version) == ["1", "2"])
        }
    }
}
