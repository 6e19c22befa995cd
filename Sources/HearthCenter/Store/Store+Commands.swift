import Crypto
import Foundation
import HearthCore
import SQLKit
import TPMPolicy

/// A command with its whole history, as admins see it.
public struct CommandRecord: Codable, Sendable, Equatable {
    public var id: String
    public var deviceID: String
    public var kind: DeviceCommand.Kind
    public var vm: String?
    public var state: DeviceCommand.State
    public var createdBy: String
    public var created: Date
    public var approvedBy: String?
    public var delivered: Date?
    public var acknowledged: Date?
    public var finished: Date?
    public var result: String?
}

/// Center-wide settings an owner changes.
public struct CenterSettings: Codable, Sendable, Equatable {
    /// A wipe waits for a second admin's approval (on unless turned off).
    public var wipeNeedsApproval: Bool = true
}

extension Store {
    // MARK: Settings

    public func settings() async throws -> CenterSettings {
        try await database.read { db in
            var settings = CenterSettings()
            if let value = try await db.raw("SELECT value FROM settings WHERE name = 'wipeNeedsApproval'").first()?.decode(column: "value", as: String.self) {
                settings.wipeNeedsApproval = value != "false"
            }
            return settings
        }
    }

    public func setSettings(_ settings: CenterSettings, by actor: Actor) async throws {
        let before = try await self.settings()
        try await database.transaction { db in
            try await db.raw("DELETE FROM settings WHERE name = 'wipeNeedsApproval'").run()
            try await db.raw("INSERT INTO settings (name, value) VALUES ('wipeNeedsApproval', \(bind: settings.wipeNeedsApproval ? "true" : "false"))").run()
            try await Self.audit(db, at: seconds, actor, "settings.set", "center", before: before, after: settings)
        }
    }

    // MARK: Commands

    /// Queues a command for a device; a wipe waits for approval when the settings say so.
    public func issueCommand(device deviceID: String, kind: DeviceCommand.Kind, vm: String?, by actor: Actor) async throws -> CommandRecord {
        let device = try await device(id: deviceID)
        guard device.retired == nil else { throw APIError.conflict("device \(deviceID) is retired; it takes no more commands") }
        if kind == .restartVM, vm == nil { throw APIError.badRequest("restartVM needs the VM's name (vm)") }
        if let vm { try Validate.name(vm, what: "a VM name") }
        let approval = try await settings().wipeNeedsApproval
        let state: DeviceCommand.State = kind == .wipe && approval ? .awaitingApproval : .pending
        let record = CommandRecord(id: UUID().uuidString.lowercased(), deviceID: deviceID, kind: kind, vm: vm, state: state,
                                   createdBy: actor.name, created: Self.date(seconds))
        try await database.transaction { db in
            try await db.raw("""
                INSERT INTO commands (id, device_id, kind, vm, state, created_by, created)
                VALUES (\(bind: record.id), \(bind: deviceID), \(bind: kind.rawValue), \(bind: vm), \(bind: state.rawValue), \(bind: actor.name), \(bind: seconds))
                """).run()
            try await Self.audit(db, at: seconds, actor, "command.issue", "device:\(deviceID)", before: nil,
                                 after: ["command": record.id, "kind": kind.rawValue, "state": state.rawValue])
        }
        return record
    }

    /// A second admin approves a wipe; the admin who issued it cannot.
    public func approveCommand(id: String, by actor: Actor) async throws -> CommandRecord {
        let command = try await command(id: id)
        guard command.state == .awaitingApproval else {
            throw APIError.conflict("command \(id) is \(command.state.rawValue), not awaiting approval")
        }
        guard command.createdBy != actor.name else {
            throw APIError.forbidden("a wipe needs a second admin: \(actor.name) issued it and cannot approve it too")
        }
        try await database.transaction { db in
            try await db.raw("UPDATE commands SET state = 'pending', approved_by = \(bind: actor.name) WHERE id = \(bind: id) AND state = 'awaitingApproval'").run()
            try await Self.audit(db, at: seconds, actor, "command.approve", "device:\(command.deviceID)", before: ["state": command.state.rawValue],
                                 after: ["command": id, "kind": command.kind.rawValue, "state": "pending"])
        }
        return try await self.command(id: id)
    }

    /// Cancels a command the device has not acknowledged yet.
    public func cancelCommand(id: String, by actor: Actor) async throws -> CommandRecord {
        let command = try await command(id: id)
        guard [.awaitingApproval, .pending, .delivered].contains(command.state) else {
            throw APIError.conflict("command \(id) is already \(command.state.rawValue) and cannot be cancelled")
        }
        try await database.transaction { db in
            try await db.raw("UPDATE commands SET state = 'cancelled', finished = \(bind: seconds) WHERE id = \(bind: id)").run()
            try await Self.audit(db, at: seconds, actor, "command.cancel", "device:\(command.deviceID)", before: ["state": command.state.rawValue],
                                 after: ["command": id, "state": "cancelled"])
        }
        return try await self.command(id: id)
    }

    /// Commands for a device to carry out now: pending ones become delivered; delivered ones not
    /// yet acknowledged are delivered again (a lost answer does not lose the command).
    func deliverCommands(to deviceID: String, db: any SQLDatabase, now: Int64) async throws -> [DeviceCommand] {
        let rows = try await db.raw("""
            SELECT * FROM commands WHERE device_id = \(bind: deviceID) AND state IN ('pending', 'delivered') ORDER BY created, id
            """).all()
        let commands = try rows.map(Self.command)
        if commands.contains(where: { $0.state == .pending }) {
            try await db.raw("UPDATE commands SET state = 'delivered', delivered = \(bind: now) WHERE device_id = \(bind: deviceID) AND state = 'pending'").run()
        }
        return commands.map { DeviceCommand(id: $0.id, kind: $0.kind, vm: $0.vm, issued: $0.created) }
    }

    /// The device reports on a command. Reports are idempotent: the same report twice changes
    /// nothing; a report for a finished command is refused.
    public func reportCommand(id: String, device: Device, report: CommandReport, address: String) async throws -> CommandRecord {
        let command = try await command(id: id)
        guard command.deviceID == device.id else { throw APIError.notFound("no command \(id) for this device") }
        guard [.acknowledged, .completed, .failed].contains(report.state) else {
            throw APIError.badRequest("a device reports acknowledged, completed or failed, not \(report.state.rawValue)")
        }
        if command.state == report.state { return command }
        let order: [DeviceCommand.State] = [.delivered, .acknowledged, .completed]
        switch command.state {
        case .completed, .failed, .cancelled:
            throw APIError.conflict("command \(id) is already \(command.state.rawValue)")
        case .awaitingApproval, .pending:
            throw APIError.conflict("command \(id) was not delivered yet")
        case .delivered, .acknowledged:
            if report.state == .acknowledged, (order.firstIndex(of: command.state) ?? 0) >= 1 { return command }
        }
        if let result = report.result, result.utf8.count > 65536 { throw APIError.badRequest("a result is at most 64 KiB") }
        let column = report.state == .acknowledged ? "acknowledged" : "finished"
        try await database.transaction { db in
            try await db.raw("UPDATE commands SET state = \(bind: report.state.rawValue), \(unsafeRaw: column) = \(bind: seconds), result = COALESCE(\(bind: report.result), result) WHERE id = \(bind: id)").run()
            try await Self.audit(db, at: seconds, .device(device.id, address: address), "command.\(report.state.rawValue)", "device:\(device.id)",
                                 before: ["state": command.state.rawValue],
                                 after: ["command": id, "kind": command.kind.rawValue, "state": report.state.rawValue, "result": report.result ?? ""])
            if command.kind == .wipe, report.state == .completed {
                try await eraseWorkKey(of: device.id, db: db)
                try await verifyWipe(command: id, result: report.result, device: device.id, address: address, db: db)
            }
        }
        return try await self.command(id: id)
    }

    public func commands(device deviceID: String?) async throws -> [CommandRecord] {
        try await database.read { db in
            if let deviceID {
                return try await db.raw("SELECT * FROM commands WHERE device_id = \(bind: deviceID) ORDER BY created DESC, id").all().map(Self.command)
            }
            return try await db.raw("SELECT * FROM commands ORDER BY created DESC, id LIMIT 500").all().map(Self.command)
        }
    }

    public func command(id: String) async throws -> CommandRecord {
        let row = try await database.read { db in try await db.raw("SELECT * FROM commands WHERE id = \(bind: id)").first() }
        guard let row else { throw APIError.notFound("no command \(id)") }
        return try Self.command(row)
    }

    static func command(_ row: any SQLRow) throws -> CommandRecord {
        CommandRecord(id: try row.decode(column: "id", as: String.self), deviceID: try row.decode(column: "device_id", as: String.self),
                      kind: DeviceCommand.Kind(rawValue: try row.decode(column: "kind", as: String.self)) ?? .lock,
                      vm: try row.decode(column: "vm", as: String?.self),
                      state: DeviceCommand.State(rawValue: try row.decode(column: "state", as: String.self)) ?? .failed,
                      createdBy: try row.decode(column: "created_by", as: String.self), created: date(try row.decode(column: "created", as: Int64.self)),
                      approvedBy: try row.decode(column: "approved_by", as: String?.self),
                      delivered: try row.decode(column: "delivered", as: Int64?.self).map(date),
                      acknowledged: try row.decode(column: "acknowledged", as: Int64?.self).map(date),
                      finished: try row.decode(column: "finished", as: Int64?.self).map(date),
                      result: try row.decode(column: "result", as: String?.self))
    }

    // MARK: Check-in

    /// Records the status of the device whose certificate has `certificateSerial` and answers
    /// with its desired state, delivering the commands waiting for it.
    ///
    /// Every Engine calls this at its interval, so it is the Center's hot path: one statement
    /// records the status and returns the device, its user and groups, the catalog version and
    /// whether commands wait. Only a device with commands waiting, or one reporting
    /// measurements, costs more (docs/PERFORMANCE.md).
    public func checkIn(certificateSerial serial: String, status: DeviceStatus, address: String, leaseSigner: LeaseSigner,
                        policySigner: PolicySigner) async throws -> CheckInResponse {
        let now = seconds
        let nonce = Secrets.nonce()
        let record = CheckInRecord(serial: serial, now: now, address: address, status: String(decoding: try JSONEncoder().encode(status), as: UTF8.self), nonce: nonce)
        // Measurements are judged before the nonce they were quoted over is replaced.
        let judged = status.measurements != nil
        let found = try await database.frequent { connection in
            try CheckInStatements.Found(judged ? try await connection.rows(CheckInFind(serial: serial)) : try await connection.rows(record))
        }
        guard let found else { throw APIError.forbidden("this device was retired or is not enrolled; enroll it again with a new token") }
        // Nothing was written yet when measurements came (`CheckInFind`).
        if let problems = status.measurements?.problems, !problems.isEmpty {
            throw APIError.badRequest("measurements: \(problems.joined(separator: "; "))")
        }
        let vms = Self.desiredVMs(username: found.username, groups: found.groups, catalog: try await catalog(version: found.catalogVersion))
        var verdict: String?, policy: SignedMeasurementPolicy?
        if let report = status.measurements {
            (verdict, policy) = try await judge(report, device: found.deviceID, address: address, policySigner: policySigner)
            _ = try await database.frequent { connection in try await connection.rows(record) }
        }
        var commands: [DeviceCommand] = []
        if found.commandsWaiting {
            commands = try await database.transaction { db in try await deliverCommands(to: found.deviceID, db: db, now: now) }
        }
        let (leaseDays, interval) = Self.leaseTerms(vms)
        let issued = Self.date(now)
        let lease = try leaseSigner.sign(Lease.Terms(deviceID: found.deviceID, issued: issued, expires: issued.addingTimeInterval(TimeInterval(leaseDays) * 86400)))
        return CheckInResponse(deviceID: found.deviceID, userID: found.userID, serverTime: issued, checkInInterval: interval,
                               vms: vms, lease: lease, commands: commands, policyKey: policySigner.publicKey,
                               securityPolicy: policy, measurementVerdict: verdict, nonce: nonce)
    }

    /// The Center's verdict on a device's measured start, and the policy it signs for its work
    /// key when it approves: the first measurements a device reports are trusted (on first use,
    /// audited); later ones must be the same, or an admin approves them. A work key erased by a
    /// wipe is never approved again, and a log that does not replay to its PCR is refused.
    func judge(_ report: MeasurementReport, device: String, address: String, policySigner: PolicySigner) async throws -> (String, SignedMeasurementPolicy?) {
        let now = seconds
        return try await database.transaction { db in
            let row = try await db.raw("""
                SELECT approved_measurements, measurement_verdict, erased_policy_refs, attestation_key, attestation_nonce FROM devices WHERE id = \(bind: device)
                """).first()
            let pinned = try row?.decode(column: "attestation_key", as: String?.self)
            let expectedNonce = try row?.decode(column: "attestation_nonce", as: String?.self)
            let decoder = JSONDecoder()
            let approved = try row?.decode(column: "approved_measurements", as: String?.self)
                .flatMap { try? decoder.decode([MeasurementReport.Component].self, from: Data($0.utf8)) }
            let erased = try row?.decode(column: "erased_policy_refs", as: String?.self)
                .flatMap { try? decoder.decode([String].self, from: Data($0.utf8)) } ?? []
            let previous = try row?.decode(column: "measurement_verdict", as: String?.self)
            var verdict: String
            var trusted: [MeasurementReport.Component]?
            func same(_ a: [MeasurementReport.Component], _ b: [MeasurementReport.Component]) -> Bool {
                a.map { [$0.component, $0.sha256] } == b.map { [$0.component, $0.sha256] }
            }
            // A wipe's event follows the measured start in the same boot; its receipt is checked
            // on its own, and it changes nothing of what was approved.
            let measured = report.components.filter { $0.component != "wipe" }
            // The TPM's word on the PCR: required once a device has given it.
            var attested = false
            var attestationProblem: String?
            if let attestation = report.attestation {
                do {
                    try Self.verify(attestation, pinned: pinned, nonce: expectedNonce, pcr: report.pcr, pcrValue: report.pcrValue)
                    attested = true
                    if pinned == nil {
                        try await db.raw("UPDATE devices SET attestation_key = \(bind: attestation.key) WHERE id = \(bind: device)").run()
                    }
                } catch {
                    attestationProblem = "\(error)"
                }
            } else if pinned != nil {
                attestationProblem = "the report carries no TPM quote, and this device attested before"
            }
            if let attestationProblem {
                verdict = "refused: \(attestationProblem)"
            } else if measured.isEmpty {
                verdict = "refused: the report holds no measured start"
            } else if !PolicySigner.replays(report) {
                verdict = "refused: the measurements do not replay to the PCR value reported"
            } else if erased.contains(report.policyRef) {
                verdict = "refused: this work key was erased by a wipe"
            } else if let approved {
                if same(approved, measured) {
                    verdict = "approved"
                } else if let changed = zip(measured, approved).first(where: { $0.0.component != $0.1.component || $0.0.sha256 != $0.1.sha256 })?.0
                            ?? (measured.count > approved.count ? measured[approved.count] : nil) {
                    verdict = "changed: \(changed.component) (\(changed.path)) is not what was approved; an admin approves the new measurements if the change is expected"
                } else {
                    verdict = "changed: \(approved[measured.count].component) is no longer measured; an admin approves the new measurements if the change is expected"
                }
            } else {
                verdict = "approved (first measurements, trusted on first use)"
                trusted = measured
            }
            if attested, verdict.hasPrefix("approved") { verdict += "; attested by the TPM" }
            let trustedJSON = try trusted.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
            try await db.raw("""
                UPDATE devices SET measurement_verdict = \(bind: verdict), approved_measurements = COALESCE(\(bind: trustedJSON), approved_measurements)
                WHERE id = \(bind: device)
                """).run()
            // Audited when the verdict changes in kind (approved, changed, refused), not at every check-in.
            func kind(_ verdict: String?) -> String { String((verdict ?? "").prefix { $0.isLetter }) }
            if kind(verdict) != kind(previous) {
                try await Self.audit(db, at: now, .device(device, address: address), "device.measurements", "device:\(device)",
                                     before: ["verdict": previous ?? ""],
                                     after: ["verdict": verdict, "pcr": "\(report.pcr)", "value": report.pcrValue])
            }
            return (verdict, verdict.hasPrefix("approved") ? try policySigner.sign(report) : nil)
        }
    }

    /// Checks a quote: made by the device's attestation key (the pinned one, or the first it
    /// shows), over the nonce the Center gave it, of the PCR holding the value reported.
    static func verify(_ attestation: Attestation, pinned: String?, nonce: String?, pcr: Int, pcrValue: String) throws {
        struct Refusal: Error, CustomStringConvertible { var description: String }
        if let pinned, pinned != attestation.key { throw Refusal(description: "the quote is signed by another attestation key than this device's") }
        guard let raw = Data(base64Encoded: attestation.key), let key = try? P256.Signing.PublicKey(rawRepresentation: raw),
              let quoted = Data(base64Encoded: attestation.quote), let signature = Data(base64Encoded: attestation.signature) else {
            throw Refusal(description: "the attestation is not a P-256 key, a quote and a signature")
        }
        let contents = try Quote(attest: Array(quoted), signature: Array(signature)).verify(with: key)
        guard let nonce, contents.nonce == EventLog.bytes(hex: nonce), attestation.nonce == nonce else {
            throw Refusal(description: "the quote is not over the nonce this Center gave (a replayed or stale quote)")
        }
        guard contents.pcrs == [pcr], contents.pcrDigest == Quote.pcrDigest([EventLog.bytes(hex: pcrValue)]) else {
            throw Refusal(description: "the TPM quotes another PCR value than the one reported")
        }
    }

    /// Verifies the TPM evidence in a completed wipe's receipt and audits the outcome: the
    /// quote is the device's, over the nonce of the check-in that delivered the wipe, of a PCR
    /// whose log ends in this wipe's event with the counter moved.
    func verifyWipe(command: String, result: String?, device: String, address: String, db: any SQLDatabase) async throws {
        struct Receipt: Decodable { var evidence: WipeEvidence? }
        let evidence = result.flatMap { try? JSONDecoder().decode(Receipt.self, from: Data($0.utf8)) }?.evidence
        let row = try await db.raw("SELECT attestation_key, attestation_nonce FROM devices WHERE id = \(bind: device)").first()
        let pinned = try row?.decode(column: "attestation_key", as: String?.self)
        let nonce = try row?.decode(column: "attestation_nonce", as: String?.self)
        var outcome: [String: String] = ["command": command]
        do {
            guard let evidence else {
                outcome["verdict"] = pinned == nil ? "no TPM evidence (the device has no TPM)" : "unverified: the receipt carries no TPM evidence"
                throw CancellationError()
            }
            guard let pinned else { throw APIError.conflict("the device never attested; its quote cannot be checked against a known key") }
            // The quote must be of the value the receipt's log replays to.
            try Self.verify(evidence.attestation, pinned: pinned, nonce: nonce, pcr: evidence.pcr, pcrValue: Self.replayValue(evidence))
            let expected = Secrets.hex(SHA256.hash(data: Data(WipeEvidence.event(command: command, counterBefore: evidence.counterBefore,
                                                                                    counterAfter: evidence.counterAfter).utf8)))
            guard let last = evidence.components.last, last.component == "wipe", last.sha256 == expected else {
                throw APIError.badRequest("the measured log does not end in this wipe's event")
            }
            guard evidence.counterAfter > evidence.counterBefore else { throw APIError.badRequest("the counter did not move") }
            outcome["verdict"] = "verified: the TPM quoted the wipe event; counter \(evidence.counterBefore) -> \(evidence.counterAfter)"
        } catch is CancellationError {
        } catch {
            outcome["verdict"] = "unverified: \(error)"
        }
        try await Self.audit(db, at: seconds, .device(device, address: address), "device.wipe.receipt", "device:\(device)", before: nil, after: outcome)
    }

    static func replayValue(_ evidence: WipeEvidence) -> String {
        let log = EventLog(pcr: evidence.pcr, events: evidence.components.map { .init(component: $0.component, path: $0.path, sha256: $0.sha256) },
                           base: evidence.base.map(EventLog.bytes(hex:)))
        return Secrets.hex(log.replay())
    }

    /// After a completed wipe: the work key the device last reported is never approved again,
    /// so its old sealed blob stays useless even with every file restored.
    func eraseWorkKey(of deviceID: String, db: any SQLDatabase) async throws {
        let row = try await db.raw("SELECT status, erased_policy_refs FROM devices WHERE id = \(bind: deviceID)").first()
        let decoder = JSONDecoder()
        guard let reference = try row?.decode(column: "status", as: String?.self)
            .flatMap({ try? decoder.decode(DeviceStatus.self, from: Data($0.utf8)) })?.measurements?.policyRef else { return }
        var erased = try row?.decode(column: "erased_policy_refs", as: String?.self).flatMap { try? decoder.decode([String].self, from: Data($0.utf8)) } ?? []
        guard !erased.contains(reference) else { return }
        erased.append(reference)
        let json = String(decoding: try JSONEncoder().encode(erased), as: UTF8.self)
        try await db.raw("UPDATE devices SET erased_policy_refs = \(bind: json), measurement_verdict = 'work key erased by a wipe' WHERE id = \(bind: deviceID)").run()
    }
}

extension Store {
    /// The lease length and check-in interval for a device with these VMs: the strictest of its
    /// VMs' (the lease from its work VMs only).
    public static func leaseTerms(_ vms: [AssignedVM]) -> (leaseDays: Int, checkInInterval: Int) {
        (vms.filter { $0.definition.role == .work }.map(\.policy.leaseDays).min() ?? EffectivePolicy.defaults.leaseDays,
         vms.map(\.policy.checkInIntervalSeconds).min() ?? EffectivePolicy.defaults.checkInIntervalSeconds)
    }
}

/// A diagnostics bundle as the Center keeps it.
public struct DiagnosticsRecord: Codable, Sendable, Equatable {
    public var commandID: String
    public var deviceID: String
    public var uploaded: Date
    public var size: Int
    public var bundle: DiagnosticsBundle
}

extension Store {
    /// Keeps the bundle a device uploads for its collectDiagnostics command, replacing an
    /// earlier upload of the same command (a retry after a cut).
    public func storeDiagnostics(commandID: String, device: Device, bundle: DiagnosticsBundle, address: String) async throws -> DiagnosticsRecord {
        let command = try await command(id: commandID)
        guard command.deviceID == device.id else { throw APIError.notFound("no command \(commandID) for this device") }
        guard command.kind == .collectDiagnostics else {
            throw APIError.conflict("command \(commandID) is a \(command.kind.rawValue), not a collectDiagnostics; only that one takes a bundle")
        }
        guard [.delivered, .acknowledged].contains(command.state) else {
            throw APIError.conflict("command \(commandID) is \(command.state.rawValue); a bundle is uploaded while the command is under way")
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        let body = String(decoding: try encoder.encode(bundle), as: UTF8.self)
        guard body.utf8.count <= DiagnosticsBundle.maximumBytes else {
            throw APIError(.contentTooLarge, "too_large", "a diagnostics bundle holds at most \(DiagnosticsBundle.maximumBytes >> 10) KiB")
        }
        let now = seconds
        try await database.transaction { db in
            try await db.raw("""
                INSERT INTO diagnostics (command_id, device_id, uploaded, size, body)
                VALUES (\(bind: commandID), \(bind: device.id), \(bind: now), \(bind: body.utf8.count), \(bind: body))
                ON CONFLICT (command_id) DO UPDATE SET uploaded = excluded.uploaded, size = excluded.size, body = excluded.body
                """).run()
            try await Self.audit(db, at: now, .device(device.id, address: address), "diagnostics.upload", "device:\(device.id)",
                                 before: nil, after: ["command": commandID, "bytes": "\(body.utf8.count)", "files": "\(bundle.files.count)"])
        }
        return DiagnosticsRecord(commandID: commandID, deviceID: device.id, uploaded: Self.date(now), size: body.utf8.count, bundle: bundle)
    }

    public func diagnostics(commandID: String) async throws -> DiagnosticsRecord {
        let row = try await database.read { db in try await db.raw("SELECT * FROM diagnostics WHERE command_id = \(bind: commandID)").first() }
        guard let row else { throw APIError.notFound("no diagnostics for command \(commandID); the device uploads them when it carries the command out") }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let bundle = try? decoder.decode(DiagnosticsBundle.self, from: Data(try row.decode(column: "body", as: String.self).utf8)) else {
            throw CenterError.storage("the stored diagnostics of command \(commandID) cannot be read")
        }
        return DiagnosticsRecord(commandID: commandID, deviceID: try row.decode(column: "device_id", as: String.self),
                                 uploaded: Self.date(try row.decode(column: "uploaded", as: Int64.self)),
                                 size: Int(try row.decode(column: "size", as: Int64.self)), bundle: bundle)
    }
}
