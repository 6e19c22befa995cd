import Crypto
import Foundation
import HearthCore
@testable import HearthEngine
import Testing
import TestSupport
import TPM
import TPMPolicy

/// The security zone's standing without guests: no TPM, insecure development, and a TPM whose
/// measurements the Center has or has not approved.
struct SecurityZoneStandingTests {
    static func root() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-zone-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        return root
    }

    @Test func withoutATPMWorkDesktopsAreRefusedWithTheRemedy() throws {
        let root = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let zone = SecurityZone(mode: .tpm(tcti: "swtpm:host=127.0.0.1,port=1"), root: root)
        zone.start(measuring: [])
        #expect(zone.standing.report == "no-tpm")
        let refusal = try #require(zone.workRefusal)
        #expect(refusal.contains("no TPM answers") && refusal.contains("--insecure-no-tpm"), "\(refusal)")
        #expect(!zone.encryptsDisks)
    }

    @Test func insecureDevelopmentModeRunsWorkDesktopsAndSaysSo() throws {
        let root = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let zone = SecurityZone(mode: .insecureDevelopment, root: root)
        zone.start(measuring: [])
        #expect(zone.workRefusal == nil)
        #expect(zone.standing.report == "insecure-development", "reported at check-in")
        #expect(try zone.diskKey(vm: "work", disk: "user", role: .work) == nil, "no encryption without a TPM")
    }

    /// A restart within the same boot measures nothing again unless something changed; a
    /// changed component is measured, named, and keeps the work key sealed.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: SoftwareTPM.binary), "needs swtpm (scripts/setup-host test)"))
    func aRestartMeasuresOnlyWhatChangedAndAChangeIsNamed() throws {
        let root = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let swtpm = try SoftwareTPM()
        defer { swtpm.stop() }
        let files = ["engine", "qemu", "kernel"].map { (component: $0, path: "\(root)/\($0).bin") }
        for file in files { try Data(file.component.utf8).write(to: URL(fileURLWithPath: file.path)) }
        let key = P256.Signing.PrivateKey()

        let zone = SecurityZone(mode: .tpm(tcti: swtpm.tcti), root: root, bootID: "boot-1")
        zone.start(measuring: files)
        let request = try zone.trust(authority: PolicyAuthority(publicKey: key.publicKey))
        try zone.install(try PolicyAuthority.sign(PolicyTerms(pcrs: [request.pcr], pcrValues: [request.pcrValue], counter: request.counter,
                                                              counterValue: request.counterValue, policyRef: request.policyRef), with: key))
        #expect(zone.standing == .secure)
        let workKey = try zone.diskKey(vm: "work", disk: "user", role: .work)

        let again = SecurityZone(mode: .tpm(tcti: swtpm.tcti), root: root, bootID: "boot-1")
        again.start(measuring: files)
        #expect(again.standing == .secure, "an Engine restarted in the same boot is not re-measured")
        #expect(again.eventLog?.events.count == 3)
        #expect(try again.diskKey(vm: "work", disk: "user", role: .work) == workKey, "the same wrapped key opens")

        try Data("patched".utf8).write(to: URL(fileURLWithPath: files[1].path))
        let changed = SecurityZone(mode: .tpm(tcti: swtpm.tcti), root: root, bootID: "boot-1")
        changed.start(measuring: files)
        #expect(changed.standing.report == "tampered")
        #expect(changed.standing.reason?.contains("qemu") == true, "\(String(describing: changed.standing.reason))")
        #expect(changed.eventLog?.events.count == 4, "the change itself is in the log")
        #expect(throws: EngineError.self) { try changed.diskKey(vm: "work", disk: "user", role: .work) }
        #expect(try changed.diskKey(vm: "personal", disk: "user", role: .personal) != nil, "the personal key is the user's, sealed to this TPM only")
    }
}
