import Foundation
@testable import HearthEngine
import Testing

@Suite struct NetworkFilterTests {
    @Test func onlyLiteralResolverAddressesReachTheRuleset() {
        let conf = """
        # written by the DHCP client
        nameserver 192.168.1.1
        nameserver fe80::1%eth0
        nameserver 10.0.0.1; flush ruleset
        nameserver resolver.example
        search example.org
        options edns0
        """
        #expect(NetworkFilter.resolvers(resolvConf: conf) == ["192.168.1.1", "fe80::1"])
        let rules = NetworkFilter.ruleset(internetOnly: [1002, 1001, 1002], resolvers: ["192.168.1.1", "fe80::1", "1.2.3.4 }; flush ruleset"])
        #expect(!rules.contains("flush"), "a resolver that is not an address must not reach nft")
        #expect(rules.contains("elements = { 1001, 1002 }"))
        #expect(rules.contains("ip daddr { 192.168.1.1 } meta l4proto { tcp, udp } th dport 53 accept"))
        #expect(rules.contains("ip6 daddr { fe80::1 } meta l4proto { tcp, udp } th dport 53 accept"))
        // DNS is allowed before the local ranges are refused.
        let dns = try! #require(rules.range(of: "dport 53 accept")), refuse = try! #require(rules.range(of: "10.0.0.0/8"))
        #expect(dns.lowerBound < refuse.lowerBound)
    }

    /// nft's check mode parses and validates the ruleset against the kernel without applying it.
    @Test(.enabled(if: getuid() == 0 && NetworkFilter.nftPath() != nil))
    func nftablesAcceptsTheRulesetWithAndWithoutUsers() throws {
        for (uids, resolvers) in [([UInt32](), [String]()), ([4242], ["127.0.0.53", "::1"])] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try #require(NetworkFilter.nftPath()))
            process.arguments = ["--check", "-f", "-"]
            let input = Pipe(), errors = Pipe()
            process.standardInput = input
            process.standardError = errors
            try process.run()
            input.fileHandleForWriting.write(Data(NetworkFilter.ruleset(internetOnly: uids, resolvers: resolvers).utf8))
            try input.fileHandleForWriting.close()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "nft refused: \(message)")
        }
    }
}
