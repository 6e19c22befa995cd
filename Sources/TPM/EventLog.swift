import Crypto
import Foundation
import TPMPolicy

extension EventLog {
    /// SHA-256 of a whole file.
    public static func sha256(ofFile path: String) throws(TPMError) -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .invalid("cannot read \(path) to measure it") }
        defer { try? handle.close() }
        var hasher = SHA256()
        do {
            while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty { hasher.update(data: piece) }
        } catch {
            throw .invalid("cannot read \(path) to measure it: \(error)")
        }
        return Array(hasher.finalize())
    }
}

extension TPM {
    /// Measures each file into `pcr` in order (extend with its SHA-256) and returns the log.
    public func measure(_ files: [(component: String, path: String)], into pcr: Int) throws(TPMError) -> EventLog {
        var log = EventLog(pcr: pcr, base: try self.pcr(pcr))
        try measure(files, appendingTo: &log)
        return log
    }

    /// Measures more files into the log's PCR, appending their events.
    public func measure(_ files: [(component: String, path: String)], appendingTo log: inout EventLog) throws(TPMError) {
        for file in files {
            let digest = try EventLog.sha256(ofFile: file.path)
            try extend(log.pcr, sha256: digest)
            log.events.append(.init(component: file.component, path: file.path, sha256: digest.map { String(format: "%02x", $0) }.joined()))
        }
    }
}
