import Foundation
import HearthCore

/// What the Engine reports about the PC it runs on, and where it falls short of policy.
enum Inventory {
    static func collect(root: String, virtualization: String) -> DeviceStatus.Inventory {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        var fs = statvfs()
        let disk = statvfs(root, &fs) == 0 ? UInt64(fs.f_blocks) * UInt64(fs.f_frsize) : 0
        return DeviceStatus.Inventory(cpuModel: model, cpus: ProcessInfo.processInfo.activeProcessorCount,
                                      memoryBytes: ProcessInfo.processInfo.physicalMemory, diskBytes: disk, virtualization: virtualization)
    }

    /// Each VM policy's minimum hardware this PC does not meet, in words.
    static func shortfalls(_ inventory: DeviceStatus.Inventory, policies: [(vm: String, policy: EffectivePolicy)]) -> [String] {
        var problems: [String] = []
        for (vm, policy) in policies {
            if inventory.cpus < policy.minimumCPUs {
                problems.append("\(vm): needs at least \(policy.minimumCPUs) CPUs; this PC has \(inventory.cpus)")
            }
            let memoryMiB = Int(inventory.memoryBytes >> 20)
            if memoryMiB < policy.minimumMemoryMiB {
                problems.append("\(vm): needs at least \(policy.minimumMemoryMiB) MiB of memory; this PC has \(memoryMiB) MiB")
            }
            let diskGiB = Int(inventory.diskBytes >> 30)
            if diskGiB < policy.minimumDiskGiB {
                problems.append("\(vm): needs at least \(policy.minimumDiskGiB) GiB of disk; this PC has \(diskGiB) GiB")
            }
        }
        return problems
    }
}

/// The collectDiagnostics command's bundle: a summary (VM states, lease, updates, lock) and the
/// end of each file that tells what happened: every VM's QEMU and console logs, and the Engine's
/// state, desired state, lease and command record. Never the identity folder (the device key).
enum Diagnostics {
    /// How much of each file's end goes in, and the most the files may add up to, so that the
    /// bundle stays under `DiagnosticsBundle.maximumBytes` however many VMs there are.
    static let perFile = 24 << 10
    static let allFiles = 150 << 10

    static func collect(engine: Engine, layout: EngineLayout, lease: String, updates: [ImageUpdate], now: Date) async throws -> DiagnosticsBundle {
        var lines = ["Hearth Engine diagnostics", "lease: \(lease)"]
        if let lock = await engine.lockReason { lines.append("locked: \(lock)") }
        for update in updates {
            lines.append("update \(update.image): \(update.state.rawValue), \(update.bytesFetched) bytes fetched\(update.error.map { " — \($0)" } ?? "")")
        }
        var paths = ["\(layout.root)/state.json", "\(layout.root)/desired.json", "\(layout.root)/lease.json", "\(layout.root)/commands.json"]
        for vm in try await engine.status() {
            lines.append("vm \(vm.name) (\(vm.role)): \(vm.phase.rawValue), image \(vm.bootedImage ?? vm.image)\(vm.lastFailure.map { "; last failure: \($0)" } ?? "")\(vm.blocked.map { "; may not start: \($0)" } ?? "")")
            let run = layout.vm(vm.name)
            paths += [run.qemuLog, run.consoleLog, run.consoleLog + ".previous"]
        }
        var files: [DiagnosticsBundle.File] = []
        var budget = allFiles
        for path in paths where budget > 0 {
            guard let handle = FileHandle(forReadingAtPath: path) else { continue }
            defer { try? handle.close() }
            let size = (try? handle.seekToEnd()) ?? 0
            let take = UInt64(min(perFile, budget))
            try? handle.seek(toOffset: size > take ? size - take : 0)
            let data = (try? handle.readToEnd()) ?? Data()
            budget -= data.count
            files.append(.init(path: path, size: size, text: String(decoding: data, as: UTF8.self)))
        }
        var bundle = DiagnosticsBundle(collected: now, summary: lines.joined(separator: "\n"), files: files)
        // JSON escapes control characters (a console log's CRs, a terminal's escapes), which can
        // make the bundle larger than its raw text: halve the largest file until it fits.
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        while let encoded = try? encoder.encode(bundle), encoded.count > DiagnosticsBundle.maximumBytes,
              let largest = bundle.files.indices.max(by: { bundle.files[$0].text.utf8.count < bundle.files[$1].text.utf8.count }),
              !bundle.files[largest].text.isEmpty {
            bundle.files[largest].text = String(bundle.files[largest].text.suffix(bundle.files[largest].text.count / 2))
        }
        return bundle
    }
}
