// swift-tools-version:6.0
import PackageDescription

// Module boundaries follow docs/ARCHITECTURE.md: domain targets take plain values and never
// import the HTTP layer; only Storage writes SQL; only Fleet talks to engines.
let v5: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "llmaas",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "llmaas", targets: ["llmaas"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
    ],
    targets: [
        .target(name: "Clocks", swiftSettings: v5),
        .target(name: "OpenAIWire", swiftSettings: v5),
        .target(name: "Audio", swiftSettings: v5),
        .target(name: "Catalog", dependencies: [
            "OpenAIWire", .product(name: "Yams", package: "Yams"),
        ], swiftSettings: v5),
        .target(name: "Storage", dependencies: [
            .product(name: "SQLKit", package: "sql-kit"),
            .product(name: "SQLiteKit", package: "sqlite-kit"),
            .product(name: "PostgresKit", package: "postgres-kit"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: v5),
        .target(name: "Sealing", dependencies: [
            "Storage", .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: v5),
        .target(name: "Tenancy", dependencies: [
            "Storage", "Sealing", "OpenAIWire", .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: v5),
        .target(name: "Quotas", dependencies: ["Catalog"], swiftSettings: v5),
        .target(name: "Shield", dependencies: ["OpenAIWire"], resources: [.copy("Resources")], swiftSettings: v5),
        .target(name: "Metering", dependencies: ["Catalog"], swiftSettings: v5),
        .target(name: "Observability", dependencies: [
            "Storage", "Sealing", .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ], swiftSettings: v5),
        .target(name: "Fleet", dependencies: [
            "Clocks", "OpenAIWire", "Catalog",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: v5),
        .target(name: "EngineSim", dependencies: [
            "OpenAIWire", "Audio",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ], swiftSettings: v5),
        .target(name: "Gateway", dependencies: [
            "Clocks", "OpenAIWire", "Catalog", "Storage", "Tenancy", "Quotas", "Shield", "Metering",
            "Observability", "Fleet", "Sealing", "Audio",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Mustache", package: "swift-mustache"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], resources: [.copy("Resources/admin-openapi.yaml"), .copy("Resources/console")], swiftSettings: v5),
        .executableTarget(name: "llmaas", dependencies: [
            "Clocks", "Gateway", "EngineSim", "Catalog", "Storage", "Tenancy", "OpenAIWire", "Observability", "Shield", "Metering", "Quotas", "Sealing",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: v5),
        .executableTarget(name: "routing-bench", dependencies: [
            "Fleet", "EngineSim", "OpenAIWire", .product(name: "Logging", package: "swift-log"),
        ], path: "bench/routing-bench", swiftSettings: v5),
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: v5),
        .target(name: "StorageTesting", dependencies: ["Storage"], path: "Tests/StorageTesting", swiftSettings: v5),
        .testTarget(name: "OpenAIWireTests", dependencies: ["OpenAIWire", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "CatalogTests", dependencies: ["Catalog"], swiftSettings: v5),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "StorageTesting"], swiftSettings: v5),
        .testTarget(name: "TenancyTests", dependencies: ["Tenancy", "Storage", "Sealing", "TestSupport", "StorageTesting"], swiftSettings: v5),
        .testTarget(name: "ObservabilityTests", dependencies: ["Observability", "Storage", "Clocks", "Sealing", "StorageTesting"], swiftSettings: v5),
        .testTarget(name: "SealingTests", dependencies: ["Sealing", "Storage", "Clocks"], swiftSettings: v5),
        .testTarget(name: "AudioTests", dependencies: ["Audio"], swiftSettings: v5),
        .testTarget(name: "ShieldTests", dependencies: ["Shield"], swiftSettings: v5),
        .testTarget(name: "MeteringTests", dependencies: ["Metering", "Catalog", "OpenAIWire", "TestSupport"], swiftSettings: v5),
        .testTarget(name: "QuotasTests", dependencies: ["Quotas", "Catalog"], swiftSettings: v5),
        .executableTarget(name: "quota-bench", dependencies: ["Quotas", "Metering", "Catalog", "OpenAIWire"], path: "bench/quota-bench", swiftSettings: v5),
        .executableTarget(name: "shield-bench", dependencies: ["Shield"], path: "bench/shield-bench", swiftSettings: v5),
        .executableTarget(name: "storage-bench", dependencies: ["Storage"], path: "bench/storage-bench", swiftSettings: v5),
        .testTarget(name: "FleetTests", dependencies: [
            "Clocks", "Fleet", "EngineSim",
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ], swiftSettings: v5),
        .testTarget(name: "GatewayTests", dependencies: [
            "Clocks", "Gateway", "EngineSim", "Catalog", "Tenancy", "Storage", "Quotas", "Fleet", "OpenAIWire", "TestSupport", "StorageTesting",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: v5),
    ]
)
