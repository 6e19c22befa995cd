import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Testing

/// Headless Chromium (Debian's `chromium`), driven through chromedriver's W3C WebDriver API on
/// loopback: real page loads, real form submissions, real cookies. Started by the test that
/// uses it and stopped with it.
final class Browser: @unchecked Sendable {
    static let chromium = "/usr/bin/chromium"
    static let chromedriver = "/usr/bin/chromedriver"
    static var available: Bool {
        FileManager.default.isExecutableFile(atPath: chromium) && FileManager.default.isExecutableFile(atPath: chromedriver)
    }

    private let driver: Process
    private let base: String
    private let client = HTTPClient(eventLoopGroupProvider: .singleton)
    private var session = ""
    private let profile: String

    init() async throws {
        let port = PostgresServer.freePort()
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-chromium-\(UUID().uuidString.prefix(8))").path
        driver = Process()
        // Through env --default-signal: the test process blocks SIGTERM, and chromedriver would
        // inherit that and outlive the test (as QEMU and swtpm did).
        driver.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        driver.arguments = ["--default-signal", Self.chromedriver, "--port=\(port)", "--allowed-ips=127.0.0.1"]
        driver.standardOutput = FileHandle.nullDevice
        driver.standardError = FileHandle.nullDevice
        try driver.run()
        base = "http://127.0.0.1:\(port)"
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? await call(.GET, "/status")) == nil {
            guard ContinuousClock.now < deadline, driver.isRunning else { throw HarnessError("chromedriver did not start on port \(port)") }
            try await Task.sleep(for: .milliseconds(100))
        }
        // The Center's CA is its own: the browser is told to accept it rather than given a trust
        // store. Root in a container needs --no-sandbox.
        let capabilities: [String: Any] = ["capabilities": ["alwaysMatch": [
            "browserName": "chrome", "acceptInsecureCerts": true,
            "goog:chromeOptions": ["binary": Self.chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--user-data-dir=\(profile)", "--no-first-run", "--disable-extensions",
            ]],
        ]]]
        let answer = try await call(.POST, "/session", capabilities)
        session = try #require((answer["value"] as? [String: Any])?["sessionId"] as? String, "no WebDriver session: \(answer)")
    }

    func quit() async {
        _ = try? await call(.DELETE, "/session/\(session)")
        driver.terminate()
        // Not waitUntilExit: it spins a run loop on a cooperative thread.
        for _ in 0..<50 where driver.isRunning { try? await Task.sleep(for: .milliseconds(100)) }
        try? await client.shutdown()
        try? FileManager.default.removeItem(atPath: profile)
    }

    func go(_ url: String) async throws { _ = try await command(.POST, "url", ["url": url]) }
    var title: String { get async throws { try await command(.GET, "title") as? String ?? "" } }
    var url: String { get async throws { try await command(.GET, "url") as? String ?? "" } }
    var source: String { get async throws { try await command(.GET, "source") as? String ?? "" } }

    /// The text of the page's main landmark.
    var mainText: String { get async throws { try await text("main") } }

    func element(_ css: String) async throws -> String {
        guard let value = try? await command(.POST, "element", ["using": "css selector", "value": css]) else {
            let main = (try? await text("main")) ?? ""
            throw HarnessError("no element \(css) on \(try await url) (\(try await title)): \(main.prefix(300))")
        }
        guard let element = (value as? [String: Any])?.values.first as? String else { throw HarnessError("no element \(css) on \(try await url)") }
        return element
    }

    func elements(_ css: String) async throws -> Int {
        (try await command(.POST, "elements", ["using": "css selector", "value": css]) as? [Any])?.count ?? 0
    }

    func type(_ css: String, _ text: String) async throws {
        let element = try await element(css)
        _ = try await command(.POST, "element/\(element)/clear", [:])
        _ = try await command(.POST, "element/\(element)/value", ["text": text])
    }

    /// Clicks a link or a submit button and waits until the next page has loaded (a page load
    /// clears the marker set on the old one).
    func click(_ css: String) async throws {
        let element = try await element(css)
        try await run("window.hearthOldPage = true")
        _ = try await command(.POST, "element/\(element)/click", [:])
        try await waitForNewPage()
    }

    func waitForNewPage() async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while try await run("return window.hearthOldPage !== true && document.readyState === 'complete'") as? Bool != true {
            guard ContinuousClock.now < deadline else { throw HarnessError("no new page loaded after a click on \(try await url)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func text(_ css: String) async throws -> String {
        try await command(.GET, "element/\(try await element(css))/text") as? String ?? ""
    }

    /// Chooses the option whose visible text is `label` in a select.
    func choose(_ css: String, _ label: String) async throws {
        let options = try await command(.POST, "element/\(try await element(css))/elements", ["using": "css selector", "value": "option"]) as? [[String: Any]] ?? []
        for option in options {
            guard let id = option.values.first as? String else { continue }
            if try await command(.GET, "element/\(id)/text") as? String == label {
                _ = try await command(.POST, "element/\(id)/click", [:])
                return
            }
        }
        throw HarnessError("no option '\(label)' in \(css)")
    }

    /// Runs JavaScript in the page (WebDriver's own channel, as a user's devtools would).
    @discardableResult
    func run(_ script: String, _ arguments: [Any] = []) async throws -> Any? {
        try await command(.POST, "execute/sync", ["script": script, "args": arguments])
    }

    func screenshot(to path: String) async throws {
        let base64 = try #require(try await command(.GET, "screenshot") as? String)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try #require(Data(base64Encoded: base64)).write(to: URL(fileURLWithPath: path))
    }

    private func command(_ method: HTTPMethod, _ path: String, _ body: [String: Any]? = nil) async throws -> Any? {
        let answer = try await call(method, "/session/\(session)/\(path)", body)
        if let error = answer["value"] as? [String: Any], let kind = error["error"] as? String {
            throw HarnessError("WebDriver \(path): \(kind): \(error["message"] as? String ?? "")")
        }
        return answer["value"] ?? nil
    }

    private func call(_ method: HTTPMethod, _ path: String, _ body: [String: Any]? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let body {
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let response = try await client.execute(request, timeout: .seconds(60))
        let data = Data(buffer: try await response.body.collect(upTo: 32 << 20))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }
}
