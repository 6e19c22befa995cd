import Foundation

extension QEMUProcess {
    /// Opens this VM's encrypted disks and resumes it. QEMU was started paused without them
    /// (``QEMUArguments``); for each disk its key goes over QMP as a secret object, which is
    /// deleted again once the disk is open, so the key is never on a command line or in a file.
    /// A disk whose file does not exist yet is created first (qcow2 with LUKS encryption).
    ///
    /// - Parameter keys: each encrypted disk's key by disk id (random bytes; QEMU takes their
    ///   hex form as the LUKS passphrase, which must be text).
    public func attachEncryptedDisks(_ qmp: QMPClient, keys: [String: [UInt8]]) async throws {
        for disk in configuration.disks {
            guard let encryption = disk.encryption else { continue }
            guard let key = keys[disk.id], key.count >= 16 else {
                throw QEMUError.encryptedDisk(id: disk.id, path: disk.path, reason: "no key was given for it")
            }
            let secret = "\(disk.id)-secret"
            try await qmp.execute("object-add", arguments: JSONValue.object([
                "qom-type": .string("secret"), "id": .string(secret),
                "data": .string(key.map { String(format: "%02x", $0) }.joined()), "format": .string("raw"),
            ]), returning: JSONValue.self)
            do {
                try await open(disk, encryption: encryption, secret: secret, qmp: qmp)
            } catch {
                _ = try? await qmp.execute("object-del", arguments: JSONValue.object(["id": .string(secret)]), returning: JSONValue.self)
                throw error
            }
            try await qmp.execute("object-del", arguments: JSONValue.object(["id": .string(secret)]), returning: JSONValue.self)
            var device: [String: JSONValue] = ["driver": .string("virtio-blk-pci"), "drive": .string(disk.id), "id": .string("\(disk.id)-device")]
            if let serial = disk.serial { device["serial"] = .string(serial) }
            if configuration.machine == .q35 { device["bus"] = .string("\(disk.id)-port") }
            try await qmp.execute("device_add", arguments: JSONValue.object(device), returning: JSONValue.self)
        }
        try await qmp.execute("cont", returning: JSONValue.self)
    }

    private func open(_ disk: QEMUConfiguration.Disk, encryption: QEMUConfiguration.Encryption, secret: String, qmp: QMPClient) async throws {
        let file = "\(disk.id)-file"
        let luks: JSONValue = .object(["format": .string("luks"), "key-secret": .string(secret)])
        do {
            if !FileManager.default.fileExists(atPath: disk.path) {
                guard let size = encryption.createSize else {
                    throw QEMUError.encryptedDisk(id: disk.id, path: disk.path, reason: "the file does not exist")
                }
                try await runJob("\(disk.id)-create-file", qmp: qmp, options: .object([
                    "driver": .string("file"), "filename": .string(disk.path), "size": .int(0),
                ]))
                try await qmp.execute("blockdev-add", arguments: JSONValue.object([
                    "driver": .string("file"), "node-name": .string(file), "filename": .string(disk.path),
                ]), returning: JSONValue.self)
                var options: [String: JSONValue] = [
                    "driver": .string("qcow2"), "file": .string(file), "size": .int(Int64(size)),
                    // The key is 256 random bits, not a password: stretching it buys nothing,
                    // and every open would pay for it. 100 ms is the least QEMU calibrates well.
                    "encrypt": .object(["format": .string("luks"), "key-secret": .string(secret), "iter-time": .int(100)]),
                ]
                if let backing = encryption.backing {
                    options["backing-file"] = .string(backing)
                    options["backing-fmt"] = .string((encryption.backingFormat ?? .raw).rawValue)
                }
                // QEMU times PBKDF2 by thread CPU time to calibrate LUKS, and fails when its clock
                // reads zero for the sample (fast SHA-256, coarse accounting): try again.
                var attempt = 1
                while true {
                    do {
                        try await runJob("\(disk.id)-create", qmp: qmp, options: .object(options))
                        break
                    } catch QMPError.commandFailed(_, _, let description) where description.contains("accurate CPU usage") && attempt < 5 {
                        attempt += 1
                    }
                }
            } else {
                try await qmp.execute("blockdev-add", arguments: JSONValue.object([
                    "driver": .string("file"), "node-name": .string(file), "filename": .string(disk.path),
                ]), returning: JSONValue.self)
            }
            try await qmp.execute("blockdev-add", arguments: JSONValue.object([
                "driver": .string("qcow2"), "node-name": .string(disk.id), "file": .string(file), "encrypt": luks,
            ]), returning: JSONValue.self)
        } catch let error as QMPError {
            throw QEMUError.encryptedDisk(id: disk.id, path: disk.path, reason: "\(error)")
        }
    }

    /// Runs a blockdev-create job to its end and dismisses it.
    private func runJob(_ id: String, qmp: QMPClient, options: JSONValue) async throws {
        try await qmp.execute("blockdev-create", arguments: JSONValue.object(["job-id": .string(id), "options": options]), returning: JSONValue.self)
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            let jobs = try await qmp.execute("query-jobs")
            guard case .array(let list) = jobs, let job = list.first(where: { $0["id"]?.stringValue == id }) else {
                throw QMPError.commandFailed(command: "blockdev-create", errorClass: "GenericError", description: "job \(id) vanished")
            }
            if job["status"]?.stringValue == "concluded" {
                try await qmp.execute("job-dismiss", arguments: JSONValue.object(["id": .string(id)]), returning: JSONValue.self)
                if let failure = job["error"]?.stringValue {
                    throw QMPError.commandFailed(command: "blockdev-create", errorClass: "GenericError", description: failure)
                }
                return
            }
            guard ContinuousClock.now < deadline else {
                throw QMPError.commandFailed(command: "blockdev-create", errorClass: "GenericError", description: "job \(id) did not end within 120 s")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
