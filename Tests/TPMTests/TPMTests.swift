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

    init() throws {
        state = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-swtpm-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        var lastError: Error?
        for _ in 0..<5 {
            let port = Int.random(in: 20000..<60000)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = ["socket", "--tpm2", "--server", "type=tcp,port=\(port),bindaddr=127.0.0.1",
                                 "--ctrl", "type=tcp,port=\(port + 1),bindaddr=127.0.0.1", "--tpmstate", "dir=\(state)",
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

    func stop() {
        processBox?.terminate()
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
