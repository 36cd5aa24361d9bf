import Foundation
import TestSupport
import Testing
import VitDriver
import VitFrontend
import VitIR
import VitInterpreter

/// timm's layouts beyond DeiT (tools/make_checkpoint_fixtures.py, Tests/Fixtures/checkpoints):
/// a distilled DeiT (class and distillation tokens), DeiT-III with LayerScale, a ViT without a
/// class token (average pooling, fc_norm). Each is read from its checkpoint alone (`vitc graph`
/// inside the session) and held to timm's logits, dense, by the interpreter and the binary; and
/// with every pruning method that applies, the binary's trace equal to the interpreter's, the
/// prefix tokens never touched. The methods that need a class token are refused by message.
@Suite struct TimmVariantTests {
  static let fixtures = "Tests/Fixtures/checkpoints/"

  /// The session of a variant's checkpoint (`format`: pth or safetensors) with its config.json.
  static func session(_ variant: String, format: String = "pth", prune: String = "none", checkpoint: String? = nil) throws -> CompileSession {
    let settings = try GraphInference.settings(config: repositoryPath(fixtures + variant + ".config.json"))
    return try CompileSession(
      graph: checkpoint ?? repositoryPath(fixtures + variant + "." + format), weights: .none, prune: prune, inference: settings)
  }

  static func input() throws -> Tensor {
    Tensor(shape: [3, 32, 32], scalars: try readF32(URL(fileURLWithPath: repositoryPath(fixtures + "input-32.f32"))))
  }

  static func timmLogits(_ variant: String) throws -> [Float] {
    try readF32(URL(fileURLWithPath: repositoryPath(fixtures + variant + ".logits.f32")))
  }

  /// max |a − b| ≤ 1e-4 · max(1, max |reference|).
  static func expectClose(_ values: [Float], _ reference: [Float], _ what: String) {
    #expect(values.count == reference.count, "\(what): \(values.count) logits, expected \(reference.count)")
    let scale = max(1, reference.map { abs($0) }.max() ?? 0)
    let worst = zip(values, reference).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst <= 1e-4 * scale, "\(what): max |Δ| \(worst), max |ref| \(scale)")
  }

  /// The dense interpreter matches timm from both checkpoint formats, and the graph says what
  /// it recognised.
  @Test(arguments: ["deit-distilled", "deit3-ls", "vit-avg"], ["pth", "safetensors"])
  func interpreterMatchesTimm(variant: String, format: String) throws {
    let model = try Self.session(variant, format: format).model()
    let logits = try Interpreter(graph: model.graph, weights: model.weights).run([try Self.input()])
    Self.expectClose(logits.scalars, try Self.timmLogits(variant), "\(variant).\(format)")
    let kinds = Set(model.graph.ops.map(\.kind))
    switch variant {
    case "deit-distilled":
      #expect(TokenLayout(of: model.graph) == TokenLayout(prefix: 2, patches: 16))
      #expect(model.graph.parameter(named: "head_dist.weight") != nil)
    case "deit3-ls":
      #expect(TokenLayout(of: model.graph) == TokenLayout(prefix: 1, patches: 16))
      // Both LayerScales of each of the 3 blocks folded with their linear and residual add.
      #expect(model.graph.ops.filter { $0.kind == .linearScaleAdd }.count == 6 && !kinds.contains(.channelScale))
    default:
      #expect(TokenLayout(of: model.graph) == TokenLayout(prefix: 0, patches: 16))
      #expect(kinds.contains(.meanTokens) && model.graph.parameter(named: "fc_norm.weight") != nil)
    }
  }

  /// What each fixture was trained for, as `vitc graph` says it.
  @Test func trainedForIsSaid() throws {
    for (variant, method) in [("deit-distilled", "dyvit:RHO"), ("deit3-ls", "asvit"), ("vit-avg", "dyvit:RHO")] {
      let file = try WeightsReader.open(path: repositoryPath(Self.fixtures + variant + ".pth"))
      let inferred = try GraphInference(file: file, settings: .init(), stem: "x")
      #expect(inferred.trainedFor?.hasPrefix(method + " (2 stages") == true, "\(variant): \(String(describing: inferred.trainedFor))")
    }
    let plain = try WeightsReader.open(path: repositoryPath("Tests/Fixtures/timm-tiny/weights.safetensors"))
    #expect(try GraphInference(file: plain, settings: .init(), stem: "x").trainedFor == nil)
  }

  /// (variant, spec): every method that applies to each layout, at blocks 1 and 2 of 3.
  static let pruned: [(String, String)] =
    ["dyvit:0.7@1,2", "evit:0.7@1,2", "evit:0.7,nofuse@1,2", "bat:0.7@1,2", "tome:2", "none"].map { ("deit-distilled", $0) }
    + ["dyvit:0.7@1,2", "evit:0.7@1,2", "evit:0.6,nofuse@1,2", "bat:0.7@1,2", "tome:3", "asvit@1,2", "none"].map { ("deit3-ls", $0) }
    + ["dyvit:0.7@1,2", "dyvit:0.5@0,2", "tome:2", "tome:8", "none"].map { ("vit-avg", $0) }

  /// The binary against the interpreter (and, dense, against timm): the same kept patches per
  /// stage, logits within tolerance; in the interpreter, every token-rewriting op leaves the
  /// prefix rows exactly as they were.
  @Test(arguments: pruned)
  func binaryMatchesInterpreter(variant: String, spec: String) throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    var checkpoint: String? = nil
    if variant == "deit3-ls" && spec.hasPrefix("dyvit") {
      // DeiT-III's fixture carries AS-ViT thresholds; DynamicViT's predictors (width 32) come
      // from the distilled fixture, merged into one file.
      let own = try WeightsReader.open(path: repositoryPath(Self.fixtures + "deit3-ls.safetensors"))
      let other = try WeightsReader.open(path: repositoryPath(Self.fixtures + "deit-distilled.safetensors"))
      let tensors = try own.names.filter { !$0.hasPrefix("score_predictor.") }.map { ($0, try own.tensor($0)) }
        + other.names.filter { $0.hasPrefix("score_predictor.") }.map { ($0, try other.tensor($0)) }
      checkpoint = scratch.appendingPathComponent("deit3-ls-dyvit.safetensors").path
      try Data(SafetensorsWriter.encode(tensors)).write(to: URL(fileURLWithPath: checkpoint!))
    }
    let session = try Self.session(variant, prune: spec, checkpoint: checkpoint)
    let model = try session.model()
    let prefix = TokenLayout(of: model.graph)!.prefix

    var values: [ValueID: Tensor] = [:]
    var stages: [Trace.Stage] = []
    let interpreter = try Interpreter(graph: model.graph, weights: model.weights)
    let logits = try interpreter.runTraced([try Self.input()], inspect: { id, tensor in values[id] = tensor }, stages: &stages)
    if spec == "none" {
      #expect(stages.isEmpty)
      Self.expectClose(logits.scalars, try Self.timmLogits(variant), "\(variant) interpreter")
    } else {
      #expect(!stages.isEmpty)
    }
    for op in model.graph.ops where [.gatherTokens, .gatherFuseTokens, .batMerge, .bipartiteMerge].contains(op.kind) {
      #expect(op.attributes.prefix == prefix)
      let (before, after) = (values[op.operands[0]]!, values[op.results[0]]!)
      let width = before.shape[1]
      #expect(Array(before.scalars[0..<(prefix * width)]) == Array(after.scalars[0..<(prefix * width)]), "\(op.kind) moved a prefix token")
    }
    for stage in stages {
      #expect(stage.patches.count == stage.tokens - prefix)
      #expect(Set(stage.patches.joined()).isSubset(of: Set(0..<16)))
    }

    let binary = scratch.appendingPathComponent("model")
    var options = BuildOptions()
    options.cache = ObjectCache(directory: testObjectCacheDirectory)
    _ = try session.build(output: binary.path, options: options)
    let inputFile = scratch.appendingPathComponent("input.f32")
    try writeF32(try Self.input().scalars, to: inputFile)
    let traceFile = scratch.appendingPathComponent("trace.json")
    let ran = try run(binary, ["--input", inputFile.path, "--trace", traceFile.path])
    try #require(ran.status == 0, "binary failed:\n\(ran.output)")
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: traceFile)) as! [String: Any]
    let compiled = (json["stages"] as! [[String: Any]]).map {
      Trace.Stage(block: $0["block"] as! Int, tokens: $0["tokens"] as! Int, patches: $0["patches"] as! [[Int]])
    }
    #expect(compiled == stages)
    let binaryLogits = (json["logits"] as! [Any]).map { Float(($0 as? Double) ?? .nan) }
    Self.expectClose(binaryLogits, logits.scalars, "\(variant) \(spec): binary against the interpreter")
    if spec == "none" { Self.expectClose(binaryLogits, try Self.timmLogits(variant), "\(variant) binary against timm") }
  }

  /// Methods that score with the class token's attention are refused on a model without one,
  /// at compile time, with one line saying why; AS-ViT also on two prefix tokens.
  @Test(arguments: [
    ("vit-avg", "evit:0.7@1,2", "EViT scores patches by the class token's attention, and this model has no class token (0 prefix tokens before its patches); dyvit and tome need none"),
    ("vit-avg", "evit:0.7,nofuse@0", "EViT scores patches by the class token's attention, and this model has no class token (0 prefix tokens before its patches); dyvit and tome need none"),
    ("vit-avg", "bat:0.7@1,2", "BAT scores patches by the class token's attention, and this model has no class token (0 prefix tokens before its patches); dyvit and tome need none"),
    ("vit-avg", "asvit@1,2", "AS-ViT scores patches by the class token's attention, and this model has no class token (0 prefix tokens before its patches); dyvit and tome need none"),
    ("deit-distilled", "asvit:0.01,0.02@1,2", "AS-ViT supports one prefix token (the class token) only, and this model has 2"),
  ])
  func classAttentionMethodsAreRefused(variant: String, spec: String, reason: String) throws {
    let path = repositoryPath(Self.fixtures + variant + ".pth")
    let line = path + " (inferred graph):8:25: error: --prune '\(spec)': \(reason)"
    do {
      _ = try Self.session(variant, prune: spec)
      Issue.record("\(spec) on \(variant) was not refused")
    } catch let error as IRError {
      // The location is the patch_embed of the inferred graph (line 10 with two prefix tokens).
      let expected = variant == "deit-distilled" ? line.replacingOccurrences(of: ":8:25:", with: ":10:25:") : line
      #expect("\(error)" == expected)
    }
  }

  /// The crash of issue 14: `vitc run` on a model without a class token with evit and tome.
  /// evit is one line and status 1 (no crash); tome runs and keeps all 16 patches covered.
  @Test func noClassTokenCommandLine() throws {
    let path = Self.fixtures + "vit-avg.pth"
    let config = Self.fixtures + "vit-avg.config.json"
    let refused = try vitc(["run", path, "--config", config, "--input", Self.fixtures + "input-32.f32", "--prune", "evit:0.7@1"])
    #expect(refused.status == 1)
    let lines = refused.stderr.split(separator: "\n").filter { !$0.contains(": note: ") }
    #expect(lines.count == 1 && lines[0].contains("error: --prune 'evit:0.7@1': EViT scores patches by the class token's attention"), "\(refused.stderr)")

    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let trace = scratch.appendingPathComponent("t.json").path
    let ran = try vitc(["run", path, "--config", config, "--input", Self.fixtures + "input-32.f32", "--prune", "tome:8", "--trace", trace])
    #expect(ran.status == 0, "\(ran.output)")
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as! [String: Any]
    let stages = json["stages"] as! [[String: Any]]
    #expect(stages.map { $0["tokens"] as! Int } == [8, 4, 2])  // r = min(8, n/2): 16 → 8 → 4 → 2
    for stage in stages {
      #expect((stage["patches"] as! [[Int]]).joined().sorted() == Array(0..<16))
    }
  }
}
