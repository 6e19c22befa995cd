import Foundation
import HearthCore
import Testing
@testable import HearthEngine

@Suite struct EngineStateStoreTests {
    func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-state-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func stateRoundTripsAndNoTemporaryFileStays() throws {
        let folder = try directory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = EngineStateStore(path: "\(folder)/state.json")
        #expect(try store.load() == EngineState())
        var state = EngineState()
        var record = EngineState.VMRecord()
        _ = record.lifecycle.handle(.startRequested)
        record.bootedImage = ImageReference(name: "win11", version: "2026.11")
        record.pid = 4242
        state.vms["work"] = record
        try store.save(state)
        try store.save(state)
        #expect(try store.load() == state)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["state.json"])
    }

    @Test func aWriteCutShortLeavesTheLastWholeState() throws {
        let folder = try directory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = EngineStateStore(path: "\(folder)/state.json")
        var state = EngineState()
        state.vms["personal"] = EngineState.VMRecord()
        try store.save(state)
        // A kill -9 during a save leaves at most a partial temporary file beside the state.
        try Data("{\"formatVersion\": 1, \"vms\": {\"per".utf8).write(to: URL(fileURLWithPath: "\(folder)/.state-dead.json"))
        #expect(try store.load() == state)
    }

    @Test func aDamagedOrNewerStateIsNamedNotGuessed() throws {
        let folder = try directory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = EngineStateStore(path: "\(folder)/state.json")
        try Data("not json".utf8).write(to: URL(fileURLWithPath: store.path))
        #expect(throws: EngineError.self) { _ = try store.load() }
        try Data("{\"formatVersion\": 99, \"vms\": {}}".utf8).write(to: URL(fileURLWithPath: store.path))
        do {
            _ = try store.load()
            Issue.record("loaded a state from a newer Hearth")
        } catch {
            #expect("\(error)".contains("upgrade Hearth"))
        }
    }
}

@Suite struct VMDefinitionTests {
    let image = ImageReference(name: "corp-win", version: "7")

    @Test func aValidListHasNoProblems() {
        let list = VMDefinitionList(vms: [
            VMDefinition(name: "work", role: .work, image: image),
            VMDefinition(name: "personal", role: .personal, image: image, network: .internet),
        ])
        #expect(list.problems.isEmpty)
    }

    @Test func eachProblemIsNamed() {
        let list = VMDefinitionList(vms: [
            VMDefinition(name: "../etc", role: .work, image: ImageReference(name: "a/b", version: "..")),
            VMDefinition(name: "work", role: .work, image: image, cpus: 0, memoryMiB: 1, localDiskBytes: 12),
            VMDefinition(name: "work", role: .personal, image: image),
        ])
        let problems = list.problems.joined(separator: "\n")
        #expect(problems.contains("name '../etc'"))
        #expect(problems.contains("image name 'a/b'"))
        #expect(problems.contains("image version '..'"))
        #expect(problems.contains("cpus must be 1–64"))
        #expect(problems.contains("memory must be"))
        #expect(problems.contains("local disk"))
        #expect(problems.contains("'work' is used by two VMs"))
    }
}
