// swift-tools-version: 6.0
// vitc: an ahead-of-time compiler for vision transformers with token pruning.
// Every dependency arrow points toward VitIR; VitInterpreter and the (future) VitEmitC never
// import each other.
import PackageDescription

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
    .target(name: "VitIR"),
    // Everything that reads a user's files into VitIR: .graph text, safetensors, PPM images.
    .target(name: "VitFrontend", dependencies: ["VitIR"]),
    // Rewrites and analyses over the IR (FLOP counting today; fusion and pruning later).
    .target(name: "VitPasses", dependencies: ["VitIR"]),
    // The reference interpreter: plain loops that follow SEMANTICS.md §1.3.
    .target(name: "VitInterpreter", dependencies: ["VitIR"]),
    // The thin command line.
    .executableTarget(
      name: "vitc",
      dependencies: [
        "VitIR", "VitFrontend", "VitPasses", "VitInterpreter",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    .testTarget(name: "VitIRTests", dependencies: ["VitIR"]),
    .testTarget(name: "VitFrontendTests", dependencies: ["VitIR", "VitFrontend"]),
    .testTarget(
      name: "VitPassesTests", dependencies: ["VitIR", "VitFrontend", "VitPasses", "VitInterpreter"]),
    .testTarget(
      name: "VitInterpreterTests", dependencies: ["VitIR", "VitFrontend", "VitInterpreter"]),
    .testTarget(name: "VitcTests", dependencies: ["vitc", "VitIR", "VitFrontend"]),
  ]
)
