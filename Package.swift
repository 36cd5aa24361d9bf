// swift-tools-version: 6.0
// vitc: an ahead-of-time compiler for vision transformers with token pruning.
// Every dependency arrow points toward VitIR; VitInterpreter and VitEmitC never import each
// other. VitDriver composes them into a compile session; the vitc command only parses and prints.
import PackageDescription

/// The compiler's own modules are optimized in debug builds too: `swift test` runs the reference
/// interpreter on DeiT-S-shaped graphs and packs tens of megabytes of weights, which -Onone makes
/// ten times slower, while the tests gain nothing from unoptimized library code (they are
/// themselves still built for debugging). Release builds are -O anyway.
let optimizedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
  name: "vitc",
  platforms: [.macOS(.v13)],
  products: [
    .executable(name: "vitc", targets: ["vitc"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
  ],
  targets: [
    // The data model: types, ops, graphs, the verifier and the textual printer. No I/O.
    .target(name: "VitIR", swiftSettings: optimizedInDebug),
    // Everything that reads a user's files into VitIR: .graph text, safetensors, PPM images.
    .target(name: "VitFrontend", dependencies: ["VitIR"], swiftSettings: optimizedInDebug),
    // Rewrites and analyses over the IR: fusion, pruning, the memory plan, FLOP counting.
    .target(name: "VitPasses", dependencies: ["VitIR"], swiftSettings: optimizedInDebug),
    // The C backend: emits specialized C for a fused, planned graph. Never imports the
    // interpreter, so golden tests compare two independent implementations.
    .target(name: "VitEmitC", dependencies: ["VitIR", "VitPasses"], swiftSettings: optimizedInDebug),
    // The C runtime as resources (Runtime/include, src, main), copied next to emitted code.
    .target(
      name: "VitRuntimeFiles", path: "Runtime", exclude: ["tests", "README.md"],
      sources: ["RuntimeFiles.swift"],
      resources: [.copy("include"), .copy("src"), .copy("main")]),
    // The reference interpreter: plain loops that follow SEMANTICS.md §1.3.
    .target(name: "VitInterpreter", dependencies: ["VitIR"], swiftSettings: optimizedInDebug),
    // The compile session: loads a graph, its weights and a resolved schedule; runs the
    // pipeline to a stage; emits C; drives the C toolchain for a target; runs the interpreter
    // for run, eval, flops and calibrate. Tests call it directly.
    .target(
      name: "VitDriver",
      dependencies: ["VitIR", "VitFrontend", "VitPasses", "VitInterpreter", "VitEmitC", "VitRuntimeFiles"],
      swiftSettings: optimizedInDebug),
    // The thin command line: parses arguments, calls VitDriver, prints.
    .executableTarget(
      name: "vitc",
      dependencies: [
        "VitDriver", "VitIR", "VitPasses", "VitEmitC", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    // Helpers shared by the test targets: repository paths, running vitc and binaries.
    .target(name: "TestSupport", path: "Tests/TestSupport"),
    .testTarget(name: "VitIRTests", dependencies: ["VitIR"]),
    .testTarget(name: "VitFrontendTests", dependencies: ["VitIR", "VitFrontend", "TestSupport"]),
    .testTarget(
      name: "VitPassesTests",
      dependencies: ["VitIR", "VitFrontend", "VitPasses", "VitInterpreter", "TestSupport"]),
    .testTarget(
      name: "VitInterpreterTests",
      dependencies: ["VitIR", "VitFrontend", "VitInterpreter", "TestSupport"]),
    .testTarget(name: "VitDriverTests", dependencies: ["VitDriver", "VitIR", "VitPasses", "VitEmitC", "TestSupport"]),
    .testTarget(name: "VitcTests", dependencies: ["vitc", "VitDriver", "VitIR", "VitFrontend", "TestSupport"]),
    .testTarget(
      name: "VitEmitCTests",
      dependencies: ["VitIR", "VitFrontend", "VitPasses", "VitEmitC", "TestSupport"],
      exclude: ["Snapshots"]),
    // End to end: vitc build → C compiler → binary, held to the interpreter.
    .testTarget(
      name: "GoldenTests",
      dependencies: ["vitc", "VitDriver", "VitEmitC", "VitIR", "VitFrontend", "VitInterpreter", "VitPasses", "TestSupport"]),
  ]
)
