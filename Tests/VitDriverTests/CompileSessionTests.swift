import Foundation
import TestSupport
import Testing
import VitDriver
import VitIR
import VitPasses

/// The compile session called as a library, as the vitc command calls it.
@Suite struct CompileSessionTests {
  /// tiny.graph on a 112×112 image (49 patches): tiny's structure at a quarter of its cost.
  static func smallTiny(in directory: URL) throws -> String {
    let text = try String(contentsOfFile: repositoryPath("samples/tiny.graph"), encoding: .utf8)
    let small = text.replacingOccurrences(of: "f32[3,224,224]", with: "f32[3,112,112]")
      .replacingOccurrences(of: "197", with: "50").replacingOccurrences(of: "196", with: "49")
    try #require(small != text)
    let path = directory.appendingPathComponent("tiny-112.graph").path
    try small.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  /// Calibration meets its MACs budget, and the MACs it reports are what an independent count
  /// (`flops` over the same images with the spec it printed) finds.
  @Test func calibrationMeetsTheBudget() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let session = try CompileSession(graph: try Self.smallTiny(in: scratch), weights: .random(seed: 1))
    var calibration = Calibration(base: "asvit", budget: 0.7)
    calibration.steps = 10
    var steps = 0
    let result = try calibration.run(session, images: .directory(repositoryPath("samples/images"))) { _ in steps += 1 }
    #expect(steps == 10)
    #expect(result.images == 3)
    // Token counts are integers, so the budget is met to the granularity of one token of three
    // images (about 0.3 % of the MACs here); 2 points leaves room for the bisection's last step.
    #expect(abs(result.macsFraction - 0.7) <= 0.02, "MACs \(result.macsFraction) of dense for a budget of 0.7")

    let images = ["astronaut", "chelsea", "coffee"].map { repositoryPath("samples/images/\($0).ppm") }
    let recount = try session.with(prune: result.spec).flops(images: images).fvcore.totalMACs
    let dense = try session.flops().fvcore.totalMACs
    #expect(abs(Double(recount) / Double(dense) - result.macsFraction) <= 1e-4, "\(recount) / \(dense) vs \(result.macsFraction)")
    // The thresholds keep the official 1 : 2 : 3 ratio.
    guard case .asvit(let thresholds) = try session.with(prune: result.spec).schedule.method else {
      Issue.record("not an AS-ViT spec: \(result.spec)")
      return
    }
    #expect(abs(thresholds[1] / thresholds[0] - 2) < 1e-3 && abs(thresholds[2] / thresholds[0] - 3) < 1e-3)
  }

  /// int8's share of DeiT-S's MACs with dyvit:0.7: qkv, proj, fc1 and fc2 are 384·(1152 + 384
  /// + 1536) + 1536·384 = 1,769,472 per token and block, over 197, 138, 97 and 68 tokens for
  /// three blocks each; f32 has none.
  @Test func int8ShareOfTheMACs() throws {
    var session = try CompileSession(graph: repositoryPath("samples/deit-s.graph"), weights: .none, prune: "dyvit:0.7")
    #expect(try session.reducedPrecisionMACs() == nil)
    session.precision = .int8
    let share = try #require(try session.reducedPrecisionMACs())
    #expect(share.reduced == 3 * (197 + 138 + 97 + 68) * 1_769_472)
    #expect(share.total > share.reduced)
  }

  /// The planned stage is a real stage: its dump places every value, integer ones included.
  @Test func plannedDumpPlacesEveryValue() throws {
    let text = try CompileSession(graph: repositoryPath("samples/tiny.graph"), weights: .none, prune: "dyvit:0.7").dump(stage: .planned)
    #expect(text.contains("int arena["))
    #expect(!text.contains("unplaced"))
    #expect(Stage.allCases.map(\.rawValue) == ["parsed", "fused-attention", "pruned", "fused-epilogues", "quantized", "planned"])
  }

  /// AS-ViT's thresholds are resolved when the session is made: from the spec, or the initial
  /// values without a weights file.
  @Test func asvitThresholdsAreResolvedUpFront() throws {
    let session = try CompileSession(graph: repositoryPath("samples/tiny.graph"), weights: .random(seed: 1), prune: "asvit")
    #expect(session.schedule.method == .asvit(thresholds: [0.001, 0.002, 0.003]))
  }
}

/// What `build` writes: never over an input or a directory, whole or not at all, and the
/// runtime compiled once per configuration.
@Suite struct BuildOutputTests {
  static func options(cache: String?) -> BuildOptions {
    var options = BuildOptions()
    options.cache = cache.map { ObjectCache(directory: $0) }
    return options
  }

  @Test func outputNeverReplacesAnInputOrADirectory() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let graph = scratch.appendingPathComponent("tiny.graph").path
    try FileManager.default.copyItem(atPath: repositoryPath("samples/tiny.graph"), toPath: graph)
    let original = try Data(contentsOf: URL(fileURLWithPath: graph))
    let session = try CompileSession(graph: graph, weights: .random(seed: 1))
    #expect(throws: DriverError.self) { try session.build(output: graph, options: Self.options(cache: nil)) }
    #expect(try Data(contentsOf: URL(fileURLWithPath: graph)) == original)
    // The same file by another name.
    #expect(throws: DriverError.self) { try session.build(output: scratch.path + "/./tiny.graph", options: Self.options(cache: nil)) }

    let directory = scratch.appendingPathComponent("keep")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    try Data("mine".utf8).write(to: directory.appendingPathComponent("file.txt"))
    do {
      _ = try session.build(output: directory.path, options: Self.options(cache: nil))
      Issue.record("build over a directory succeeded")
    } catch let error as DriverError {
      #expect("\(error)".contains("is a directory"), "\(error)")
    }
    #expect(try Data(contentsOf: directory.appendingPathComponent("file.txt")) == Data("mine".utf8))
  }

  /// The runtime's objects are compiled by the first build and reused by the next (another
  /// model); a build that fails leaves the previous binary whole.
  @Test func runtimeCompiledOnceAndFailedBuildKeepsTheOldBinary() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let cache = scratch.appendingPathComponent("cache").path
    let binary = scratch.appendingPathComponent("model")
    let tiny = repositoryPath("samples/tiny.graph")
    _ = try CompileSession(graph: tiny, weights: .random(seed: 1), prune: "evit:0.7").build(output: binary.path, options: Self.options(cache: cache))
    let first = try FileManager.default.contentsOfDirectory(atPath: cache).sorted()
    #expect(first.count >= 4, "\(first)")  // vit_threads, vit_math, vit_gemm, vit_attention, vit_prune
    let built = try Data(contentsOf: binary)

    _ = try CompileSession(graph: tiny, weights: .random(seed: 2), prune: "tome:8").build(output: binary.path, options: Self.options(cache: cache))
    #expect(try FileManager.default.contentsOfDirectory(atPath: cache).sorted() == first)
    let rebuilt = try Data(contentsOf: binary)
    #expect(rebuilt != built)

    var failing = Self.options(cache: cache)
    failing.compiler = "/bin/false"
    #expect(throws: BuildError.self) {
      try CompileSession(graph: tiny, weights: .random(seed: 3)).build(output: binary.path, options: failing)
    }
    #expect(try Data(contentsOf: binary) == rebuilt)
  }
}
