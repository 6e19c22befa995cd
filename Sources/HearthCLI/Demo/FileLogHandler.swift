import Foundation
import Logging

/// A log handler that appends one line per message to a file, for the main job, whose terminal
/// shows the narration and whose parts' logs go beside their files. (swift-log's own
/// `StreamLogHandler` writes only to standard output or standard error.)
struct FileLogHandler: LogHandler {
    /// One open file shared by every logger that writes to it.
    final class Sink: @unchecked Sendable {
        // @unchecked: writes are serialised by `lock`.
        private let lock = NSLock()
        private let handle: FileHandle
        let path: String

        init(path: String) throws {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw MainJobError.setUp("cannot create the log file \(path)")
            }
            self.path = path
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        }

        func write(_ line: String) {
            lock.withLock { handle.write(Data(line.utf8)) }
        }
    }

    let label: String
    let sink: Sink
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        sink.write("\(Date().ISO8601Format()) \(event.level) \(label): \(event.message)\(fields)\n")
    }

    static func logger(_ label: String, to sink: Sink) -> Logger {
        Logger(label: label) { label in FileLogHandler(label: label, sink: sink) }
    }
}
