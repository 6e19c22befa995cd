// The Engine's own cost of starting a VM, beside a bare QEMU start of the same VM, and the
// per-boot system-disk reset for gold images of different sizes. Build in release:
//   swift run -c release engine-start-bench [--runs N]
//
// "Engine" is the time from the start request until QEMU has been exec'd, as the Engine's own
// timings record it (preparing the disks, building the command line, spawning); "bare" is
// spawning QEMU with an identical configuration whose disks already exist. Both then wait for
// QMP, which is QEMU's own start-up and the same for both.
import Crypto
import Foundation
import GuestKit
import HearthCore
import HearthEngine
import QMP
import TestSupport
import TPM
import TPMPolicy
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

// The security zone's cost (docs/SECURITY.md), against swtpm on loopback: what measuring and
// unsealing adds to the Engine's start at boot, and what encrypted disks add to each VM start
// (keys over QMP, a new encrypted system overlay, LUKS opens), beside the same start with plain
// disks. Each start ends at the one-second boot deadline, so the difference is the zone's.
print("\nsecurity zone (swtpm), median of \(runs)")
let swtpmState = "\(root)/swtpm"
var swtpm = try SoftwareTPM(state: swtpmState)
defer { swtpm.stop() }
let secureRoot = "\(root)/s"
let centerKey = P256.Signing.PrivateKey()
var bootNumber = 0
@MainActor func secureEngine() throws -> Engine {
    bootNumber += 1
    let zone = SecurityZone(mode: .tpm(tcti: swtpm.tcti), root: secureRoot, bootID: "bench-boot-\(bootNumber)")
    return try Engine(layout: EngineLayout(root: secureRoot), boot: boot, accelerator: accelerator, security: zone)
}
try FileManager.default.createDirectory(atPath: EngineLayout(root: secureRoot).imageDirectory(image), withIntermediateDirectories: true)
try FileManager.default.copyItem(atPath: kit.rootDisk, toPath: EngineLayout(root: secureRoot).imageDisk(image))
let secure = try secureEngine()
let request = try secure.security.trust(authority: PolicyAuthority(publicKey: centerKey.publicKey))
try secure.security.install(try PolicyAuthority.sign(PolicyTerms(pcrs: [request.pcr], pcrValues: [request.pcrValue], counter: request.counter,
                                                                 counterValue: request.counterValue, policyRef: request.policyRef), with: centerKey))
try await secure.define(VMDefinitionList(vms: [VMDefinition(name: "bench", role: .work, image: image, memoryMiB: 128, localDiskBytes: 32 << 20, userDiskBytes: 32 << 20)]))
_ = try? await secure.start("bench") // first start creates the local and user disks

var zoneStarts: [Double] = []
var rebooted = secure
for _ in 0..<runs {
    // A reboot: the TPM's PCRs go back to zero and the Engine measures and unseals afresh.
    swtpm.powerOff()
    swtpm = try SoftwareTPM(state: swtpmState)
    let clock = ContinuousClock()
    let started = clock.now
    rebooted = try secureEngine()
    zoneStarts.append(milliseconds(clock.now - started))
    guard rebooted.security.standing == .secure else { print("the zone did not unseal: \(rebooted.security.standing)"); break }
}
try await rebooted.define(VMDefinitionList(vms: [VMDefinition(name: "bench", role: .work, image: image, memoryMiB: 128, localDiskBytes: 32 << 20, userDiskBytes: 32 << 20)]))
let measuredBytes = try Engine.measuredComponents(boot: boot, accelerator: accelerator, root: secureRoot)
    .reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1.path)[.size] as? Int) ?? 0) }
var encryptedStarts: [Double] = []
var plainStarts: [Double] = []
for _ in 0..<runs {
    for (target, engine) in [(0, rebooted), (1, engine)] {
        let clock = ContinuousClock()
        let started = clock.now
        _ = try? await engine.start("bench")
        let elapsed = milliseconds(clock.now - started)
        if target == 0 { encryptedStarts.append(elapsed) } else { plainStarts.append(elapsed) }
    }
}
print(String(format: "Engine start at boot, measure %d MB and unseal:  %7.1f ms", measuredBytes >> 20, median(zoneStarts)))
print(String(format: "VM start to boot deadline, encrypted disks:    %7.1f ms", median(encryptedStarts)))
print(String(format: "VM start to boot deadline, plain disks:        %7.1f ms", median(plainStarts)))
print(String(format: "encryption adds per VM start:                  %7.1f ms", median(encryptedStarts) - median(plainStarts)))
