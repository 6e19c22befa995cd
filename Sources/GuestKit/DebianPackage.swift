import Foundation

/// A Debian binary package as apt knows it: a name and the version apt would fetch.
struct DebianPackage: Sendable, Equatable, Codable {
    var name: String
    var version: String

    /// Asks apt which version of `name` it would install, following a metapackage (such as
    /// `linux-image-cloud-amd64`) to the one package it depends on when `followMetapackage` is set.
    ///
    /// - Throws: ``GuestKitError/packageNotFound(package:)`` when apt's lists do not have it.
    static func resolve(_ name: String, followMetapackage: Bool = false) throws(GuestKitError) -> DebianPackage {
        let fields: [String: String]
        do {
            fields = parseFields(try HostTool.aptCache.run(["show", "--no-all-versions", name]))
        } catch GuestKitError.commandFailed {
            throw .packageNotFound(package: name)
        }
        guard let version = fields["Version"] else {
            throw .packageNotFound(package: name)
        }
        if followMetapackage, let depends = fields["Depends"] {
            // "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)": the first dependency is the kernel.
            let first = depends.split(separator: ",").first.map { String($0.split(separator: " ").first ?? "") } ?? ""
            if first.hasPrefix("linux-image-") {
                return try resolve(first)
            }
        }
        return DebianPackage(name: name, version: version)
    }

    /// The file name the kit caches this package under.
    var fileName: String {
        "\(name)_\(version.replacingOccurrences(of: ":", with: "%3a"))_amd64.deb"
    }

    /// Downloads the package into `directory` unless it is there already, and returns its path.
    /// The download lands in a temporary folder first so a cut never leaves a partial `.deb`
    /// under the final name.
    func download(into directory: String) throws(GuestKitError) -> String {
        let target = "\(directory)/\(fileName)"
        if FileManager.default.fileExists(atPath: target) {
            return target
        }
        let staging = "\(directory)/.download-\(UUID().uuidString)"
        do {
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        } catch {
            throw .fileSystem(path: staging, reason: error.localizedDescription)
        }
        defer { try? FileManager.default.removeItem(atPath: staging) }
        do {
            // As root, apt drops to the _apt user for downloads, which cannot write here.
            try HostTool.aptGet.run(["-o", "APT::Sandbox::User=root", "download", "\(name)=\(version)"], in: staging)
        } catch GuestKitError.commandFailed(_, _, let detail) {
            throw .downloadFailed(package: "\(name)=\(version)", detail: detail)
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: staging)) ?? []
        guard let deb = files.first(where: { $0.hasSuffix(".deb") }) else {
            throw .downloadFailed(package: "\(name)=\(version)", detail: "apt-get printed no error but wrote no .deb")
        }
        do {
            try FileManager.default.moveItem(atPath: "\(staging)/\(deb)", toPath: target)
        } catch {
            throw .fileSystem(path: target, reason: error.localizedDescription)
        }
        return target
    }

    /// Unpacks the package's files (not its maintainer scripts) under `directory`.
    static func extract(_ deb: String, into directory: String) throws(GuestKitError) {
        try HostTool.dpkgDeb.run(["-x", deb, directory])
    }

    /// Reads `Field: value` lines of an apt control stanza; continuation lines are ignored.
    static func parseFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix(" ") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            if fields[key] == nil {
                fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return fields
    }
}
