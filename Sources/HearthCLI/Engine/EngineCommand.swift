import ArgumentParser

/// `hearth engine …`: the runtime on the PC.
struct EngineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Run the Engine: the VMs of this PC, controlled through a local socket.",
        subcommands: [EngineRunCommand.self, EngineAddImageCommand.self]
    )
}

/// Where the Engine keeps its files, shared by the engine and vm commands.
struct EngineRootOptions: ParsableArguments {
    @Option(help: "The Engine's folder: state, images, VM disks, sockets (keep it short: socket paths are limited to 107 bytes).")
    var root: String = "/var/lib/hearth"
}
