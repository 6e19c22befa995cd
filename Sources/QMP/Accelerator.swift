import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How QEMU executes guest code.
public enum Accelerator: String, Codable, Sendable {
    /// Hardware virtualization through `/dev/kvm`.
    case kvm
    /// QEMU's software emulation: slower, but runs anywhere.
    case tcg
}

/// The result of looking at the host for a usable accelerator.
public struct AcceleratorChoice: Sendable, Equatable {
    public var accelerator: Accelerator
    /// Why this accelerator was chosen, in words a user can act on.
    public var reason: String

    /// A line to show once when guests will run slowly, `nil` when KVM is in use.
    public var warning: String? {
        accelerator == .tcg ? "warning: running guests under TCG software emulation (slower): \(reason)" : nil
    }
}

/// Chooses KVM only where it really runs guests: the CPU advertises hardware virtualization
/// (`vmx` or `svm`) *and* `/dev/kvm` opens and answers the KVM API version. A `/dev/kvm` that
/// exists under nested virtualization without `vmx`/`svm` hangs standard guests, so it does not
/// count. The probe never starts a guest, so it cannot hang.
public enum AcceleratorProbe {
    /// What the probe learnt from the host; separated from the decision so it can be tested.
    public struct HostFacts: Sendable, Equatable {
        /// The `flags` words of `/proc/cpuinfo` (any CPU's line).
        public var cpuFlags: Set<String>
        /// `nil` when `/dev/kvm` could not be opened; otherwise what `KVM_GET_API_VERSION` said.
        public var kvmAPIVersion: Int32?
        /// Why `/dev/kvm` could not be opened, when it could not.
        public var kvmOpenError: String?

        public init(cpuFlags: Set<String>, kvmAPIVersion: Int32?, kvmOpenError: String? = nil) {
            self.cpuFlags = cpuFlags
            self.kvmAPIVersion = kvmAPIVersion
            self.kvmOpenError = kvmOpenError
        }
    }

    /// The stable KVM API version; anything else is a kernel we do not know how to drive.
    static let kvmStableAPIVersion: Int32 = 12

    /// Decides from facts alone.
    public static func choose(from facts: HostFacts) -> AcceleratorChoice {
        guard facts.cpuFlags.contains("vmx") || facts.cpuFlags.contains("svm") else {
            return AcceleratorChoice(
                accelerator: .tcg,
                reason: "the CPU does not advertise hardware virtualization (no vmx or svm in /proc/cpuinfo); enable VT-x or AMD-V in the firmware, or in the outer hypervisor for nested guests"
            )
        }
        guard let version = facts.kvmAPIVersion else {
            return AcceleratorChoice(
                accelerator: .tcg,
                reason: "/dev/kvm is not usable (\(facts.kvmOpenError ?? "cannot open it")); load the kvm_intel or kvm_amd module and check the device's permissions"
            )
        }
        guard version == kvmStableAPIVersion else {
            return AcceleratorChoice(accelerator: .tcg, reason: "/dev/kvm answers API version \(version), expected \(kvmStableAPIVersion)")
        }
        return AcceleratorChoice(accelerator: .kvm, reason: "hardware virtualization is available through /dev/kvm")
    }

    /// Reads the host and decides. `cpuinfoPath` and `kvmDevice` are parameters for tests.
    public static func probe(cpuinfoPath: String = "/proc/cpuinfo", kvmDevice: String = "/dev/kvm") -> AcceleratorChoice {
        choose(from: hostFacts(cpuinfoPath: cpuinfoPath, kvmDevice: kvmDevice))
    }

    static func hostFacts(cpuinfoPath: String, kvmDevice: String) -> HostFacts {
        var flags = Set<String>()
        if let text = try? String(contentsOfFile: cpuinfoPath, encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("flags") {
                if let colon = line.firstIndex(of: ":") {
                    flags.formUnion(line[line.index(after: colon)...].split(separator: " ").map(String.init))
                }
            }
        }
        let fd = open(kvmDevice, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            return HostFacts(cpuFlags: flags, kvmAPIVersion: nil, kvmOpenError: "\(kvmDevice): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        // KVM_GET_API_VERSION is _IO(0xAE, 0x00).
        let version = ioctl(fd, 0xAE00)
        guard version >= 0 else {
            return HostFacts(cpuFlags: flags, kvmAPIVersion: nil, kvmOpenError: "KVM_GET_API_VERSION failed: \(String(cString: strerror(errno)))")
        }
        return HostFacts(cpuFlags: flags, kvmAPIVersion: version)
    }
}
