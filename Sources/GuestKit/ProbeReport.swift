/// What a probe script printed inside the guest, read back from the serial console.
public struct ProbeReport: Sendable, Equatable {
    /// The probe script's exit status.
    public var status: Int32
    /// Its output (stdout and stderr together), one element a line.
    public var lines: [String]

    public init(status: Int32, lines: [String]) {
        self.status = status
        self.lines = lines
    }

    /// The report in a console log, or `nil` while the probe has not finished. Kernel messages
    /// interleaved with the probe's lines are skipped: only lines with the probe prefix count.
    public static func parse(console: String) -> ProbeReport? {
        var lines: [String] = []
        var inside = false
        // The serial console ends lines with CRLF, which Swift reads as one Character.
        for line in console.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            if line.hasPrefix("HEARTH-PROBE-BEGIN") {
                inside = true
                lines = []
            } else if inside, line.hasPrefix("HEARTH-PROBE: ") {
                lines.append(String(line.dropFirst("HEARTH-PROBE: ".count)))
            } else if inside, line.hasPrefix("HEARTH-PROBE-END status="), let status = Int32(line.dropFirst("HEARTH-PROBE-END status=".count)) {
                return ProbeReport(status: status, lines: lines)
            }
        }
        return nil
    }
}
