import Foundation
import Testing
@testable import QMP

@Suite struct AcceleratorProbeTests {
    @Test func nestedKVMWithoutHardwareVirtualizationFallsBackToTCG() {
        // The build machines: /dev/kvm opens and answers, but the CPU has no vmx/svm.
        let choice = AcceleratorProbe.choose(from: .init(cpuFlags: ["fpu", "sse2", "hypervisor"], kvmAPIVersion: 12))
        #expect(choice.accelerator == .tcg)
        #expect(choice.reason.contains("vmx"))
        #expect(choice.warning?.hasPrefix("warning: running guests under TCG") == true)
    }

    @Test func hardwareVirtualizationWithoutAUsableDeviceFallsBackToTCG() {
        let choice = AcceleratorProbe.choose(from: .init(cpuFlags: ["vmx"], kvmAPIVersion: nil, kvmOpenError: "/dev/kvm: Permission denied"))
        #expect(choice.accelerator == .tcg)
        #expect(choice.reason.contains("Permission denied"))
    }

    @Test func unknownKVMAPIVersionIsNotUsed() {
        #expect(AcceleratorProbe.choose(from: .init(cpuFlags: ["svm"], kvmAPIVersion: 11)).accelerator == .tcg)
    }

    @Test func hardwareVirtualizationAndAWorkingDeviceChooseKVMWithoutWarning() {
        let choice = AcceleratorProbe.choose(from: .init(cpuFlags: ["svm"], kvmAPIVersion: 12))
        #expect(choice.accelerator == .kvm)
        #expect(choice.warning == nil)
    }

    @Test func readsFlagsFromCpuinfoAndANonexistentDeviceMeansTCG() throws {
        let cpuinfo = FileManager.default.temporaryDirectory.appendingPathComponent("cpuinfo-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cpuinfo) }
        try "processor\t: 0\nflags\t\t: fpu vme vmx sse2\n\nprocessor\t: 1\nflags\t\t: fpu vme vmx sse2\n".write(to: cpuinfo, atomically: true, encoding: .utf8)
        let facts = AcceleratorProbe.hostFacts(cpuinfoPath: cpuinfo.path, kvmDevice: "/nonexistent/kvm")
        #expect(facts.cpuFlags.contains("vmx"))
        #expect(facts.kvmAPIVersion == nil)
        #expect(AcceleratorProbe.probe(cpuinfoPath: cpuinfo.path, kvmDevice: "/nonexistent/kvm").accelerator == .tcg)
    }

    @Test func thisHostWithoutVmxOrSvmGetsTCG() throws {
        // Holds on every machine: without vmx/svm the probe must not pick KVM, whatever /dev/kvm says.
        let facts = AcceleratorProbe.hostFacts(cpuinfoPath: "/proc/cpuinfo", kvmDevice: "/dev/kvm")
        if !facts.cpuFlags.contains("vmx") && !facts.cpuFlags.contains("svm") {
            #expect(AcceleratorProbe.probe().accelerator == .tcg)
        }
    }
}
