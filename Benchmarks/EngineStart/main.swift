// The Engine's own cost of starting a VM, beside a bare QEMU start of the same VM, and the
// per-boot system-disk reset for gold images of different sizes. Build in release:
//   swift run -c release engine-start-bench [--runs N]
//
// "Engine" is the time from the start request until QEMU has been exec'd, as the Engine's own
// timings record it (preparing the disks, building the command line, spawning); "bare" is
// spawning QEMU with an identical configuration whose disks already exist. Both then wait for
// QMP, which is QEMU's own start-up and the same for both.
import Foundation
import GuestKit
import HearthCore
import HearthEngine
import QMP
import VirtualDisk

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

var runs = 9
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    if argument == "--runs", let value = arguments.next().flatMap(Int.init) { runs = value }
}

let kit = try GuestKit.prepare().kit
let root = "/tmp/hb-\(getpid())"
defer { try? FileManager.default.removeItem(atPath: root) }
let layout = EngineLayout(root: root)
let image = ImageReference(name: "kit", version: "1")
try FileManager.default.createDirectory(atPath: layout.imageDirectory(image), withIntermediateDirectories: true)
try FileManager.default.copyItem(atPath: kit.rootDisk, toPath: layout.imageDisk(image))
let boot = GuestBoot(kernel: kit.kernel, initrd: kit.initramfs, commandLine: "console=ttyS0 hearth.root=system", bootMarker: "never printed", bootTimeout: .seconds(1))
let accelerator = AcceleratorProbe.probe().accelerator
let engine = try Engine(layout: layout, boot: boot, accelerator: accelerator, security: SecurityZone(mode: .insecureDevelopment, root: root))
try await engine.define(VMDefinitionList(vms: [VMDefinition(name: "bench", role: .work, image: image, memoryMiB: 128, localDiskBytes: 32 << 20, userDiskBytes: 32 << 20)]))

var engineTimes: [Double] = []
var bareTimes: [Double] = []
for _ in 0..<runs {
    // The boot marker never comes: each start ends at its one-second deadline, after the launch.
    _ = try? await engine.start("bench")
    if let timing = await engine.lastLaunchTiming {
        engineTimes.append(milliseconds(timing.untilExec))
    }
    guard let configuration = await engine.lastConfiguration else { break }
    let clock = ContinuousClock()
    let started = clock.now
    let process = try QEMUProcess.launch(configuration, stderrLog: "\(root)/bare.log")
    bareTimes.append(milliseconds(clock.now - started))
    await process.kill()
}
print("VM start, \(runs) runs, median (\(accelerator.rawValue))")
print(String(format: "Engine, request to QEMU exec:  %7.2f ms  (prepares a fresh system overlay and the disks)", median(engineTimes)))
print(String(format: "bare QEMU, spawn to exec:      %7.2f ms", median(bareTimes)))

print("\nsystem-disk reset at boot (fresh overlay over the gold image), median of \(runs)")
for size in ["1G", "64G", "1T"] {
    let gold = "\(root)/gold-\(size).qcow2"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-img")
    process.arguments = ["create", "-q", "-f", "qcow2", gold, size]
    try process.run()
    process.waitUntilExit()
    var times: [Double] = []
    for _ in 0..<runs {
        let clock = ContinuousClock()
        let started = clock.now
        try Overlay.create(at: "\(root)/system-\(size).qcow2", base: gold, baseFormat: .qcow2, replace: true)
        times.append(milliseconds(clock.now - started))
    }
    print(String(format: "gold image %@:  %6.2f ms", size.padding(toLength: 4, withPad: " ", startingAt: 0), median(times)))
}
