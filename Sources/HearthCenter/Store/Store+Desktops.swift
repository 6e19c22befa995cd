import Foundation
import HearthCore
import NIOConcurrencyHelpers
import SQLKit

public struct ImageVersionRecord: Codable, Sendable, Equatable {
    public var version: String
    public var notes: String
    public var published: Date
}

/// A gold image as the Center knows it: its versions and which version each channel serves.
public struct ImageRecord: Codable, Sendable, Equatable {
    public var name: String
    public var created: Date
    public var versions: [ImageVersionRecord]
    /// channel → version.
    public var channels: [String: String]
}

/// A VM definition with its assignments and its own policy.
public struct VMDefinitionRecord: Codable, Sendable, Equatable {
    public var name: String
    public var role: VMDefinition.Role
    public var image: String
    public var channel: String
    public var cpus: Int
    public var memoryMiB: Int
    public var localDiskBytes: UInt64
    public var userDiskBytes: UInt64
    public var network: VMDefinition.NetworkMode
    /// "user", "local".
    public var backedUpDisks: [String]
    public var users: [String]
    public var groups: [String]
    public var policy: Policy?
}

extension Store {
    // MARK: Images and channels

    public func createImage(name: String, by actor: Actor) async throws -> ImageRecord {
        try Validate.name(name, what: "an image name")
        try await database.transaction { db in
            if try await db.raw("SELECT name FROM images WHERE name = \(bind: name)").first() != nil {
                throw APIError.conflict("an image named \(name) already exists")
            }
            try await db.raw("INSERT INTO images (name, created) VALUES (\(bind: name), \(bind: seconds))").run()
            try await Self.audit(db, at: seconds, actor, "image.create", "image:\(name)", before: nil, after: nil)
        }
        return try await image(name: name)
    }

    /// Records a published version (the data lives in the image repository).
    public func addImageVersion(image name: String, version: String, notes: String, by actor: Actor) async throws -> ImageRecord {
        try Validate.name(version, what: "a version")
        _ = try await image(name: name)
        try await database.transaction { db in
            if try await db.raw("SELECT version FROM image_versions WHERE image = \(bind: name) AND version = \(bind: version)").first() != nil {
                throw APIError.conflict("\(name) already has a version \(version); versions are immutable, publish a new one")
            }
            try await db.raw("INSERT INTO image_versions (image, version, notes, published) VALUES (\(bind: name), \(bind: version), \(bind: notes), \(bind: seconds))").run()
            try await Self.audit(db, at: seconds, actor, "image.version", "image:\(name)", before: nil, after: ["version": version, "notes": notes])
        }
        return try await image(name: name)
    }

    /// Points `channel` at `version`: promoting a version, or rolling back to an older one.
    public func setChannel(image name: String, channel: String, version: String, by actor: Actor) async throws -> ImageRecord {
        try Validate.name(channel, what: "a channel name")
        let image = try await image(name: name)
        guard image.versions.contains(where: { $0.version == version }) else {
            throw APIError.notFound("\(name) has no version \(version) (versions: \(image.versions.map(\.version).joined(separator: ", ")))")
        }
        let previous = image.channels[channel]
        try await database.transaction { db in
            try await db.raw("DELETE FROM image_channels WHERE image = \(bind: name) AND channel = \(bind: channel)").run()
            try await db.raw("INSERT INTO image_channels (image, channel, version, changed) VALUES (\(bind: name), \(bind: channel), \(bind: version), \(bind: seconds))").run()
            try await Self.audit(db, at: seconds, actor, "image.channel", "image:\(name)/\(channel)",
                                 before: previous.map { ["version": $0] }, after: ["version": version])
        }
        return try await self.image(name: name)
    }

    public func images() async throws -> [ImageRecord] {
        try await database.read { db in
            let versions = try await db.raw("SELECT * FROM image_versions ORDER BY published, version").all()
            let channels = try await db.raw("SELECT * FROM image_channels").all()
            return try await db.raw("SELECT * FROM images ORDER BY name").all().map { row in
                let name = try row.decode(column: "name", as: String.self)
                var record = ImageRecord(name: name, created: Self.date(try row.decode(column: "created", as: Int64.self)), versions: [], channels: [:])
                for version in versions where try version.decode(column: "image", as: String.self) == name {
                    record.versions.append(ImageVersionRecord(version: try version.decode(column: "version", as: String.self),
                                                              notes: try version.decode(column: "notes", as: String.self),
                                                              published: Self.date(try version.decode(column: "published", as: Int64.self))))
                }
                for channel in channels where try channel.decode(column: "image", as: String.self) == name {
                    record.channels[try channel.decode(column: "channel", as: String.self)] = try channel.decode(column: "version", as: String.self)
                }
                return record
            }
        }
    }

    public func image(name: String) async throws -> ImageRecord {
        guard let image = try await images().first(where: { $0.name == name }) else { throw APIError.notFound("no image \(name)") }
        return image
    }

    // MARK: VM definitions, assignments, policies

    public func saveVMDefinition(_ record: VMDefinitionRecord, creating: Bool, by actor: Actor) async throws -> VMDefinitionRecord {
        let definition = VMDefinition(name: record.name, role: record.role, image: ImageReference(name: record.image, version: "0"),
                                      cpus: record.cpus, memoryMiB: record.memoryMiB, localDiskBytes: record.localDiskBytes,
                                      userDiskBytes: record.userDiskBytes, network: record.network)
        var problems = definition.problems
        for disk in record.backedUpDisks where !["user", "local"].contains(disk) {
            problems.append("backedUpDisks may name \"user\" and \"local\", not \(disk)")
        }
        guard problems.isEmpty else { throw APIError.badRequest(problems.joined(separator: "; ")) }
        _ = try await image(name: record.image)
        let existing = try await vmDefinitions().first { $0.name == record.name }
        if creating, existing != nil { throw APIError.conflict("a VM definition named \(record.name) already exists") }
        if !creating, existing == nil { throw APIError.notFound("no VM definition \(record.name)") }
        let backedUp = String(decoding: try JSONEncoder().encode(record.backedUpDisks), as: UTF8.self)
        try await database.transaction { db in
            if creating {
                try await db.raw("""
                    INSERT INTO vm_definitions (name, role, image, channel, cpus, memory_mib, local_disk_bytes, user_disk_bytes, network, backed_up, created)
                    VALUES (\(bind: record.name), \(bind: record.role.rawValue), \(bind: record.image), \(bind: record.channel), \(bind: record.cpus),
                            \(bind: record.memoryMiB), \(bind: Int64(record.localDiskBytes)), \(bind: Int64(record.userDiskBytes)),
                            \(bind: record.network.rawValue), \(bind: backedUp), \(bind: seconds))
                    """).run()
            } else {
                try await db.raw("""
                    UPDATE vm_definitions SET role = \(bind: record.role.rawValue), image = \(bind: record.image), channel = \(bind: record.channel),
                        cpus = \(bind: record.cpus), memory_mib = \(bind: record.memoryMiB), local_disk_bytes = \(bind: Int64(record.localDiskBytes)),
                        user_disk_bytes = \(bind: Int64(record.userDiskBytes)), network = \(bind: record.network.rawValue), backed_up = \(bind: backedUp)
                    WHERE name = \(bind: record.name)
                    """).run()
            }
            try await Self.audit(db, at: seconds, actor, creating ? "vm.create" : "vm.update", "vm:\(record.name)", before: existing, after: record)
        }
        return try await vmDefinition(name: record.name)
    }

    public func deleteVMDefinition(name: String, by actor: Actor) async throws {
        let existing = try await vmDefinition(name: name)
        try await database.transaction { db in
            try await db.raw("DELETE FROM vm_definitions WHERE name = \(bind: name)").run()
            try await db.raw("DELETE FROM policies WHERE scope = \(bind: "vm:\(name)")").run()
            try await Self.audit(db, at: seconds, actor, "vm.delete", "vm:\(name)", before: existing, after: nil)
        }
    }

    public func vmDefinitions() async throws -> [VMDefinitionRecord] {
        let policies = try await self.policies()
        return try await database.read { db in
            let assignments = try await db.raw("SELECT * FROM assignments ORDER BY target").all()
            return try await db.raw("SELECT * FROM vm_definitions ORDER BY name").all().map { row in
                let name = try row.decode(column: "name", as: String.self)
                var record = VMDefinitionRecord(
                    name: name, role: VMDefinition.Role(rawValue: try row.decode(column: "role", as: String.self)) ?? .work,
                    image: try row.decode(column: "image", as: String.self), channel: try row.decode(column: "channel", as: String.self),
                    cpus: try row.decode(column: "cpus", as: Int.self), memoryMiB: try row.decode(column: "memory_mib", as: Int.self),
                    localDiskBytes: UInt64(try row.decode(column: "local_disk_bytes", as: Int64.self)),
                    userDiskBytes: UInt64(try row.decode(column: "user_disk_bytes", as: Int64.self)),
                    network: VMDefinition.NetworkMode(rawValue: try row.decode(column: "network", as: String.self)) ?? .none,
                    backedUpDisks: (try? JSONDecoder().decode([String].self, from: Data(try row.decode(column: "backed_up", as: String.self).utf8))) ?? [],
                    users: [], groups: [], policy: policies["vm:\(name)"])
                for assignment in assignments where try assignment.decode(column: "vm", as: String.self) == name {
                    let target = try assignment.decode(column: "target", as: String.self)
                    if try assignment.decode(column: "kind", as: String.self) == "user" { record.users.append(target) } else { record.groups.append(target) }
                }
                return record
            }
        }
    }

    public func vmDefinition(name: String) async throws -> VMDefinitionRecord {
        guard let record = try await vmDefinitions().first(where: { $0.name == name }) else { throw APIError.notFound("no VM definition \(name)") }
        return record
    }

    /// Assigns (or unassigns) a VM definition to a user or a group, by name.
    public func setAssignment(vm: String, kind: String, target: String, assigned: Bool, by actor: Actor) async throws -> VMDefinitionRecord {
        _ = try await vmDefinition(name: vm)
        switch kind {
        case "user": _ = try await user(id: target)
        case "group": _ = try await group(id: target)
        default: throw APIError.badRequest("assign to \"user\" or \"group\", not \(kind)")
        }
        let name = kind == "user" ? try await user(id: target).username : try await group(id: target).name
        try await database.transaction { db in
            try await db.raw("DELETE FROM assignments WHERE vm = \(bind: vm) AND kind = \(bind: kind) AND target = \(bind: name)").run()
            if assigned {
                try await db.raw("INSERT INTO assignments (vm, kind, target) VALUES (\(bind: vm), \(bind: kind), \(bind: name))").run()
            }
            try await Self.audit(db, at: seconds, actor, assigned ? "vm.assign" : "vm.unassign", "vm:\(vm)", before: nil, after: [kind: name])
        }
        return try await vmDefinition(name: vm)
    }

    /// Policies by scope ("group:NAME", "vm:NAME").
    public func policies() async throws -> [String: Policy] {
        try await database.read { db in
            var result: [String: Policy] = [:]
            for row in try await db.raw("SELECT * FROM policies").all() {
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                result[try row.decode(column: "scope", as: String.self)] = try? decoder.decode(Policy.self, from: Data(try row.decode(column: "body", as: String.self).utf8))
            }
            return result
        }
    }

    /// Sets the policy of a group or VM definition (nil removes it).
    public func setPolicy(scope: String, _ policy: Policy?, by actor: Actor) async throws {
        let parts = scope.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw APIError.badRequest("a policy scope is group:NAME or vm:NAME") }
        switch parts[0] {
        case "group": _ = try await group(id: parts[1])
        case "vm": _ = try await vmDefinition(name: parts[1])
        default: throw APIError.badRequest("a policy scope is group:NAME or vm:NAME, not \(scope)")
        }
        if let problems = policy?.problems, !problems.isEmpty { throw APIError.badRequest(problems.joined(separator: "; ")) }
        let before = try await policies()[scope]
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = .sortedKeys
        let body = try policy.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        try await database.transaction { db in
            try await db.raw("DELETE FROM policies WHERE scope = \(bind: scope)").run()
            if let body {
                try await db.raw("INSERT INTO policies (scope, body, changed) VALUES (\(bind: scope), \(bind: body), \(bind: seconds))").run()
            }
            try await Self.audit(db, at: seconds, actor, "policy.set", scope, before: before, after: policy)
        }
    }

    /// The VMs a user gets, directly or through a group, each with its version and policy.
    public func desiredVMs(forUser userID: String?) async throws -> [AssignedVM] {
        guard let userID else { return [] }
        let user = try await user(id: userID)
        return Self.desiredVMs(username: user.username, groups: user.groups, catalog: try await catalog())
    }

    static func desiredVMs(username: String?, groups: [String], catalog: Catalog) -> [AssignedVM] {
        guard let username else { return [] }
        let groupPolicies = groups.compactMap { catalog.policies["group:\($0)"] }
        var result: [AssignedVM] = []
        for record in catalog.definitions where record.users.contains(username) || !Set(record.groups).isDisjoint(with: groups) {
            // A channel with no version yet: the VM waits for one.
            guard let version = catalog.images.first(where: { $0.name == record.image })?.channels[record.channel] else { continue }
            let policy = EffectivePolicy.resolve(groups: groupPolicies, vm: record.policy)
            let network = record.network.rank <= policy.network.rank ? record.network : policy.network
            let definition = VMDefinition(name: record.name, role: record.role, image: ImageReference(name: record.image, version: version),
                                          cpus: record.cpus, memoryMiB: record.memoryMiB, localDiskBytes: record.localDiskBytes,
                                          userDiskBytes: record.userDiskBytes, network: network)
            result.append(AssignedVM(definition: definition, channel: record.channel, policy: policy, backedUpDisks: record.backedUpDisks))
        }
        return result
    }

    /// Definitions, images and policies, from the cache while the catalog version is unchanged:
    /// one query per check-in instead of seven, and right across several Centers on one database.
    func catalog() async throws -> Catalog {
        let version = try await database.read { db in
            try await db.raw("SELECT version FROM catalog_version WHERE id = 1").first()?.decode(column: "version", as: Int64.self) ?? -1
        }
        return try await catalog(version: version)
    }

    /// The catalog at `version`, which the caller read: from the cache, or loaded when it moved.
    func catalog(version: Int64) async throws -> Catalog {
        if let cached = catalogCache.get(version: version) { return cached }
        let catalog = Catalog(version: version, definitions: try await vmDefinitions(), images: try await images(), policies: try await policies())
        catalogCache.set(catalog)
        return catalog
    }
}

struct Catalog: Sendable {
    let version: Int64
    let definitions: [VMDefinitionRecord]
    let images: [ImageRecord]
    let policies: [String: Policy]
}

final class CatalogCache: Sendable {
    private let value = NIOLockedValueBox<Catalog?>(nil)

    func get(version: Int64) -> Catalog? {
        value.withLockedValue { $0?.version == version ? $0 : nil }
    }

    func set(_ catalog: Catalog) {
        value.withLockedValue { $0 = catalog }
    }
}
