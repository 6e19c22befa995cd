import ArgumentParser
import Foundation
import Logging

/// The `hearth` command: one subcommand type per file.
public struct Hearth: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "hearth",
        abstract: "Hearth: work and personal desktops as virtual machines, managed from a Center.",
        discussion: "Logs go to standard error at the level HEARTH_LOG_LEVEL names (trace … critical; default warning).",
        version: "0.1.0",
        subcommands: [DemoCommand.self, DiskCommand.self, ImageCommand.self, EngineCommand.self, VMCommand.self, CenterCommand.self, AdminCommand.self, GuestKitCommand.self]
    )

    public init() {}

    /// Sets up logging, then parses the command line and runs the command.
    public static func start() async {
        let level = ProcessInfo.processInfo.environment["HEARTH_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        await main(nil)
    }
}
