import Crypto
import Foundation
import Testing
import TestSupport
@testable import TPM
import TPMPolicy

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
