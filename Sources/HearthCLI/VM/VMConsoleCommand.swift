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
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard fd >= 0, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw ValidationError("cannot use the console socket \(path)")
        }
        defer { close(fd) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            throw ValidationError("\(name) has no console at \(path) (is it running?): \(String(cString: strerror(errno)))")
        }
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
