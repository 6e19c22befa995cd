import Foundation
import GuestKit
import HearthCore
import HearthEngine
import QMP
import Synchronization
import Testing

extension VMSuites.EngineTests {
    /// What each network policy lets a guest reach, tried from inside real guests: a listener on
    /// the host (through the NAT's 10.0.2.2, the host's loopback) and on the host's own local
    /// address, and DNS through the NAT.
    @Test func anInternetOnlyVMReachesNeitherTheHostNorTheLocalNetworkWhileAFullOneDoes() async throws {
        let fixture = try Fixture()
        let listener = try HostListener()
        defer { listener.stop() }
        let local = Self.localIPv4Address()
        let name = "deb.debian.org"
        let resolved = Self.resolve(name)
        let definitions = VMDefinitionList(vms: [
            VMDefinition(name: "work", role: .work, image: .init(name: "kit", version: "1"), cpus: 1, memoryMiB: 256, localDiskBytes: 32 << 20, userDiskBytes: 64 << 20, network: .full),
            VMDefinition(name: "personal", role: .personal, image: .init(name: "kit", version: "1"), cpus: 1, memoryMiB: 256, localDiskBytes: 32 << 20, userDiskBytes: 64 << 20, network: .internet),
        ])
        /// Brings up the card by hand (the kit has no DHCP client script) and tries each target.
        func probe(_ vm: String) throws -> [QEMUConfiguration.FirmwareFile] {
            var script = """
            card=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
            ip link set "$card" up
            ip addr add 10.0.2.15/24 dev "$card"
            ip route add default via 10.0.2.2
            echo "host=[$(nc -w 5 10.0.2.2 \(listener.port) </dev/null 2>/dev/null)]"

            """
            if let local { script += "echo \"local=[$(nc -w 5 \(local) \(listener.port) </dev/null 2>/dev/null)]\"\n" }
            if let resolved {
                script += "if nslookup \(name) 10.0.2.3 2>/dev/null | grep -q '\(resolved)'; then echo dns=yes; else echo dns=no; fi\n"
            }
            let path = "\(fixture.probes)/\(vm)-network.sh"
            try script.write(toFile: path, atomically: true, encoding: .utf8)
            return [.init(name: GuestKit.probeFirmwareName, path: path)]
        }

        let engine = try fixture.engine()
        try await engine.define(definitions)
        do {
            try await engine.start("work", firmwareFiles: probe("work"))
            let full = try await fixture.report("work")
            #expect(full["host"] == "[\(HostListener.greeting)]", "a VM with full access reaches the host: \(full)")
            if local != nil { #expect(full["local"] == "[\(HostListener.greeting)]", "a VM with full access reaches the local network: \(full)") }

            if getuid() == 0 {
                try await engine.start("personal", firmwareFiles: probe("personal"))
                let internet = try await fixture.report("personal")
                #expect(internet["host"] == "[]", "an internet-only VM reached a listener on the host: \(internet)")
                if local != nil { #expect(internet["local"] == "[]", "an internet-only VM reached the host's local address \(local ?? ""): \(internet)") }
                if resolved != nil {
                    // DNS is the one thing on the local side it may use: the host's own resolvers.
                    #expect(internet["dns"] == "yes", "an internet-only VM could not resolve names: \(internet)")
                }
                #expect(listener.connections == 1 + (local == nil ? 0 : 1), "only the full VM's connections arrived")
            } else {
                // Without per-VM users the host's firewall cannot single the VM out: it must not
                // start with more access than its policy grants.
                await #expect {
                    try await engine.start("personal", firmwareFiles: probe("personal"))
                } throws: { error in
                    "\(error)".contains("internet only") && "\(error)".contains("run the Engine as root")
                }
            }
        } catch {
            await Self.stopAll(engine)
            throw error
        }
        await Self.stopAll(engine)
    }

    /// The host's first non-loopback IPv4 address, if it has one.
    static func localIPv4Address() -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var entry = list
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            var v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            inet_ntop(AF_INET, &v4, &text, socklen_t(text.count))
            let string = String(cString: text)
            if !string.hasPrefix("127.") { return string }
        }
        return nil
    }

    /// The first IPv4 address the host resolves `name` to, if it can.
    static func resolve(_ name: String) -> String? {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        var v4 = first.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &v4, &text, socklen_t(text.count))
        return String(cString: text)
    }
}

/// A TCP listener on every host address that greets each connection and counts them.
final class HostListener: Sendable {
    static let greeting = "hearth-host"
    let port: Int
    private let fd: Int32
    private let count = Mutex(0)

    var connections: Int { count.withLock { $0 } }

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = INADDR_ANY
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 8) == 0 else {
            close(fd)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in serve() }.start()
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            count.withLock { $0 += 1 }
            let line = Array("\(HostListener.greeting)\n".utf8)
            _ = line.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(client)
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
