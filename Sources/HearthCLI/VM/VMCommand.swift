import ArgumentParser
import Foundation
import HearthEngine

/// `hearth vm …`: the user's view of the VMs, through the Engine's control socket.
struct VMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "List, start and stop this PC's VMs; restore points for the personal VM.",
        subcommands: [VMListCommand.self, VMActionCommand.Start.self, VMActionCommand.Stop.self, VMActionCommand.Restart.self, VMActionCommand.Reset.self, VMSnapshotCommand.self, VMRevertCommand.self, VMConsoleCommand.self]
    )
}

struct ControlOptions: ParsableArguments {
    @Option(help: "The Engine's control socket.")
    var control: String = ProcessInfo.processInfo.environment["HEARTH_CONTROL"] ?? "/var/lib/hearth/control.sock"

    /// Sends `request`; a refusal becomes the command's error.
    func send(_ request: ControlRequest) throws -> ControlResponse {
        let response = try ControlClient.send(request, to: control)
        guard response.ok else { throw ValidationError(response.error ?? "the Engine refused") }
        return response
    }
}

struct VMListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Show each VM, its state and image.")
    @OptionGroup var options: ControlOptions
    @Flag(help: "Print JSON instead of text.") var json = false

    func run() async throws {
        let vms = try options.send(ControlRequest(action: .list)).vms ?? []
        if json {
            try printJSON(vms)
            return
        }
        print("NAME          ROLE      STATE     IMAGE")
        for vm in vms {
            print("\(vm.name.padding(toLength: 13, withPad: " ", startingAt: 0)) \(vm.role.padding(toLength: 9, withPad: " ", startingAt: 0)) \(vm.phase.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(vm.bootedImage ?? vm.image)")
            if let failure = vm.lastFailure { print("              last failure: \(failure)") }
            if let rollback = vm.rollbackReason { print("              \(rollback)") }
            if let blocked = vm.blocked { print("              may not start: \(blocked)") }
        }
    }
}

enum VMActionCommand {
    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a VM and wait for it to boot.")
        @OptionGroup var options: ControlOptions
        @Argument var name: String
        func run() async throws {
            _ = try options.send(ControlRequest(action: .start, vm: name))
            print("\(name) is running")
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stop", abstract: "Shut a VM down (power button, then quit, then kill).")
        @OptionGroup var options: ControlOptions
        @Argument var name: String
        func run() async throws {
            _ = try options.send(ControlRequest(action: .stop, vm: name))
            print("\(name) is stopped")
        }
    }

    struct Restart: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "restart", abstract: "Stop and start a VM; its system disk starts fresh.")
        @OptionGroup var options: ControlOptions
        @Argument var name: String
        func run() async throws {
            _ = try options.send(ControlRequest(action: .restart, vm: name))
            print("\(name) restarted")
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reset", abstract: "Reset the personal VM to a fresh state (its files and restore points are deleted).")
        @OptionGroup var options: ControlOptions
        @Argument var name: String
        func run() async throws {
            _ = try options.send(ControlRequest(action: .reset, vm: name))
            print("\(name) will start fresh")
        }
    }
}

struct VMSnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot", abstract: "Take a restore point of the personal VM (stopped), or list them.")
    @OptionGroup var options: ControlOptions
    @Argument var name: String
    @Argument(help: "The restore point's name; leave out to list them.") var label: String?

    func run() async throws {
        guard let label else {
            let points = try options.send(ControlRequest(action: .snapshots, vm: name)).snapshots ?? []
            print(points.isEmpty ? "\(name) has no restore points" : points.joined(separator: "\n"))
            return
        }
        _ = try options.send(ControlRequest(action: .snapshot, vm: name, label: label))
        print("restore point '\(label)' of \(name) taken")
    }
}

struct VMRevertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revert", abstract: "Bring the personal VM (stopped) back to a restore point.")
    @OptionGroup var options: ControlOptions
    @Argument var name: String
    @Argument var label: String

    func run() async throws {
        _ = try options.send(ControlRequest(action: .revert, vm: name, label: label))
        print("\(name) is back at '\(label)'")
    }
}
