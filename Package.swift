// swift-tools-version:6.1
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
        // The Center: HTTP server, TLS and its own CA, password hashing, storage over SQLKit.
        // swift-configuration support in Hummingbird is left off: the Center reads its own flags.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/vapor/sql-kit", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit", from: "2.17.0"),
    ],
    targets: [
        // Debian's zlib and zstd (zlib1g-dev, libzstd-dev), for compressed qcow2 clusters and
        // VMDK grains.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CTSS2", providers: [.apt(["libtss2-dev"])]),
        // TPM 2.0 over tpm2-tss: PCRs, sealing, counters, quotes; swtpm's launcher (docs/SECURITY.md).
        .target(name: "TPM", dependencies: ["CTSS2", "TPMPolicy", .product(name: "Crypto", package: "swift-crypto")]),
        // The TPM's policy arithmetic and event logs in plain Swift: what the Center needs to
        // sign a device's policy and check its log, without tpm2-tss.
        .target(name: "TPMPolicy", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "VirtualDisk", dependencies: ["CZlib", "CZstd"]),
        // Signed, content-addressed image versions and their delta pulls (docs/IMAGES.md).
        .target(
            name: "ImageSync",
            dependencies: [
                "VirtualDisk", "CZstd",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
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
        // The management server (docs/CENTER.md): API, store, CA, services.
        .target(
            name: "HearthCenter",
            dependencies: [
                "HearthCore", "ImageSync", "TPMPolicy",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .target(
            name: "HearthEngine",
            dependencies: [
                "HearthCore", "QMP", "VirtualDisk", "ImageSync", "TPM", "TPMPolicy",
                // The management zone: enrollment (a key and a certificate request), check-in
                // over mutual TLS, leases checked against the Center's Ed25519 key.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
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
                "HearthCenter",
                "TPM",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "hearth", dependencies: ["HearthCLI"]),
        // Benchmarks: programs that print Hearth's figure beside a peer's (docs/PERFORMANCE.md).
        .executableTarget(name: "disk-convert-bench", dependencies: ["VirtualDisk"], path: "Benchmarks/DiskConvert"),
        .executableTarget(
            name: "center-checkin-bench",
            dependencies: [
                "HearthCenter",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SQLKit", package: "sql-kit"),
            ],
            path: "Benchmarks/CenterCheckIn",
            exclude: ["run.sh"]
        ),
        .executableTarget(name: "engine-start-bench", dependencies: ["HearthEngine", "HearthCore", "GuestKit", "QMP", "VirtualDisk", "TPM", "TPMPolicy", "TestSupport",
                                                               .product(name: "Crypto", package: "swift-crypto")], path: "Benchmarks/EngineStart"),
        .testTarget(
            name: "QMPTests",
            dependencies: ["QMP", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            exclude: ["Golden"]
        ),
        .testTarget(name: "GuestKitTests", dependencies: ["GuestKit"]),
        .testTarget(name: "VirtualDiskTests", dependencies: ["VirtualDisk"]),
        // What several test targets share.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TPMTests", dependencies: ["TPM", "TPMPolicy", "TestSupport", .product(name: "Crypto", package: "swift-crypto")]),
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
        .testTarget(
            name: "HearthEngineTests",
            dependencies: ["HearthEngine", "HearthCore", "TPM", "TPMPolicy", "TestSupport", .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
        // Starts real Centers on loopback, over SQLite and over a PostgreSQL the tests start.
        .testTarget(
            name: "HearthCenterTests",
            dependencies: [
                "HearthCenter", "HearthCore", "ImageSync", "TPMPolicy", "TPM", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SQLKit", package: "sql-kit"),
            ]
        ),
        // Boots real VMs under QEMU; runs on its own with `swift test --filter IntegrationTests`.
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["QMP", "GuestKit", "HearthCLI", "VirtualDisk", "HearthEngine", "HearthCore", "HearthCenter", "ImageSync", "TPM", "TPMPolicy", "TestSupport",
                           .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "Logging", package: "swift-log"), .product(name: "NIOHTTP1", package: "swift-nio"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
    ]
)
