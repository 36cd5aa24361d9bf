import Foundation
import TestSupport
import Testing
import VitDriver
import VitEmitC
import VitFrontend
import VitIR
import VitInterpreter
import VitPasses

/// LV-ViT (SEMANTICS-LVVIT.md) compiled to C against the interpreter, as the DeiT golden tests
/// hold it: the tiny LV-ViT (Tests/Fixtures/lvvit/tiny.graph: 128×128, stem 16 channels, width
/// 64, 8 blocks) dense with both compilers and with OpenBLAS; the methods are in
/// PruningGoldenTests (`lvvitCases`). Tolerance |Δ| ≤ 1e-4 · max(1, max|ref|): the binary's
/// stem and blocks accumulate in float with FMA, the interpreter in double.
@Suite struct LVViTGoldenTests {
  static let tiny = repositoryPath("Tests/Fixtures/lvvit/tiny.graph")

  @Test(arguments: [("clang", "builtin"), ("gcc", "builtin"), ("gcc", "openblas")])
  func denseBinaryMatchesInterpreter(cc: String, blas: String) throws {
    if blas == "openblas" { try requireSystemPackages("libopenblas-dev") }
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let binary = scratch.appendingPathComponent("model")
    _ = try buildBinary(graph: Self.tiny, compiler: cc, gemm: GEMMBackend(rawValue: blas)!, output: binary)

    let graph = try GraphLoader.load(path: Self.tiny)
    let input = seededInput(3 * 128 * 128, seed: 11)
    let inputFile = scratch.appendingPathComponent("input.f32")
    try writeF32(input, to: inputFile)
    let logitsFile = scratch.appendingPathComponent("logits.f32")
    let ran = try run(binary, ["--input", inputFile.path, "--out", logitsFile.path])
    try #require(ran.status == 0, "binary failed:\n\(ran.output)")

    let reference = try Interpreter(graph: graph, weights: RandomWeights.generate(for: graph, seed: 1))
      .run([Tensor(shape: [3, 128, 128], scalars: input)]).scalars
    let compiled = try readF32(logitsFile)
    #expect(compiled.count == reference.count)
    let scale = max(1, reference.map { abs($0) }.max()!)
    let worst = zip(compiled, reference).map { abs($0 - $1) }.max()!
    #expect(worst <= 1e-4 * scale, "max |Δ| \(worst), max |ref| \(scale)")
  }

  /// The "done when": LV-ViT-S with DynamicViT at 0.7 and no @locations, on a real
  /// image, keeps 137, 96 and 67 patches before blocks 4, 8 and 12.
  @Test func lvvitSmallDynamicViTKeeps137_96_67() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let binary = scratch.appendingPathComponent("l")
    _ = try buildBinary(graph: repositoryPath("samples/lvvit-s.graph"), prune: "dyvit:0.7", output: binary)
    let trace = scratch.appendingPathComponent("t.json")
    let ran = try run(binary, ["--trace", trace.path, repositoryPath("samples/images/chelsea.ppm")])
    try #require(ran.status == 0, "binary failed:\n\(ran.output)")
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: trace)) as! [String: Any]
    let stages = json["stages"] as! [[String: Any]]
    #expect(stages.map { $0["block"] as! Int } == [4, 8, 12])
    #expect(stages.map { ($0["patches"] as! [[Int]]).count } == [137, 96, 67])
    #expect(stages.map { $0["tokens"] as! Int } == [138, 97, 68])
  }
}

extension EdgeTargetTests {
  /// The tiny LV-ViT cross-built for aarch64 (NEON GEMM under the stem's convolutions) and run
  /// under qemu, held to the host build: trace equal, logits within 1e-4·max(1, max|logit|).
  @Test(arguments: ["none", "dyvit:0.7", "evit:0.7"])
  func lvvitOnAarch64MatchesTheHost(spec: String) throws {
    try Self.requireCrossTools()
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let input = scratch.appendingPathComponent("input.f32")
    try writeF32(seededInput(3 * 128 * 128, seed: 5), to: input)
    let graph = "Tests/Fixtures/lvvit/tiny.graph"
    let host = try Self.buildAndRun(spec: spec, ["--target", "host"], in: scratch, name: "host", input: input, graph: graph)
    #expect(spec == "none" || !host.stages.isEmpty)
    let binary = try Self.build(spec: spec, ["--target", "aarch64", "--static"], in: scratch, name: "aarch64", graph: graph)
    let result = try Self.run(binary, emulator: "qemu-aarch64", input: input, trace: scratch.appendingPathComponent("aarch64.json"))
    Self.compare(result, to: host, what: "aarch64 (\(spec))")
  }
}

extension PruningGoldenTests {
  /// Every method on the tiny LV-ViT at its LV-ViT default locations (2, 4, 6 for its 8 blocks;
  /// AS-ViT 3, 5, 7 with the thresholds of Tests/Fixtures/lvvit/reference.json, and with
  /// thresholds no score passes: no patch token left, the aux head's term 0 in both backends).
  static let lvvitCases: [(model: String, spec: String, cc: String)] =
    ["dyvit:0.7", "evit:0.7", "evit:0.7,nofuse", "asvit:0.00529,0.0111,0.0133", "asvit:1.0,1.0,1.0", "bat:0.7", "tome:4"].map { ("lvvit-tiny", $0, "gcc") }
}
