import ArgumentParser

struct CenterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "center",
        abstract: "Run the Hearth Center, the management server.",
        subcommands: [CenterServeCommand.self, CenterOpenAPICommand.self]
    )
}
