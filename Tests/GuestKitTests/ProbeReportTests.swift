import Testing
@testable import GuestKit

@Suite struct ProbeReportTests {
    @Test func readsTheFramedReportFromACRLFConsole() {
        let console = "[    1.0] booting\r\nHEARTH-BOOT-MARKER release=x\r\nHEARTH-PROBE-BEGIN\r\nHEARTH-PROBE: hello world\r\nHEARTH-PROBE: \r\nHEARTH-PROBE: second\r\nHEARTH-PROBE-END status=0\r\n"
        #expect(ProbeReport.parse(console: console) == ProbeReport(status: 0, lines: ["hello world", "", "second"]))
    }

    @Test func kernelMessagesInsideTheReportAreSkipped() {
        let console = "HEARTH-PROBE-BEGIN\nHEARTH-PROBE: one\n[    3.2] EXT4-fs (vdb): mounted filesystem\nHEARTH-PROBE: two\nHEARTH-PROBE-END status=3\n"
        #expect(ProbeReport.parse(console: console) == ProbeReport(status: 3, lines: ["one", "two"]))
    }

    @Test func anUnfinishedReportIsNotAReport() {
        #expect(ProbeReport.parse(console: "HEARTH-PROBE-BEGIN\r\nHEARTH-PROBE: one\r\n") == nil)
        #expect(ProbeReport.parse(console: "") == nil)
        #expect(ProbeReport.parse(console: "HEARTH-PROBE-BEGIN\nHEARTH-PROBE-END status=garbage\n") == nil)
    }
}
