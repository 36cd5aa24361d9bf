import Foundation
import TestSupport
import Testing
import VitDriver
import VitFrontend
import VitIR
import VitInterpreter
import VitPasses

/// timm's layouts beyond DeiT (tools/make_checkpoint_fixtures.py, Tests/Fixtures/checkpoints):
/// a distilled DeiT (class and distillation tokens), DeiT-III with LayerScale, a ViT without a
/// class token (average pooling, fc_norm). Each is read from its checkpoint alone (`vitc graph`
/// inside the session) and held to timm's logits, dense, by the interpreter and the binary; and
/// with every pruning method that applies, the binary's trace equal to the interpreter's, the
/// prefix tokens never touched. The methods that need a class token are refused by message.
/// Six more (section 7 of the script, safetensors only) cover what `vitc graph` reads off the
/// shapes or the config: no qkv bias, MLP ratio 3, a non-square image, patch 4 on 16×16, a
/// class token with average pooling, width 48 with 3 heads and eps 1e-5.
@Suite struct TimmVariantTests {
  static let fixtures = "Tests/Fixtures/checkpoints/"

  /// The variants of section 7: safetensors only, each with its input's shape.
  static let more: [String: [Int]] = [
    "vit-noqkvbias": [3, 32, 32], "vit-mlp3": [3, 32, 32], "vit-rect": [3, 32, 48], "vit-p4": [3, 16, 16],
    "vit-cls-avg": [3, 32, 32], "vit-w48h3": [3, 32, 32],
  ]

  /// The session of a variant's checkpoint (`format`: pth or safetensors; section 7's variants
  /// have safetensors only) with its config.json.
  static func session(_ variant: String, format: String = "pth", prune: String = "none", checkpoint: String? = nil) throws -> CompileSession {
    let settings = try GraphInference.settings(config: repositoryPath(fixtures + variant + ".config.json"))
    let format = more[variant] != nil ? "safetensors" : format
    return try CompileSession(
      graph: checkpoint ?? repositoryPath(fixtures + variant + "." + format), weights: .none, prune: prune, inference: settings)
  }

  /// The fixed input of a variant: input-32.f32, or input-16.f32 / input-32x48.f32 for the
  /// other image sizes.
  static func input(_ variant: String = "") throws -> Tensor {
    let shape = more[variant] ?? [3, 32, 32]
    let file = shape[1] == shape[2] ? "input-\(shape[1]).f32" : "input-\(shape[1])x\(shape[2]).f32"
    return Tensor(shape: shape, scalars: try readF32(URL(fileURLWithPath: repositoryPath(fixtures + file))))
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

  /// Section 7's variants: the inferred graph (from the safetensors file and config.json) is
  /// what timm built, and the dense interpreter matches timm.
  @Test(arguments: ["vit-noqkvbias", "vit-mlp3", "vit-rect", "vit-p4", "vit-cls-avg", "vit-w48h3"])
  func moreVariantsMatchTimm(variant: String) throws {
    let model = try Self.session(variant).model()
    let input = try Self.input(variant)
    #expect(model.graph.type(of: model.graph.inputs[0]).fixedShape == input.shape)
    let logits = try Interpreter(graph: model.graph, weights: model.weights).run([input])
    Self.expectClose(logits.scalars, try Self.timmLogits(variant), variant)
    let kinds = Set(model.graph.ops.map(\.kind))
    let layout = TokenLayout(of: model.graph)
    let qkvBias = model.graph.parameter(named: "blocks.0.attn.qkv.bias") != nil
    let hidden = model.graph.parameter(named: "blocks.0.mlp.fc1.bias").map { model.graph.type(of: $0).fixedShape! }
    let norms = try Self.session(variant).graph(at: .parsed).ops.compactMap { op -> Double? in
      if case .layernorm(let eps) = op.attributes { return eps }
      return nil
    }
    switch variant {
    case "vit-noqkvbias":
      #expect(!qkvBias && layout == TokenLayout(prefix: 1, patches: 16))
    case "vit-mlp3":
      #expect(qkvBias && hidden == [96])
    case "vit-rect":
      #expect(layout == TokenLayout(prefix: 1, patches: 24))  // a 4×6 grid
    case "vit-p4":
      #expect(layout == TokenLayout(prefix: 1, patches: 16))
    case "vit-cls-avg":
      #expect(layout == TokenLayout(prefix: 1, patches: 16))
      #expect(kinds.contains(.meanTokens) && model.graph.parameter(named: "fc_norm.weight") != nil)
    default:  // vit-w48h3: 3 heads of 16 and eps 1e-5, from config.json alone
      #expect(hidden == [48] && !norms.isEmpty && norms.allSatisfy { $0 == 1e-5 })
      let file = try WeightsReader.open(path: repositoryPath(Self.fixtures + variant + ".safetensors"))
      let settings = try GraphInference.settings(config: repositoryPath(Self.fixtures + variant + ".config.json"))
      let inferred = try GraphInference(file: file, settings: settings, stem: "x")
      #expect(inferred.assumptions.isEmpty && inferred.text.contains("split_heads(qkv, heads=3)"), "\(inferred.assumptions)")
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
    + [("vit-noqkvbias", "evit:0.7@1,2"), ("vit-noqkvbias", "none"), ("vit-mlp3", "bat:0.7@1,2"), ("vit-mlp3", "none"),
      ("vit-rect", "tome:3"), ("vit-rect", "none"), ("vit-p4", "evit:0.6,nofuse@1,2"), ("vit-p4", "none"),
      ("vit-cls-avg", "evit:0.7@1,2"), ("vit-cls-avg", "none"), ("vit-w48h3", "tome:2"), ("vit-w48h3", "none")]

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
    let logits = try interpreter.runTraced([try Self.input(variant)], inspect: { id, tensor in values[id] = tensor }, stages: &stages)
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
      #expect(Set(stage.patches.joined()).isSubset(of: Set(0..<TokenLayout(of: model.graph)!.patches)))
    }

    let binary = scratch.appendingPathComponent("model")
    var options = BuildOptions()
    options.cache = ObjectCache(directory: testObjectCacheDirectory)
    _ = try session.build(output: binary.path, options: options)
    let inputFile = scratch.appendingPathComponent("input.f32")
    try writeF32(try Self.input(variant).scalars, to: inputFile)
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
    if variant == "vit-rect" && spec == "none" {
      // timm's image transform crops a square: a non-square model takes --input only.
      let refused = try run(binary, [repositoryPath("samples/images/chelsea.ppm")])
      #expect(refused.status != 0 && refused.output.contains("error: this model's input is not a square image [3,S,S]"), "\(refused.output)")
    }
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
