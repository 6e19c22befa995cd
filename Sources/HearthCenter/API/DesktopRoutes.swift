import Foundation
import HTTPTypes
import HearthCore
import Hummingbird

extension Center {
    /// Images and channels, VM definitions and their assignments, policies.
    static let desktopRoutes: [Route] = [
        Route(method: .get, path: "/api/v1/images", access: .admin(.read)) { _, _, center in
            try JSONBody.response(try await center.store.images())
        },
        Route(method: .post, path: "/api/v1/images", access: .admin(.manageImages)) { request, context, center in
            struct New: Decodable { let name: String }
            let new = try await JSONBody.decode(New.self, from: request, context: context)
            return try JSONBody.response(try await center.store.createImage(name: new.name, by: context.actor), status: .created)
        },
        Route(method: .get, path: "/api/v1/images/{name}", access: .admin(.read)) { _, context, center in
            try JSONBody.response(try await center.store.image(name: try context.parameters.require("name")))
        },
        Route(method: .post, path: "/api/v1/images/{name}/versions", access: .admin(.manageImages)) { request, context, center in
            struct New: Decodable { let version: String; let notes: String? }
            let new = try await JSONBody.decode(New.self, from: request, context: context)
            return try JSONBody.response(try await center.store.addImageVersion(image: try context.parameters.require("name"), version: new.version,
                                                                                notes: new.notes ?? "", by: context.actor), status: .created)
        },
        Route(method: .put, path: "/api/v1/images/{name}/channels/{channel}", access: .admin(.manageImages)) { request, context, center in
            struct Target: Decodable { let version: String }
            let target = try await JSONBody.decode(Target.self, from: request, context: context)
            return try JSONBody.response(try await center.store.setChannel(image: try context.parameters.require("name"),
                                                                           channel: try context.parameters.require("channel"),
                                                                           version: target.version, by: context.actor))
        },
        Route(method: .get, path: "/api/v1/vms", access: .admin(.read)) { _, _, center in
            try JSONBody.response(try await center.store.vmDefinitions())
        },
        Route(method: .post, path: "/api/v1/vms", access: .admin(.manageDesktops)) { request, context, center in
            let body = try await JSONBody.decode(VMDefinitionBody.self, from: request, context: context)
            return try JSONBody.response(try await center.store.saveVMDefinition(body.record(name: nil), creating: true, by: context.actor), status: .created)
        },
        Route(method: .get, path: "/api/v1/vms/{name}", access: .admin(.read)) { _, context, center in
            try JSONBody.response(try await center.store.vmDefinition(name: try context.parameters.require("name")))
        },
        Route(method: .put, path: "/api/v1/vms/{name}", access: .admin(.manageDesktops)) { request, context, center in
            let body = try await JSONBody.decode(VMDefinitionBody.self, from: request, context: context)
            let name = try context.parameters.require("name")
            return try JSONBody.response(try await center.store.saveVMDefinition(body.record(name: name), creating: false, by: context.actor))
        },
        Route(method: .delete, path: "/api/v1/vms/{name}", access: .admin(.manageDesktops)) { _, context, center in
            try await center.store.deleteVMDefinition(name: try context.parameters.require("name"), by: context.actor)
            return Response(status: .noContent)
        },
        Route(method: .put, path: "/api/v1/vms/{name}/assignments/{kind}/{target}", access: .admin(.manageDesktops)) { _, context, center in
            try JSONBody.response(try await center.store.setAssignment(
                vm: try context.parameters.require("name"), kind: try context.parameters.require("kind"),
                target: try context.parameters.require("target"), assigned: true, by: context.actor))
        },
        Route(method: .delete, path: "/api/v1/vms/{name}/assignments/{kind}/{target}", access: .admin(.manageDesktops)) { _, context, center in
            try JSONBody.response(try await center.store.setAssignment(
                vm: try context.parameters.require("name"), kind: try context.parameters.require("kind"),
                target: try context.parameters.require("target"), assigned: false, by: context.actor))
        },
        Route(method: .get, path: "/api/v1/policies", access: .admin(.read)) { _, _, center in
            try JSONBody.response(try await center.store.policies())
        },
        Route(method: .put, path: "/api/v1/policies/{scope}", access: .admin(.manageDesktops)) { request, context, center in
            let policy = try await JSONBody.decode(Policy.self, from: request, context: context)
            let scope = try context.parameters.require("scope")
            try await center.store.setPolicy(scope: scope, policy, by: context.actor)
            return try JSONBody.response(policy)
        },
        Route(method: .delete, path: "/api/v1/policies/{scope}", access: .admin(.manageDesktops)) { _, context, center in
            try await center.store.setPolicy(scope: try context.parameters.require("scope"), nil, by: context.actor)
            return Response(status: .noContent)
        },
        Route(method: .get, path: "/api/v1/users/{id}/desktops", access: .admin(.read)) { _, context, center in
            let user = try await center.store.user(id: try context.parameters.require("id"))
            return try JSONBody.response(try await center.store.desiredVMs(forUser: user.id))
        },
    ]

    /// Commands to devices, approvals, and settings.
    static let commandRoutes: [Route] = [
        Route(method: .get, path: "/api/v1/devices/{id}/commands", access: .admin(.read)) { _, context, center in
            let device = try await center.store.device(id: try context.parameters.require("id"))
            return try JSONBody.response(try await center.store.commands(device: device.id))
        },
        Route(method: .post, path: "/api/v1/devices/{id}/commands", access: .admin(.commandDevices)) { request, context, center in
            struct New: Decodable { let kind: DeviceCommand.Kind; let vm: String? }
            let new = try await JSONBody.decode(New.self, from: request, context: context)
            if new.kind == .wipe, !(context.admin?.role.may(.wipe) ?? false) {
                throw APIError.forbidden("the \(context.admin?.role.rawValue ?? "") role may not wipe devices (needs the wipe permission)")
            }
            return try JSONBody.response(try await center.store.issueCommand(device: try context.parameters.require("id"), kind: new.kind,
                                                                             vm: new.vm, by: context.actor), status: .created)
        },
        Route(method: .get, path: "/api/v1/commands", access: .admin(.read)) { _, _, center in
            try JSONBody.response(try await center.store.commands(device: nil))
        },
        Route(method: .get, path: "/api/v1/commands/{id}/diagnostics", access: .admin(.read)) { _, context, center in
            try JSONBody.response(try await center.store.diagnostics(commandID: try context.parameters.require("id")))
        },
        Route(method: .post, path: "/api/v1/commands/{id}/approve", access: .admin(.wipe)) { _, context, center in
            try JSONBody.response(try await center.store.approveCommand(id: try context.parameters.require("id"), by: context.actor))
        },
        Route(method: .post, path: "/api/v1/commands/{id}/cancel", access: .admin(.commandDevices)) { _, context, center in
            try JSONBody.response(try await center.store.cancelCommand(id: try context.parameters.require("id"), by: context.actor))
        },
        Route(method: .get, path: "/api/v1/settings", access: .admin(.read)) { _, _, center in
            try JSONBody.response(try await center.store.settings())
        },
        Route(method: .put, path: "/api/v1/settings", access: .admin(.manageSettings)) { request, context, center in
            let settings = try await JSONBody.decode(CenterSettings.self, from: request, context: context)
            try await center.store.setSettings(settings, by: context.actor)
            return try JSONBody.response(try await center.store.settings())
        },
    ]
}

/// The body of POST and PUT /api/v1/vms: a VM definition, with its defaults.
struct VMDefinitionBody: Decodable {
    let name: String?
    let role: VMDefinition.Role
    let image: String
    let channel: String?
    let cpus: Int?
    let memoryMiB: Int?
    let localDiskBytes: UInt64?
    let userDiskBytes: UInt64?
    let network: VMDefinition.NetworkMode?
    let backedUpDisks: [String]?

    func record(name path: String?) throws -> VMDefinitionRecord {
        guard let name = path ?? name else { throw APIError.badRequest("missing field 'name'") }
        if let path, let name = self.name, name != path {
            throw APIError.badRequest("the name in the body (\(name)) differs from the one in the path (\(path)); VM definitions are not renamed")
        }
        return VMDefinitionRecord(name: name, role: role, image: image, channel: channel ?? "stable", cpus: cpus ?? 2,
                                  memoryMiB: memoryMiB ?? 2048, localDiskBytes: localDiskBytes ?? 8 << 30,
                                  userDiskBytes: userDiskBytes ?? 16 << 30, network: network ?? (role == .work ? .full : .internet),
                                  backedUpDisks: backedUpDisks ?? ["user"], users: [], groups: [], policy: nil)
    }
}

extension CenterContext {
    /// The admin making this request, for the audit log.
    var actor: Actor { .admin(admin!, address: address) }
}
