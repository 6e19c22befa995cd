import Foundation
import Testing
@testable import VirtualDisk

/// Every image qemu-img makes reads byte-identical to `qemu-img convert -O raw` of it.
@Suite struct ReadOracleTests {
    struct Case: CustomStringConvertible, Sendable {
        var format: String
        var options: String
        var compress = false
        var description: String { "\(format) \(options)\(compress ? " compressed" : "")" }
    }

    static let qcow2Cases: [Case] = {
        var cases: [Case] = []
        for compat in ["0.10", "1.1"] {
            for cluster in ["512", "4096", "65536", "2M"] {
                cases.append(Case(format: "qcow2", options: "compat=\(compat),cluster_size=\(cluster)"))
            }
        }
        cases += [
            Case(format: "qcow2", options: "compat=1.1,cluster_size=65536", compress: true),
            Case(format: "qcow2", options: "compat=0.10,cluster_size=4096", compress: true),
            Case(format: "qcow2", options: "compat=1.1,cluster_size=65536,compression_type=zstd", compress: true),
            Case(format: "qcow2", options: "compat=1.1,cluster_size=512,compression_type=zstd", compress: true),
            Case(format: "qcow2", options: "compat=1.1,cluster_size=2M,compression_type=zstd", compress: true),
            Case(format: "qcow2", options: "compat=1.1,cluster_size=65536,extended_l2=on"),
            Case(format: "qcow2", options: "compat=1.1,cluster_size=2M,extended_l2=on"),
            Case(format: "qcow2", options: "compat=1.1,cluster_size=16384,extended_l2=on"),
            Case(format: "qcow2", options: "compat=1.1,preallocation=metadata"),
            Case(format: "qcow2", options: "compat=1.1,preallocation=falloc"),
            Case(format: "qcow2", options: "compat=1.1,preallocation=full"),
            Case(format: "qcow2", options: "compat=1.1,refcount_bits=1,lazy_refcounts=on"),
            Case(format: "qcow2", options: "compat=1.1,refcount_bits=64"),
        ]
        return cases
    }()

    static let otherCases: [Case] = [
        Case(format: "vpc", options: "subformat=fixed"),
        Case(format: "vpc", options: "subformat=dynamic"),
        Case(format: "vpc", options: "subformat=dynamic,force_size=on"),
        Case(format: "vpc", options: "subformat=fixed,force_size=on"),
        Case(format: "vmdk", options: "subformat=monolithicSparse"),
        Case(format: "vmdk", options: "subformat=monolithicSparse,zeroed_grain=on"),
        Case(format: "vmdk", options: "subformat=streamOptimized"),
        Case(format: "vmdk", options: "subformat=monolithicFlat"),
        Case(format: "vmdk", options: "subformat=twoGbMaxExtentSparse"),
        Case(format: "vmdk", options: "subformat=twoGbMaxExtentFlat"),
        Case(format: "raw", options: "preallocation=off"),
    ]

    @Test(arguments: qcow2Cases + otherCases)
    func readsWhatQemuImgReads(_ testCase: Case) throws {
        let scratch = try Scratch()
        let source = try scratch.patternDisk()
        let image = scratch.file("image.\(testCase.format)")
        var arguments = ["convert", "-f", "raw", "-O", testCase.format, "-o", testCase.options]
        if testCase.compress { arguments.append("-c") }
        try Oracle.run("qemu-img", arguments + [source, image])

        let opened = try DiskOpener.open(image, format: DiskFormat(qemuName: testCase.format), policy: .sameDirectory(as: image))
        #expect(opened.virtualSize == (try Oracle.virtualSize(image, format: testCase.format)))
        let expected = try Oracle.rawBytes(image, format: testCase.format, scratch: scratch.path)
        let actual = try opened.readAll()
        #expect(actual.count == expected.count)
        #expect(actual == expected, "first difference at byte \(zip(actual, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
    }
}

