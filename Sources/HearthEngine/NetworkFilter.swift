import Foundation
import HearthCore
import Logging

/// "Internet only", made real. A VM's network is QEMU's user-mode NAT: every connection the
/// guest makes leaves the host as a socket of the VM's QEMU, which runs as the VM's own user
/// (``VMUser``). So nftables rules on the host's output path, matching those users, decide what
/// such a VM reaches: public addresses, and DNS to the host's own resolvers, but not the local
/// network, link-local addresses, the host itself (the NAT's 10.0.2.2 is the host's loopback) or
/// any address the host routes over loopback. A VM with "full" access is not in the set.
///
/// Hearth owns one table, `inet hearth`, and replaces it whole in one nftables transaction each
/// time a VM starts, from the definitions the Engine holds: no moment without rules, and a VM
/// that moved from "internet" to "full" leaves the set.
///
/// Written against the nft command rather than libnftables: the command takes the same ruleset
/// text in one atomic transaction, and its messages name what the kernel refused.
enum NetworkFilter {
    static let table = "hearth"

    /// Private, shared, link-local, loopback, multicast and reserved IPv4 ranges.
    static let localIPv4 = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    ]
    /// The IPv6 counterparts: unspecified and loopback, v4-mapped, unique local, link-local,
    /// site-local and multicast.
    static let localIPv6 = ["::/127", "::ffff:0:0/96", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8"]

    enum Failure: Error, Equatable, CustomStringConvertible {
        case notRoot
        case nftMissing
        case refused(String)

        var description: String {
            switch self {
            case .notRoot:
                "the Engine is not running as root, so the VM's QEMU cannot run as a user of its own for the host's firewall to single out; run the Engine as root"
            case .nftMissing:
                "the nft command is not installed; install it with 'apt-get install nftables'"
            case .refused(let message):
                "nftables refused Hearth's rules: \(message)"
            }
        }
    }

    /// Brings the host's firewall up to date with `definitions` before `definition` starts. A
    /// VM with internet-only access does not start without its rules; for the others, rules that
    /// cannot be written only cost a warning (a VM that left the set stays held to public
    /// addresses until the rules are rewritten: stricter, never looser).
    static func enforce(before definition: VMDefinition, among definitions: [VMDefinition], logger: Logger) throws {
        guard definition.network != .none else { return }
        let internetOnly = definitions.filter { $0.network == .internet }.compactMap { vm in
            getpwnam(VMUser.name(for: vm.name)).map { UInt32($0.pointee.pw_uid) }
        }
        do {
            try apply(internetOnly: internetOnly, resolvers: systemResolvers())
        } catch {
            guard definition.network == .internet else {
                // Not root or no nft: nothing to enforce for this VM, and nothing was installed.
                if case .refused = error {
                    logger.warning("host firewall rules not updated", metadata: ["vm.name": "\(definition.name)", "reason": "\(error)"])
                }
                return
            }
            throw EngineError.notAllowed(vm: definition.name, reason: "its network is 'internet only', which the Engine enforces with firewall rules for the VM's own QEMU user, and \(error); or give the VM network 'none' or 'full'")
        }
    }

    static func nftPath() -> String? {
        ["/usr/sbin/nft", "/sbin/nft"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Replaces Hearth's table so that exactly the users in `internetOnly` are held to public
    /// addresses, with DNS allowed to `resolvers`.
    static func apply(internetOnly uids: [UInt32], resolvers: [String]) throws(Failure) {
        guard getuid() == 0 else { throw .notRoot }
        guard let nft = nftPath() else { throw .nftMissing }
        let script = ruleset(internetOnly: uids, resolvers: resolvers)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: nft)
        process.arguments = ["-f", "-"]
        let input = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        do { try process.run() } catch { throw .refused("cannot run \(nft): \(error)") }
        input.fileHandleForWriting.write(Data(script.utf8))
        try? input.fileHandleForWriting.close()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw .refused(text.isEmpty ? "nft exited with status \(process.terminationStatus)" : text)
        }
    }

    /// The table, as one nft transaction: create it if missing, delete it, define it anew.
    static func ruleset(internetOnly uids: [UInt32], resolvers: [String]) -> String {
        let users = Set(uids).sorted().map(String.init).joined(separator: ", ")
        let valid = resolvers.filter(isAddress)
        let v4 = valid.filter { !$0.contains(":") }, v6 = valid.filter { $0.contains(":") }
        var rules: [String] = []
        let who = "meta skuid @internet_only"
        if !v4.isEmpty { rules.append("\(who) ip daddr { \(v4.joined(separator: ", ")) } meta l4proto { tcp, udp } th dport 53 accept") }
        if !v6.isEmpty { rules.append("\(who) ip6 daddr { \(v6.joined(separator: ", ")) } meta l4proto { tcp, udp } th dport 53 accept") }
        rules.append("\(who) oifname \"lo\" reject with icmpx admin-prohibited")
        rules.append("\(who) ip daddr { \(localIPv4.joined(separator: ", ")) } reject with icmpx admin-prohibited")
        rules.append("\(who) ip6 daddr { \(localIPv6.joined(separator: ", ")) } reject with icmpx admin-prohibited")
        var lines = [
            "table inet \(table) {}",
            "delete table inet \(table)",
            "table inet \(table) {",
            "    set internet_only {",
            "        typeof meta skuid",
        ]
        if !users.isEmpty { lines.append("        elements = { \(users) }") }
        lines += ["    }", "    chain output {", "        type filter hook output priority filter; policy accept;"]
        lines += rules.map { "        " + $0 }
        lines += ["    }", "}", ""]
        return lines.joined(separator: "\n")
    }

    /// The `nameserver` addresses of a resolv.conf, without IPv6 zone suffixes.
    static func resolvers(resolvConf: String) -> [String] {
        resolvConf.split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { return nil }
            let address = String(fields[1].split(separator: "%", maxSplits: 1)[0])
            return isAddress(address) ? address : nil
        }
    }

    static func systemResolvers() -> [String] {
        resolvers(resolvConf: (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? "")
    }

    /// Only literal addresses reach the ruleset.
    static func isAddress(_ text: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}
