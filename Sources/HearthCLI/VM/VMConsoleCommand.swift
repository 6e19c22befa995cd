import ArgumentParser
import Foundation
import HearthEngine

struct VMConsoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Attach to a VM's serial console; Ctrl-] detaches.",
        discussion: "Reads and writes the console socket in the VM's run folder, which only the Engine's user can open."
    )

    @OptionGroup var engineRoot: EngineRootOptions
    @Argument var name: String

    func run() async throws {
        let path = EngineLayout(root: engineRoot.root).vm(name).consoleSocket
        let fd: Int32
        do {
            fd = try UnixSocket.connect(path)
        } catch {
            throw ValidationError("\(name) has no console at \(path) (is it running?): \(error)")
        }
        defer { close(fd) }
        print("attached to \(name)'s console; Ctrl-] detaches")
        var saved = termios()
        let isTerminal = isatty(STDIN_FILENO) == 1
        if isTerminal {
            tcgetattr(STDIN_FILENO, &saved)
            var raw = saved
            cfmakeraw(&raw)
            tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        }
        defer { if isTerminal { tcsetattr(STDIN_FILENO, TCSANOW, &saved) } }
        var fds = [pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0), pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 4096)
        loop: while poll(&fds, 2, -1) > 0 {
            if fds[1].revents != 0 {
                let count = read(fd, &buffer, buffer.count)
                if count <= 0 { break loop }
                _ = write(STDOUT_FILENO, buffer, count)
            }
            if fds[0].revents != 0 {
                let count = read(STDIN_FILENO, &buffer, buffer.count)
                if count <= 0 { break loop }
                if buffer[0..<count].contains(0x1D) { break loop } // Ctrl-]
                _ = write(fd, buffer, count)
            }
        }
        print("\r\ndetached from \(name)")
    }
}
