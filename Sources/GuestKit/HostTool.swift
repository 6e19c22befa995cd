import Foundation

/// Runs the Debian tools the kit is built with (`apt-get`, `dpkg-deb`, `mke2fs`).
struct HostTool {
    /// A name looked up in the system's binary folders, or an absolute path.
    let name: String
    /// The package that provides it, for the error message when it is missing.
    let debianPackage: String

    static let aptCache = HostTool(name: "apt-cache", debianPackage: "apt")
    static let aptGet = HostTool(name: "apt-get", debianPackage: "apt")
    static let dpkgDeb = HostTool(name: "dpkg-deb", debianPackage: "dpkg")
    static let mke2fs = HostTool(name: "mke2fs", debianPackage: "e2fsprogs")

    /// Runs the tool and returns its standard output.
    ///
    /// - Throws: ``GuestKitError/toolMissing(tool:debianPackage:)`` when it is not installed,
    ///   ``GuestKitError/commandFailed(command:status:detail:)`` on a non-zero exit.
    @discardableResult
    func run(_ arguments: [String], in directory: String? = nil, environment: [String: String] = [:]) throws(GuestKitError) -> String {
        guard let path = locate() else {
            throw .toolMissing(tool: name, debianPackage: debianPackage)
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-tool-\(UUID().uuidString)")
        let outputURL = scratch.appendingPathExtension("out")
        let errorURL = scratch.appendingPathExtension("err")
        guard FileManager.default.createFile(atPath: outputURL.path, contents: nil),
              FileManager.default.createFile(atPath: errorURL.path, contents: nil)
        else {
            throw .fileSystem(path: scratch.path, reason: "cannot create a temporary file")
        }
        defer {
            try? FileManager.default.removeItem(at: outputURL)
            try? FileManager.default.removeItem(at: errorURL)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var env = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"]
        env.merge(environment) { _, new in new }
        process.environment = env
        if let directory {
            process.currentDirectoryURL = URL(fileURLWithPath: directory)
        }
        do {
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try FileHandle(forWritingTo: outputURL)
            process.standardError = try FileHandle(forWritingTo: errorURL)
            try process.run()
        } catch {
            throw .commandFailed(command: name, status: -1, detail: "\(error)")
        }
        process.waitUntilExit()
        let output = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
        guard process.terminationStatus == 0 else {
            let errorText = (try? String(contentsOf: errorURL, encoding: .utf8)) ?? ""
            let detail = errorText.split(separator: "\n").filter { !$0.hasPrefix("W: ") }.suffix(3).joined(separator: " | ")
            throw .commandFailed(command: ([name] + arguments).joined(separator: " "), status: process.terminationStatus, detail: detail.isEmpty ? "no message" : detail)
        }
        return output
    }

    private func locate() -> String? {
        if name.hasPrefix("/") {
            return FileManager.default.isExecutableFile(atPath: name) ? name : nil
        }
        for directory in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        return nil
    }
}
