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

/// The collectDiagnostics command's report: VM states, lease, updates and the end of each VM's
/// QEMU and console logs, at most 60 KiB (the Center keeps a command result up to 64 KiB).
enum Diagnostics {
    static func collect(engine: Engine, layout: EngineLayout, lease: String, updates: [ImageUpdate]) async throws -> String {
        var lines = ["Hearth Engine diagnostics", "lease: \(lease)"]
        if let lock = await engine.lockReason { lines.append("locked: \(lock)") }
        for update in updates {
            lines.append("update \(update.image): \(update.state.rawValue), \(update.bytesFetched) bytes fetched\(update.error.map { " — \($0)" } ?? "")")
        }
        for vm in try await engine.status() {
            lines.append("vm \(vm.name) (\(vm.role)): \(vm.phase.rawValue), image \(vm.bootedImage ?? vm.image)\(vm.lastFailure.map { "; last failure: \($0)" } ?? "")\(vm.blocked.map { "; may not start: \($0)" } ?? "")")
            let paths = layout.vm(vm.name)
            for log in [paths.qemuLog, paths.consoleLog] {
                guard let data = FileManager.default.contents(atPath: log) else { continue }
                let tail = String(decoding: data.suffix(4096), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).suffix(30)
                lines.append("--- \(log) (last \(tail.count) lines)")
                lines.append(contentsOf: tail.map(String.init))
            }
        }
        var text = lines.joined(separator: "\n")
        if text.utf8.count > 60 << 10 { text = String(decoding: Array(text.utf8.suffix(60 << 10)), as: UTF8.self) }
        return text
    }
}
