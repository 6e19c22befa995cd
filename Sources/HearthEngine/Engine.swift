import Foundation
import HearthCore
import Logging
import QMP
import VirtualDisk

/// The Engine's runtime: the VMs of a PC, each one QEMU with a system disk that is a fresh
/// overlay over its gold image at every boot, and persistent local and user disks.
public actor Engine {
    public let layout: EngineLayout
    /// How guests boot, with the kernel and initramfs staged under the Engine's root.
    public let boot: GuestBoot
    public let accelerator: Accelerator
    /// Measured start, disk keys, tamper and wipe (docs/SECURITY.md).
    nonisolated public let security: SecurityZone
    private let store: EngineStateStore
    private let logger: Logger
    private var definitions: [String: VMDefinition] = [:]
    private var state: EngineState
    private var running: [String: (process: QEMUProcess, qmp: QMPClient?)] = [:]
    /// Says why a VM may not start now (the management zone's lease and image expiry), or nil.
    private var startGate: (@Sendable (VMDefinition) -> String?)?
    /// Files offered to a guest over fw_cfg when a start names none (guest configuration).
    private var firmwareProvider: (@Sendable (VMDefinition) -> [QEMUConfiguration.FirmwareFile])?

    /// How long the Engine's own part of the last start took, for the start benchmark.
    public struct LaunchTiming: Sendable {
        /// From the start request until QEMU was exec'd.
        public var untilExec: Duration
    }

    public private(set) var lastLaunchTiming: LaunchTiming?
    /// The QEMU configuration of the last start.
    public private(set) var lastConfiguration: QEMUConfiguration?
    private var startRequestedAt: ContinuousClock.Instant?

    /// Opens the Engine's root, reading its state (a kill -9 left it whole), and finds the VMs
    /// whose QEMU still runs. With a TPM, measures what it runs before any VM can start.
    public init(layout: EngineLayout, boot: GuestBoot, accelerator: Accelerator, security: SecurityZone,
                logger: Logger = Logger(label: "hearth.engine")) throws {
        self.layout = layout
        self.accelerator = accelerator
        self.security = security
        self.logger = logger
        // Others may pass through the root (a VM's user must reach its own folders, the boot
        // files and the images) but not list it; the state file itself is 0600.
        for directory in [layout.root, "\(layout.root)/vms", "\(layout.root)/run"] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            chmod(directory, 0o711)
        }
        store = EngineStateStore(path: layout.stateFile)
        state = try store.load()
        self.boot = try Self.stage(boot, in: "\(layout.root)/boot")
        if security.encryptsDisks {
            security.start(measuring: try Self.measuredComponents(boot: self.boot, accelerator: accelerator, root: layout.root))
        } else {
            security.start(measuring: [])
        }
    }

    /// Copies the kernel and initramfs where every VM's user can read them (the cache they
    /// come from may be in root's home).
    private static func stage(_ boot: GuestBoot, in folder: String) throws -> GuestBoot {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        chmod(folder, 0o755)
        func place(_ path: String) throws -> String {
            let target = "\(folder)/\((path as NSString).lastPathComponent)"
            let sourceSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
            let targetSize = (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? Int) ?? -2
            if sourceSize != targetSize {
                try? FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: path, toPath: target)
            }
            chmod(target, 0o644)
            return target
        }
        var staged = boot
        staged.kernel = try place(boot.kernel)
        staged.initrd = try boot.initrd.map(place)
        return staged
    }

    /// Sets the VMs this Engine runs.
    public func define(_ list: VMDefinitionList) throws {
        let problems = list.problems
        guard problems.isEmpty else { throw EngineError.invalidDefinition(problems) }
        definitions = Dictionary(uniqueKeysWithValues: list.vms.map { ($0.name, $0) })
        for name in definitions.keys where state.vms[name] == nil {
            state.vms[name] = EngineState.VMRecord()
        }
        try reapExited()
        try store.save(state)
    }

    /// Each VM's state, with QEMUs that ended on their own noticed first.
    public func status() throws -> [VMStatus] {
        try reapExited()
        return definitions.values.sorted { $0.name < $1.name }.map { definition in
            let record = state.vms[definition.name] ?? EngineState.VMRecord()
            return VMStatus(
                name: definition.name, role: definition.role.rawValue, phase: record.lifecycle.phase,
                image: definition.image.description, bootedImage: record.bootedImage?.description,
                lastFailure: record.lifecycle.lastFailure, rollbackReason: record.rollbackReason, pid: record.pid,
                blocked: refusal(for: definition)
            )
        }
    }

    /// Starts a VM and waits until its guest confirms the boot. A new image version that does
    /// not boot is rolled back to the previous one, and the reason recorded.
    ///
    /// - Parameter firmwareFiles: files offered to the guest over fw_cfg (test probes, guest
    ///   configuration).
    public func start(_ name: String, firmwareFiles: [QEMUConfiguration.FirmwareFile] = []) async throws {
        try reapExited()
        let definition = try self.definition(name)
        var record = state.vms[name] ?? EngineState.VMRecord()
        if let reason = refusal(for: definition), record.lifecycle.phase != .running {
            logger.warning("VM may not start", metadata: ["vm.name": "\(name)", "reason": "\(reason)"])
            throw EngineError.notAllowed(vm: name, reason: reason)
        }
        startRequestedAt = ContinuousClock.now
        switch record.lifecycle.handle(.startRequested) {
        case .prepareAndLaunch: break
        case .reject(let reason): throw EngineError.rejected(vm: name, reason: reason)
        default: return
        }
        state.vms[name] = record
        try store.save(state)

        let firmwareFiles = firmwareFiles.isEmpty ? firmwareProvider?(definition) ?? [] : firmwareFiles
        let wanted = definition.image
        let switching = record.bootedImage != nil && record.bootedImage != wanted
        do {
            try await launchAndConfirm(definition, image: wanted, firmwareFiles: firmwareFiles)
            update(name) { record in
                if switching { record.previousImage = record.bootedImage }
                record.bootedImage = wanted
                record.rollbackReason = nil
            }
        } catch let failure where switching {
            guard let previous = state.vms[name]?.bootedImage else { throw failure }
            let reason = "image \(wanted) did not boot (\(failure)); rolled back to \(previous)"
            logger.warning("image switch rolled back", metadata: ["vm.name": "\(name)", "reason": "\(reason)"])
            update(name) { record in
                record.rollbackReason = reason
                record.lifecycle = VMLifecycle()
                _ = record.lifecycle.handle(.startRequested)
            }
            try store.save(state)
            try await launchAndConfirm(definition, image: previous, firmwareFiles: firmwareFiles)
        }
        update(name) { record in
            _ = record.lifecycle.handle(.bootConfirmed)
            record.launchedImage = nil
        }
        try store.save(state)
    }

    /// Stops a VM: the ACPI power button, then quit, then kill.
    public func stop(_ name: String) async throws {
        _ = try definition(name)
        try reapExited()
        var record = state.vms[name] ?? EngineState.VMRecord()
        guard record.lifecycle.handle(.stopRequested) == .powerDown else { return }
        state.vms[name] = record
        try store.save(state)
        if let vm = running.removeValue(forKey: name) {
            let outcome = await vm.process.shutdown(qmp: vm.qmp, grace: .seconds(30))
            await vm.qmp?.close()
            logger.info("VM stopped", metadata: ["vm.name": "\(name)", "outcome": "\(outcome.rawValue)"])
        } else if let pid = record.pid {
            // A QEMU from before an Engine restart: it has no client here; ask QMP afresh.
            try await stopAdopted(pid: pid, paths: layout.vm(name))
        }
        update(name) { record in
            _ = record.lifecycle.handle(.exited(status: 0))
            record.pid = nil
        }
        try store.save(state)
    }

    public func restart(_ name: String, firmwareFiles: [QEMUConfiguration.FirmwareFile] = []) async throws {
        try await stop(name)
        try await start(name, firmwareFiles: firmwareFiles)
    }

    // MARK: Management

    /// The VMs this Engine runs now.
    public var definedVMs: [VMDefinition] { definitions.values.sorted { $0.name < $1.name } }

    /// Why IT locked this PC, or nil.
    public var lockReason: String? { state.lock }

    /// Sets what may keep a VM from starting (checked at every start, shown in `status()`).
    public func setStartGate(_ gate: @escaping @Sendable (VMDefinition) -> String?) {
        startGate = gate
    }

    /// Sets the files offered to each guest over fw_cfg at starts that name none (a start by the
    /// management zone or the control socket).
    public func setFirmwareProvider(_ provider: @escaping @Sendable (VMDefinition) -> [QEMUConfiguration.FirmwareFile]) {
        firmwareProvider = provider
    }

    /// Locks the PC: every VM stops and none starts until `unlock()`. Kept across restarts.
    /// Returns the VMs it stopped.
    @discardableResult
    public func lock(reason: String) async throws -> [String] {
        state.lock = reason
        try store.save(state)
        return try await stopAll { _ in true }
    }

    public func unlock() throws {
        state.lock = nil
        try store.save(state)
    }

    /// Stops the VMs with `role`, destroys their keys (crypto-erase for work VMs) and deletes
    /// their disks and run files; the VMs stay defined and start afresh (empty local and user
    /// disks) once allowed again.
    ///
    /// - Parameters:
    ///   - command: the wipe command, named in the measured wipe event.
    ///   - nonce: the Center's nonce, for the TPM's quote of the wipe.
    public func wipe(role: VMDefinition.Role, command: String? = nil, nonce: [UInt8]? = nil) async throws -> Wipe {
        _ = try await stopAll { $0.role == role }
        var wiped: [WipedVM] = []
        for definition in definitions.values.sorted(by: { $0.name < $1.name }) where definition.role == role {
            let paths = layout.vm(definition.name)
            var files: [String] = []
            var bytes: UInt64 = 0
            for folder in [paths.disks, paths.run] {
                for file in (try? FileManager.default.contentsOfDirectory(atPath: folder))?.sorted() ?? [] {
                    let path = "\(folder)/\(file)"
                    bytes += (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0
                    files.append(path)
                }
                if FileManager.default.fileExists(atPath: folder) {
                    do { try FileManager.default.removeItem(atPath: folder) } catch {
                        throw EngineError.io(path: folder, reason: "cannot delete it for the wipe: \(error)")
                    }
                }
            }
            state.vms[definition.name] = EngineState.VMRecord()
            wiped.append(WipedVM(name: definition.name, files: files, bytes: bytes))
        }
        try store.save(state)
        let names = wiped.map(\.name)
        var method = "the disk files and their keys were deleted"
        var evidence: WipeEvidence?
        if role == .work {
            let erased = try security.eraseWork(vms: names, command: command, nonce: nonce)
            method = erased.method + "; then the disk files were deleted"
            evidence = erased.evidence
        } else {
            for name in names { security.forget(vm: name) }
        }
        logger.notice("wiped", metadata: ["role": "\(role.rawValue)", "method": "\(method)"])
        return Wipe(vms: wiped, method: method, evidence: evidence)
    }

    private func stopAll(where include: (VMDefinition) -> Bool) async throws -> [String] {
        var stopped: [String] = []
        for status in try status() where [.running, .starting].contains(status.phase) {
            guard let definition = definitions[status.name], include(definition) else { continue }
            try await stop(status.name)
            stopped.append(status.name)
        }
        return stopped
    }

    private func refusal(for definition: VMDefinition) -> String? {
        if let lock = state.lock { return "this PC is locked by IT (\(lock)); it stays locked until IT unlocks it" }
        if definition.role == .work, let reason = security.workRefusal { return reason }
        return startGate?(definition)
    }

    // MARK: Internals

    func definitionIfKnown(_ name: String) -> VMDefinition? {
        definitions[name]
    }

    private func definition(_ name: String) throws -> VMDefinition {
        guard let definition = definitions[name] else { throw EngineError.unknownVM(name) }
        return definition
    }

    private func update(_ name: String, _ change: (inout EngineState.VMRecord) -> Void) {
        var record = state.vms[name] ?? EngineState.VMRecord()
        change(&record)
        state.vms[name] = record
    }

    /// Prepares the disks, starts QEMU and waits for the boot marker. On failure QEMU is gone.
    private func launchAndConfirm(_ definition: VMDefinition, image: ImageReference, firmwareFiles: [QEMUConfiguration.FirmwareFile]) async throws {
        let paths = layout.vm(definition.name)
        let (configuration, keys) = try prepare(definition, image: image, paths: paths, firmwareFiles: firmwareFiles)
        let user = try VMUser.ensure(for: definition.name)
        if let user {
            try VMUser.own([paths.disks, paths.run], by: user)
        }
        let process: QEMUProcess
        do {
            try NetworkFilter.enforce(before: definition, among: Array(definitions.values), logger: logger)
            process = try QEMUProcess.launch(configuration, stderrLog: paths.qemuLog, runAs: user, logger: logger)
        } catch {
            update(definition.name) { _ = $0.lifecycle.handle(.launchFailed("\(error)")) }
            try store.save(state)
            throw error
        }
        if let requested = startRequestedAt {
            lastLaunchTiming = LaunchTiming(untilExec: process.launchedAt - requested)
        }
        lastConfiguration = configuration
        update(definition.name) { record in
            record.pid = process.pid
            record.launchedImage = image
        }
        try store.save(state)
        do {
            let qmp = try await process.connectQMP()
            running[definition.name] = (process, qmp)
            if !keys.isEmpty { try await process.attachEncryptedDisks(qmp, keys: keys) }
            try await process.waitForConsole(containing: boot.bootMarker, timeout: boot.bootTimeout)
        } catch {
            await process.kill()
            running[definition.name] = nil
            update(definition.name) { record in
                _ = record.lifecycle.handle(.launchFailed("\(error)"))
                record.pid = nil
            }
            try store.save(state)
            throw error
        }
    }

    /// The disks of one boot: a new system overlay over the image (what the last boot wrote is
    /// gone), and the local and user disks, made empty the first time and kept afterwards.
    /// With a TPM, the local and user disks and a work VM's overlay are encrypted; their keys
    /// are returned for QEMU (over QMP), never written in the configuration.
    private func prepare(_ definition: VMDefinition, image: ImageReference, paths: VMPaths,
                         firmwareFiles: [QEMUConfiguration.FirmwareFile]) throws -> (QEMUConfiguration, [String: [UInt8]]) {
        let gold = layout.imageDisk(image)
        guard FileManager.default.fileExists(atPath: gold) else {
            throw EngineError.imageMissing(image, path: gold)
        }
        for directory in [paths.disks, paths.run] {
            // Each VM's files are its own: no other user may read them.
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let goldFormat = try DiskOpener.detect(try DiskFile(path: gold))
        var keys: [String: [UInt8]] = [:]
        var disks: [QEMUConfiguration.Disk] = []
        if security.encryptsDisks && definition.role == .work {
            // A key for this boot only: what the last boot wrote is unreadable as well as gone.
            try? FileManager.default.removeItem(atPath: paths.systemDisk)
            let size = try DiskOpener.open(gold, format: goldFormat, policy: DiskAccessPolicy(allowedDirectories: [])).virtualSize
            keys["system"] = try security.ephemeralKey()
            disks.append(.init(id: "system", path: paths.systemDisk, format: .qcow2, serial: "system",
                               encryption: .init(createSize: size, backing: gold, backingFormat: goldFormat == .qcow2 ? .qcow2 : .raw)))
        } else {
            try Overlay.create(at: paths.systemDisk, base: gold, baseFormat: goldFormat, replace: true)
            disks.append(.init(id: "system", path: paths.systemDisk, format: .qcow2, serial: "system"))
        }
        for (id, path, size) in [("local", paths.localDisk, definition.localDiskBytes), ("user", paths.userDisk, definition.userDiskBytes)] {
            let exists = FileManager.default.fileExists(atPath: path)
            if exists, !Self.isEncrypted(path) {
                // Made before this PC had a TPM: opened as it is.
                disks.append(.init(id: id, path: path, format: .qcow2, serial: id))
            } else if let key = try security.diskKey(vm: definition.name, disk: id, role: definition.role) {
                keys[id] = key
                disks.append(.init(id: id, path: path, format: .qcow2, serial: id, encryption: .init(createSize: size)))
            } else if exists {
                throw EngineError.security("\(definition.name)'s \(id) disk is encrypted and this Engine runs without a TPM: it cannot be opened here")
            } else {
                try DiskCreator.createQCOW2(at: path, size: size)
                disks.append(.init(id: id, path: path, format: .qcow2, serial: id))
            }
        }
        // Keep the last boot's console for diagnosis; the marker must come from this boot.
        try? FileManager.default.removeItem(atPath: paths.consoleLog + ".previous")
        try? FileManager.default.moveItem(atPath: paths.consoleLog, toPath: paths.consoleLog + ".previous")
        let configuration = QEMUConfiguration(
            name: "hearth-\(definition.name)",
            accelerator: accelerator,
            cpus: definition.cpus,
            memoryMiB: definition.memoryMiB,
            kernelBoot: .init(kernel: boot.kernel, initrd: boot.initrd, commandLine: boot.commandLine),
            disks: disks,
            firmwareFiles: firmwareFiles,
            qmpSocket: paths.qmpSocket,
            consoleSocket: paths.consoleSocket,
            consoleLog: paths.consoleLog,
            vncSocket: paths.vncSocket,
            // Internet and full access are both user-mode NAT; for internet-only VMs the host's
            // firewall refuses local destinations (NetworkFilter.enforce, before the launch).
            network: definition.network == .none ? nil : .userNAT
        )
        return (configuration, keys)
    }

    /// Notices QEMUs that ended on their own (a guest power-off, a crash), including those
    /// started by an earlier Engine process that was killed: a recorded QEMU still running with
    /// this VM's QMP socket on its command line is adopted; any other record is cleared.
    private func reapExited() throws {
        var changed = false
        for (name, record) in state.vms where running[name] == nil {
            guard let pid = record.pid else { continue }
            if Self.isQEMU(pid: pid, of: layout.vm(name)) {
                // Started by an Engine killed before the boot was confirmed: the console says.
                if record.lifecycle.phase == .starting,
                   ConsoleLog(path: layout.vm(name).consoleLog).contents().contains(boot.bootMarker) {
                    update(name) { record in
                        _ = record.lifecycle.handle(.bootConfirmed)
                        if let launched = record.launchedImage {
                            if record.bootedImage != launched { record.previousImage = record.bootedImage }
                            record.bootedImage = launched
                        }
                        record.launchedImage = nil
                    }
                    changed = true
                }
                continue
            }
            update(name) { record in
                _ = record.lifecycle.handle(.exited(status: 0))
                record.pid = nil
            }
            changed = true
        }
        for (name, vm) in running {
            guard let status = vm.process.exitCode else { continue }
            running[name] = nil
            update(name) { record in
                _ = record.lifecycle.handle(.exited(status: status))
                record.pid = nil
            }
            changed = true
        }
        if changed { try store.save(state) }
    }

    /// Whether `pid` is a live QEMU serving this VM (pids are reused, so the command line is
    /// checked too).
    static func isQEMU(pid: Int32, of paths: VMPaths) -> Bool {
        guard isAlive(pid), let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: cmdline, as: UTF8.self).contains(paths.qmpSocket)
    }

    private func stopAdopted(pid: Int32, paths: VMPaths) async throws {
        if let qmp = try? await QMPClient.connect(socketPath: paths.qmpSocket, timeout: .seconds(5)) {
            _ = try? await qmp.execute("system_powerdown")
            await qmp.close()
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while Self.isAlive(pid), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        if Self.isAlive(pid) { kill(pid, SIGKILL) }
    }

    /// Whether `pid` runs: it exists and is not a zombie waiting for its parent to reap it.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return false }
        let text = String(decoding: stat, as: UTF8.self)
        // "PID (COMM) STATE …": the state follows the last closing parenthesis.
        guard let close = text.lastIndex(of: ")") else { return false }
        let state = text[text.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }
}
