// swift-tools-version:6.0
import PackageDescription

// The module map lives in ../shared/DESIGN.md and docs/ARCHITECTURE.md. Leaf modules
// (QMP, GuestKit) import nothing of Hearth; executables hold `@main` and little else.
let package = Package(
    name: "Hearth",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hearth", targets: ["hearth"]),
        .library(name: "QMP", targets: ["QMP"]),
        .library(name: "GuestKit", targets: ["GuestKit"]),
        .library(name: "VirtualDisk", targets: ["VirtualDisk"]),
        .library(name: "ImageSync", targets: ["ImageSync"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"6.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // Debian's zlib and zstd (zlib1g-dev, libzstd-dev), for compressed qcow2 clusters and
        // VMDK grains.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", providers: [.apt(["libzstd-dev"])]),
        .target(name: "VirtualDisk", dependencies: ["CZlib", "CZstd"]),
        // Signed, content-addressed image versions and their delta pulls (docs/IMAGES.md).
        .target(
            name: "ImageSync",
            dependencies: [
                "VirtualDisk", "CZstd",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "QMP",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .target(
            name: "GuestKit",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "HearthCore"),
        .target(
            name: "HearthEngine",
            dependencies: [
                "HearthCore", "QMP", "VirtualDisk",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "HearthCLI",
            dependencies: [
                "QMP",
                "GuestKit",
                "VirtualDisk",
                "ImageSync",
                "HearthCore",
                "HearthEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "hearth", dependencies: ["HearthCLI"]),
        // Benchmarks: programs that print Hearth's figure beside a peer's (docs/PERFORMANCE.md).
        .executableTarget(name: "disk-convert-bench", dependencies: ["VirtualDisk"], path: "Benchmarks/DiskConvert"),
        .executableTarget(name: "engine-start-bench", dependencies: ["HearthEngine", "HearthCore", "GuestKit", "QMP", "VirtualDisk"], path: "Benchmarks/EngineStart"),
        .testTarget(
            name: "QMPTests",
            dependencies: ["QMP", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            exclude: ["Golden"]
        ),
        .testTarget(name: "GuestKitTests", dependencies: ["GuestKit"]),
        .testTarget(name: "VirtualDiskTests", dependencies: ["VirtualDisk"]),
        .testTarget(
            name: "ImageSyncTests",
            dependencies: [
                "ImageSync", "VirtualDisk",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "HearthEngineTests", dependencies: ["HearthEngine", "HearthCore"]),
        // Boots real VMs under QEMU; runs on its own with `swift test --filter IntegrationTests`.
        .testTarget(name: "IntegrationTests", dependencies: ["QMP", "GuestKit", "HearthCLI", "VirtualDisk", "HearthEngine", "HearthCore"]),
    ]
)
