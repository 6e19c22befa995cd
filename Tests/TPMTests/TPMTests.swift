import Crypto
import Foundation
import Testing
@testable import TPM

/// swtpm on loopback, started for each test with its own state folder and stopped after it (a
/// TPM that starts with every PCR at zero, as DESIGN.md notes).
final class SoftwareTPM: @unchecked Sendable {
    static let binary = "/usr/bin/swtpm"
    let state: String
    let port: Int

    /// A new TPM, or with `state` the same TPM after a reboot (its seeds kept, its PCRs zero).
    init(state: String? = nil) throws {
        self.state = state ?? FileManager.default.temporaryDirectory.appendingPathComponent("hearth-swtpm-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: self.state, withIntermediateDirectories: true)
        var lastError: Error?
        for _ in 0..<5 {
            let port = Int.random(in: 20000..<60000)
            let process = Process()
            // Through env --default-signal: the test process blocks SIGTERM, and a child would
            // inherit that and never stop (as QEMUProcess found).
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["--default-signal", Self.binary, "socket", "--tpm2", "--server", "type=tcp,port=\(port),bindaddr=127.0.0.1",
                                 "--ctrl", "type=tcp,port=\(port + 1),bindaddr=127.0.0.1", "--tpmstate", "dir=\(self.state)",
                                 "--flags", "not-need-init,startup-clear"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Ready once it accepts a TPM connection.
            for _ in 0..<50 {
                if (try? TPM(tcti: "swtpm:host=127.0.0.1,port=\(port)")) != nil {
                    self.port = port
                    self.processBox = process
                    return
                }
                guard process.isRunning else { break }
                usleep(100_000)
            }
            process.terminate()
            lastError = TPMError.unreachable("swtpm on port \(port)", "did not start")
        }
        throw lastError!
    }

    private var processBox: Process?
    var tcti: String { "swtpm:host=127.0.0.1,port=\(port)" }

    /// Powers it off, keeping its state for a reboot.
    func powerOff() {
        processBox?.terminate()
        // Not waitUntilExit: it spins on a cooperative thread.
        for _ in 0..<100 where processBox?.isRunning == true { usleep(50_000) }
    }

    func stop() {
        powerOff()
        try? FileManager.default.removeItem(atPath: state)
    }
}

@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: SoftwareTPM.binary), "needs swtpm (scripts/setup-host test)"))
struct TPMTests {
    static func digest(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Data(text.utf8))) }

    @Test func extendingAPCRChainsSHA256() throws {
        let swtpm = try SoftwareTPM()
        defer { swtpm.stop() }
        let tpm = try TPM(tcti: swtpm.tcti)
        #expect(try tpm.pcr(16) == [UInt8](repeating: 0, count: 32))
        let measured = Self.digest("hearth engine binary")
        try tpm.extend(16, sha256: measured)
        let expected = Array(SHA256.hash(data: Data([UInt8](repeating: 0, count: 32) + measured)))
        #expect(try tpm.pcr(16) == expected)
        #expect(try tpm.pcr(15) == [UInt8](repeating: 0, count: 32), "only PCR 16 moved")
    }

    @Test func aSecretSealedToPCRsUnsealsOnlyWhileTheyHoldTheSameValues() throws {
        let swtpm = try SoftwareTPM()
        defer { swtpm.stop() }
        let tpm = try TPM(tcti: swtpm.tcti)
        try tpm.extend(16, sha256: Self.digest("engine v1"))
        let key = try tpm.random(32)
        #expect(key.count == 32 && Set(key).count > 1)
        let sealed = try tpm.seal(key, toPCRs: [16])
        #expect(!sealed.privateArea.contains(subsequence: key), "the sealed blob must not hold the secret in clear")

        // Kept on disk and read back by a new connection (as at the next boot): it unseals.
        let stored = try JSONDecoder().decode(SealedSecret.self, from: JSONEncoder().encode(sealed))
        #expect(try TPM(tcti: swtpm.tcti).unseal(stored) == key)

        // Something else measured: the TPM refuses, and says why.
        try tpm.extend(16, sha256: Self.digest("a tampered engine"))
        #expect(throws: TPMError.policyMismatch([16])) { try tpm.unseal(stored) }

        // A damaged blob is named as such, not mistaken for tamper.
        var damaged = stored
        damaged.publicArea = Array(damaged.publicArea.prefix(5))
        #expect { try tpm.unseal(damaged) } throws: { "\($0)".contains("does not parse") }
    }

    @Test func aSecretSealedOnOneTPMDoesNotUnsealOnAnother() throws {
        let first = try SoftwareTPM(), second = try SoftwareTPM()
        defer { first.stop(); second.stop() }
        let sealed = try TPM(tcti: first.tcti).seal(Array("disk key".utf8), toPCRs: [16])
        #expect(throws: TPMError.self) { try TPM(tcti: second.tcti).unseal(sealed) }
    }

    /// Measured start across reboots: the log replays to the PCR; a key sealed to it unseals at
    /// the next boot when nothing changed, and not when a component did, which the log names.
    @Test func aMeasuredStartReplaysAndAChangedComponentKeepsTheKeySealed() throws {
        let files = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-measured-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: files, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: files) }
        let components = ["engine", "qemu", "kernel"].map { (component: $0, path: "\(files)/\($0)") }
        for (name, path) in components { try Data(repeating: UInt8(name.count), count: 3 << 20).write(to: URL(fileURLWithPath: path)) }

        var swtpm = try SoftwareTPM()
        defer { swtpm.stop() }
        let first = try TPM(tcti: swtpm.tcti).measure(components, into: 16)
        #expect(try first.replay() == TPM(tcti: swtpm.tcti).pcr(16), "the log replays to the PCR")
        let key = try TPM(tcti: swtpm.tcti).random(32)
        let sealed = try TPM(tcti: swtpm.tcti).seal(key, toPCRs: [16])

        func reboot() throws -> (TPM, EventLog) {
            let state = swtpm.state
            swtpm.powerOff()
            swtpm = try SoftwareTPM(state: state)
            let tpm = try TPM(tcti: swtpm.tcti)
            #expect(try tpm.pcr(16) == [UInt8](repeating: 0, count: 32), "a reboot starts the PCR at zero")
            return (tpm, try tpm.measure(components, into: 16))
        }
        let (same, unchanged) = try reboot()
        #expect(unchanged == first)
        #expect(try same.unseal(sealed) == key, "nothing changed: the key unseals")

        // One byte of the kernel changes.
        let handle = try #require(FileHandle(forUpdatingAtPath: components[2].path))
        try handle.seek(toOffset: 2 << 20)
        try handle.write(contentsOf: Data([0xFF]))
        try handle.close()
        let (tampered, changed) = try reboot()
        #expect(changed.firstDifference(from: first)?.component == "kernel")
        #expect(try changed.replay() == tampered.pcr(16))
        #expect(throws: TPMError.policyMismatch([16])) { try tampered.unseal(sealed) }
    }

    @Test func noTPMIsAClearError() {
        #expect { try TPM(tcti: "swtpm:host=127.0.0.1,port=1") } throws: { "\($0)".contains("no TPM answers") }
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<$0 + subsequence.count]) == subsequence }
    }
}
