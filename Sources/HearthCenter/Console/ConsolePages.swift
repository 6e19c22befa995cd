import Foundation
import HTTPTypes
import HearthCore
import Hummingbird
import ImageSync

/// The console's pages: each gathers what it shows from the store and renders its template.
extension Console {
    // MARK: Fleet

    static func fleetPage(_ call: Call) async throws -> Response {
        let now = call.store.now()
        let users = Dictionary(uniqueKeysWithValues: try await call.store.users().map { ($0.id, $0.username) })
        var rows: [[String: Any]] = [], alerts: [[String: Any]] = []
        // Devices of one user share their terms: resolved once per user, not once per device.
        var terms: [String: (leaseDays: Int, checkInInterval: Int)] = [:]
        for device in try await call.store.devices() where device.retired == nil {
            let key = device.userID ?? ""
            if terms[key] == nil { terms[key] = Store.leaseTerms(try await call.store.desiredVMs(forUser: device.userID)) }
            let health = DeviceHealth(device, terms: terms[key]!, now: now)
            rows.append([
                "id": device.id, "name": device.name, "user": device.userID.flatMap { users[$0] } ?? "nobody",
                "online": health.online ? "online" : "offline", "lastCheckIn": when(device.lastCheckIn, now: now),
                "leaseLeft": health.leaseLeft, "security": device.status?.security ?? "not reported",
                "images": device.status?.vms.map { "\($0.name): \($0.image ?? "none")" }.joined(separator: ", ") ?? "",
            ])
            alerts += health.alerts.map { ["deviceID": device.id, "device": device.name, "text": $0] }
        }
        let waiting = try await call.store.commands(device: nil).filter { $0.state == .awaitingApproval }.count
        return render("fleet", call, title: "Fleet", current: "/console", values: [
            "devices": rows, "alerts": alerts.isEmpty ? false : ["items": alerts] as Any,
            "awaitingApproval": waiting == 0 ? false : waiting as Any,
        ])
    }

    /// What the fleet and device pages say about a device's standing.
    struct DeviceHealth {
        var online = false
        var leaseLeft = "no check-in yet"
        var leaseExpires: Date?
        var alerts: [String] = []

        init(_ device: Device, terms: (leaseDays: Int, checkInInterval: Int), now: Date) {
            if let last = device.lastCheckIn {
                let overdue = now.timeIntervalSince(last) > TimeInterval(2 * terms.checkInInterval + 60)
                online = !overdue
                // The lease the Center signed at the last check-in.
                let expires = last.addingTimeInterval(TimeInterval(terms.leaseDays) * 86400)
                leaseExpires = expires
                let left = expires.timeIntervalSince(now)
                leaseLeft = left <= 0 ? "ran out" : left < 86400 ? "\(Int((left / 3600).rounded(.up))) h" : "\(Int((left / 86400).rounded(.up))) days"
                if left <= 0 { alerts.append("lease ran out on \(when(expires, now: now)): its work desktops do not start until it checks in") }
                if overdue { alerts.append("overdue: no check-in since \(when(last, now: now)) (interval \(terms.checkInInterval) s)") }
            }
            if let status = device.status {
                switch status.security {
                case "tampered": alerts.append("tampered: its measured start does not match; work desktops are refused\(device.measurementVerdict.map { " (\($0))" } ?? "")")
                case "revoked": alerts.append("security policy revoked: its work desktops wait for a new approval")
                case "no-tpm": alerts.append("no TPM: its work desktops are refused")
                case "insecure-development": alerts.append("insecure development mode: no TPM, disks not encrypted")
                default: break
                }
                for update in status.updates ?? [] where update.state == .failed {
                    alerts.append("update to \(update.image) failed: \(update.error ?? "no reason given")")
                }
                if let locked = status.locked { alerts.append("locked: \(locked)") }
                for shortfall in status.compliance ?? [] { alerts.append("below minimum hardware: \(shortfall)") }
            }
        }
    }

    // MARK: Device

    static func devicePage(_ call: Call, id: String, error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let device = try await call.store.device(id: id)
        let now = call.store.now()
        let health = DeviceHealth(device, terms: Store.leaseTerms(try await call.store.desiredVMs(forUser: device.userID)), now: now)
        let users = Dictionary(uniqueKeysWithValues: try await call.store.users().map { ($0.id, $0.username) })
        var values: [String: Any] = [
            "id": device.id, "name": device.name, "user": device.userID.flatMap { users[$0] } ?? "nobody",
            "enrolled": when(device.enrolled, now: now), "lastCheckIn": when(device.lastCheckIn, now: now),
            "lease": device.status?.lease ?? (health.leaseExpires.map { "signed until \(when($0, now: now))" } ?? "none yet"),
            "security": device.status?.security ?? "not reported",
            "mayCommand": call.may(.commandDevices) && device.retired == nil, "mayWipe": call.may(.wipe),
            "approval": try await call.store.settings().wipeNeedsApproval,
            "mayApproveMeasurements": call.may(.retireDevices) && device.retired == nil && device.measurementVerdict?.hasPrefix("changed") == true,
            "commands": try await call.store.commands(device: device.id).map { commandRow($0, now: now) },
        ]
        if let address = device.lastAddress { values["address"] = address }
        if let verdict = device.measurementVerdict { values["verdict"] = verdict }
        if let retired = device.retired { values["retired"] = when(retired, now: now) }
        if let status = device.status {
            values["inventory"] = [
                "cpus": status.inventory.cpus, "cpuModel": status.inventory.cpuModel,
                "memory": bytes(status.inventory.memoryBytes), "disk": bytes(status.inventory.diskBytes),
                "virtualization": status.inventory.virtualization, "engineVersion": status.engineVersion,
                "compliance": (status.compliance ?? []).isEmpty ? false : (status.compliance ?? []).joined(separator: "; ") as Any,
            ] as [String: Any]
            values["vms"] = status.vms.map { ["name": $0.name, "state": $0.state, "image": $0.image ?? "none"] }
            let updates = (status.updates ?? []).map { update in
                switch update.state {
                case .pulling: "\(update.image): pulling, \(bytes(update.bytesFetched)) of \(bytes(update.bytesToFetch))"
                case .ready: "\(update.image): ready (\(bytes(update.bytesFetched)) fetched); starts at the desktop's next boot"
                case .failed: "\(update.image): failed: \(update.error ?? "no reason given")"
                }
            }
            values["updates"] = updates
            values["hasUpdates"] = !updates.isEmpty
            if let locked = status.locked { values["locked"] = locked }
        }
        return render("device", call, title: "Device \(device.name)", current: "/console", values: values, error: error, status: status)
    }

    static func issueCommand(_ call: Call, device id: String) async throws -> Response {
        try await act(call, back: { try await devicePage($0, id: id, error: $1, status: $2) }) {
            guard let kind = try choice(call.form["kind"], "Command", DeviceCommand.Kind.self) else {
                throw APIError.badRequest("Choose a command.")
            }
            let device = try await call.store.device(id: id)
            if kind == .wipe {
                guard call.may(.wipe) else {
                    throw APIError.forbidden("The \(call.admin.role.rawValue) role may not wipe devices (it needs the wipe permission); nothing was changed.")
                }
                guard call.form["confirm"]?.trimmingCharacters(in: .whitespaces) == device.name else {
                    throw APIError.badRequest("To wipe, type the device's name (\(device.name)) exactly; nothing was changed.")
                }
            }
            let vm = kind == .restartVM ? call.form["vm"] : nil
            let command = try await call.store.issueCommand(device: id, kind: kind, vm: vm, by: call.actor)
            return redirect("/console/devices/\(id)?done=\(command.state == .awaitingApproval ? "wipe-approval" : "command")")
        }
    }

    static func commandRow(_ command: CommandRecord, now: Date) -> [String: Any] {
        var row: [String: Any] = [
            "id": command.id, "kind": command.kind.rawValue, "state": stateText(command.state), "createdBy": command.createdBy,
            "created": when(command.created, now: now), "deviceID": command.deviceID, "result": command.result ?? "",
        ]
        if let vm = command.vm { row["vm"] = vm }
        if let approvedBy = command.approvedBy { row["approvedBy"] = approvedBy }
        row["diagnostics"] = command.kind == .collectDiagnostics && command.state == .completed
        return row
    }

    static func stateText(_ state: DeviceCommand.State) -> String {
        state == .awaitingApproval ? "awaiting a second admin's approval" : state.rawValue
    }

    // MARK: Commands

    static func commandsPage(_ call: Call, error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let now = call.store.now()
        let names = Dictionary(uniqueKeysWithValues: try await call.store.devices().map { ($0.id, $0.name) })
        let me = "admin:\(call.admin.username)"
        let rows = try await call.store.commands(device: nil).map { command -> [String: Any] in
            var row = commandRow(command, now: now)
            row["device"] = names[command.deviceID] ?? command.deviceID
            row["mayApprove"] = command.state == .awaitingApproval && call.may(.wipe) && command.createdBy != me
            row["mayCancel"] = [.awaitingApproval, .pending].contains(command.state) && call.may(.commandDevices)
            return row
        }
        return render("commands", call, title: "Commands", current: "/console/commands", values: ["commands": rows], error: error, status: status)
    }

    static func diagnosticsPage(_ call: Call, command id: String) async throws -> Response {
        let record = try await call.store.diagnostics(commandID: id)
        let now = call.store.now()
        let device = try await call.store.device(id: record.deviceID)
        return render("diagnostics", call, title: "Diagnostics from \(device.name)", current: "/console/commands", values: [
            "deviceID": device.id, "device": device.name, "collected": when(record.bundle.collected, now: now),
            "uploaded": when(record.uploaded, now: now), "size": bytes(UInt64(record.size)), "summary": record.bundle.summary,
            "files": record.bundle.files.enumerated().map { index, file -> [String: Any] in
                ["index": index, "path": file.path, "size": bytes(file.size), "cut": UInt64(file.text.utf8.count) < file.size, "text": file.text]
            },
        ])
    }

    // MARK: Directory

    static func directoryPage(_ call: Call, error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let users = try await call.store.users()
        let groups = try await call.store.groups()
        let usernames = Dictionary(uniqueKeysWithValues: users.map { ($0.id, $0.username) })
        let groupNames = Dictionary(uniqueKeysWithValues: groups.map { ($0.id, $0.name) })
        return render("directory", call, title: "Users and groups", current: "/console/directory", values: [
            "mayManage": call.may(.manageDirectory),
            "groups": groups.map { ["id": $0.id, "name": $0.name, "members": $0.members.map { usernames[$0] ?? $0 }.joined(separator: ", ")] },
            "users": users.map { ["id": $0.id, "username": $0.username, "displayName": $0.displayName, "email": $0.email,
                                  "groupNames": $0.groups.map { groupNames[$0] ?? $0 }.joined(separator: ", ")] },
        ], error: error, status: status)
    }

    // MARK: Desktops

    static func desktopsPage(_ call: Call, error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let definitions = try await call.store.vmDefinitions()
        var form: [String: String] = [:]
        if error != nil { form = call.form }
        return render("desktops", call, title: "Desktops", current: "/console/desktops", values: [
            "mayManage": call.may(.manageDesktops), "form": form,
            "definitions": definitions.map { definition -> [String: Any] in
                let assigned = definition.groups.map { "group \($0)" } + definition.users.map { "user \($0)" }
                return ["name": definition.name, "role": definition.role.rawValue, "image": definition.image, "channel": definition.channel,
                        "cpus": definition.cpus, "memory": "\(definition.memoryMiB) MiB", "network": definition.network.rawValue,
                        "assigned": assigned.isEmpty ? "nobody" : assigned.joined(separator: ", ")]
            },
            "imageNames": try await call.store.images().map(\.name),
            "groups": try await call.store.groups().map { ["id": $0.id, "name": $0.name] },
            "users": try await call.store.users().map { ["id": $0.id, "username": $0.username] },
        ], error: error, status: status)
    }

    // MARK: Policies

    static func policiesPage(_ call: Call, error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let policies = try await call.store.policies()
        func text(_ value: Int?) -> String { value.map(String.init) ?? "—" }
        return render("policies", call, title: "Policies", current: "/console/policies", values: [
            "mayManage": call.may(.manageDesktops), "form": error == nil ? [:] : call.form,
            "policies": policies.keys.sorted().map { scope -> [String: Any] in
                let policy = policies[scope]!
                let minimum = [policy.minimumCPUs.map { "\($0) CPUs" }, policy.minimumMemoryMiB.map { "\($0) MiB" }, policy.minimumDiskGiB.map { "\($0) GiB disk" }]
                    .compactMap { $0 }
                return ["scope": scope, "leaseDays": text(policy.leaseDays), "checkIn": text(policy.checkInIntervalSeconds),
                        "network": policy.network?.rawValue ?? "—", "usb": policy.usbClasses?.joined(separator: ", ") ?? "—",
                        "backup": policy.backupSchedule ?? "—", "minimum": minimum.isEmpty ? "—" : minimum.joined(separator: ", ")]
            },
            "groups": try await call.store.groups().map { ["name": $0.name] },
            "definitions": try await call.store.vmDefinitions().map { ["name": $0.name] },
        ], error: error, status: status)
    }

    // MARK: Images

    static func imagesPage(_ call: Call, error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let now = call.store.now()
        return render("images", call, title: "Images", current: "/console/images", values: [
            "mayManage": call.may(.manageImages),
            "images": try await call.store.images().map { image -> [String: Any] in
                ["name": image.name,
                 "channels": image.channels.isEmpty ? "none yet" : image.channels.keys.sorted().map { "\($0) → \(image.channels[$0]!)" }.joined(separator: ", "),
                 "versions": image.versions.reversed().map { ["version": $0.version, "published": when($0.published, now: now), "notes": $0.notes] }]
            },
        ], error: error, status: status)
    }

    // MARK: Enrollment

    static func enrollmentPage(_ call: Call, secret: (String, Date)? = nil, error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let now = call.store.now()
        let users = try await call.store.users()
        let names = Dictionary(uniqueKeysWithValues: users.map { ($0.id, $0.username) })
        var values: [String: Any] = [
            "mayEnroll": call.may(.enrollDevices),
            "users": users.map { ["id": $0.id, "username": $0.username] },
            "tokens": try await call.store.enrollmentTokens().map { token -> [String: Any] in
                ["note": token.note.isEmpty ? "(no note)" : token.note, "user": token.userID.flatMap { names[$0] } ?? "nobody yet",
                 "createdBy": token.createdBy, "expires": when(token.expires, now: now), "used": token.used.map { when($0, now: now) } ?? "not yet"]
            },
        ]
        if let secret {
            values["secret"] = secret.0
            values["expires"] = when(secret.1, now: now)
        }
        return render("enrollment", call, title: "Enrollment", current: "/console/enrollment", values: values, error: error,
                      status: secret == nil ? status : .created)
    }

    // MARK: Audit

    static func auditPage(_ call: Call) async throws -> Response {
        let query = call.request.uri.queryParameters
        var filter = Store.AuditFilter()
        func field(_ name: String) -> String? { query[Substring(name)].map(String.init).flatMap { $0.isEmpty ? nil : $0 } }
        filter.actor = field("actor")
        filter.action = field("action")
        filter.target = field("target")
        let now = call.store.now()
        let entries = try await call.store.audit(filter).map { entry -> [String: Any] in
            let change = [entry.before.map { "before: \($0)" }, entry.after.map { "after: \($0)" }].compactMap { $0 }.joined(separator: "\n")
            return ["at": when(entry.at, now: now), "actor": entry.actor, "action": entry.action, "target": entry.target,
                    "address": entry.address, "change": change]
        }
        return render("audit", call, title: "Audit log", current: "/console/audit", values: [
            "entries": entries, "filter": ["actor": filter.actor ?? "", "action": filter.action ?? "", "target": filter.target ?? ""],
        ])
    }

    // MARK: Words

    /// "2026-11-21 22:50 UTC (3 min ago)".
    static func when(_ date: Date?, now: Date) -> String {
        guard let date else { return "never" }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        let seconds = Int(now.timeIntervalSince(date))
        let ago: String = switch abs(seconds) {
        case ..<60: "just now"
        case ..<3600: "\(abs(seconds) / 60) min"
        case ..<172_800: "\(abs(seconds) / 3600) h"
        default: "\(Int((Double(abs(seconds)) / 86400).rounded())) days"
        }
        let relative = abs(seconds) < 60 ? ago : seconds >= 0 ? "\(ago) ago" : "in \(ago)"
        return "\(formatter.string(from: date)) (\(relative))"
    }

    static func bytes(_ count: UInt64) -> String {
        ByteFormat.string(count)
    }
}
