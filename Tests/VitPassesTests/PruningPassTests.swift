import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR
import VitPasses

/// The schedule grammar, and what InsertPruning makes of each method on DeiT-S: token counts
/// (SEMANTICS §2.4, §3.4, §6.4), FLOPs (§7), and the shape of the rewritten IR.
@Suite struct PruningPassTests {
  static let deitS = Result { try GraphLoader.load(path: repositoryPath("samples/deit-s.graph")) }

  static func pruned(_ spec: String, _ graph: Graph? = nil) throws -> Graph {
    let parsed = try graph ?? deitS.get()
    let schedule = try ScheduleParser.parse(spec, depth: parsed.blocks.count)
    return try Pipeline.run(parsed, through: .pruned, schedule: schedule)
  }

  /// Tokens (cls included) after each trace stage, in order.
  static func stageTokens(_ graph: Graph) -> [Int] {
    graph.ops.filter { $0.kind == .traceStage }.map { graph.type(of: $0.operands[0]).dims[0].bound }
  }

  /// Tokens the attention of each block runs on.
  static func attentionTokens(_ graph: Graph) -> [Int] {
    graph.ops.filter { $0.kind == .attention }.map { graph.type(of: $0.operands[0]).dims[0].bound }
  }

  // MARK: - schedules

  @Test func specsParseToTheirMethods() throws {
    #expect(try ScheduleParser.parse("none", depth: 12) == .none.with(spec: "none"))
    #expect(try ScheduleParser.parse("dyvit:0.7", depth: 12).method == .dyvit(rho: 0.7))
    #expect(try ScheduleParser.parse("dyvit:0.7", depth: 12).locations == [3, 6, 9])
    #expect(try ScheduleParser.parse("evit:0.5,nofuse@2,5", depth: 12) == Schedule(method: .evit(rho: 0.5, fuse: false), locations: [2, 5], spec: "evit:0.5,nofuse@2,5"))
    #expect(try ScheduleParser.parse("asvit", depth: 12).method == .asvit(thresholds: [0.001, 0.002, 0.003]))
    #expect(try ScheduleParser.parse("asvit@1,2", depth: 12, learnedThresholds: { stages in [0.5, 0.25] + Array(repeating: 1, count: stages - 2) }).method == .asvit(thresholds: [0.5, 0.25]))
    #expect(try ScheduleParser.parse("asvit", depth: 12).locations == [4, 7, 10])
    #expect(try ScheduleParser.parse("asvit:0.01,0.02,0.03", depth: 12).method == .asvit(thresholds: [0.01, 0.02, 0.03]))
    #expect(try ScheduleParser.parse("bat:0.7,clusters=0.3", depth: 12).method == .bat(rho: 0.7, clusterFraction: 0.3))
    #expect(try ScheduleParser.parse("bat:0.7", depth: 12).method == .bat(rho: 0.7, clusterFraction: 0.2))
    #expect(try ScheduleParser.parse("tome:13", depth: 12).method == .tome(r: Array(repeating: 13, count: 12)))
    #expect(try ScheduleParser.parse("tome:4@1,3", depth: 12) == Schedule(method: .tome(r: [4, 4]), locations: [1, 3], spec: "tome:4@1,3"))
    let perBlock = try ScheduleParser.parse("tome:8,8,4", depth: 12)
    #expect(perBlock.method == .tome(r: [8, 8, 4]) && perBlock.locations == [0, 1, 2])
  }

  /// One clear message for each kind of bad schedule (the issue's list).
  @Test(arguments: [
    ("prune:0.7", "unknown method 'prune'"),
    ("dyvit:1.5", "keep ratio 1.5 is outside (0, 1]"),
    ("evit:0", "keep ratio 0.0 is outside (0, 1]"),
    ("dyvit:abc", "keep ratio 'abc' is not a number"),
    ("asvit:0.1,0.2", "2 thresholds for 3 locations"),
    ("dyvit:0.7@3,12", "location 12 is outside the model (blocks 0 … 11)"),
    ("dyvit:0.7@6,3", "locations must be strictly ascending"),
    ("dyvit:0.7,nofuse", "'nofuse' is not an argument of dyvit (it belongs to evit)"),
    ("evit:0.7,clusters=0.2", "'clusters=0.2' is not an argument of evit (it belongs to bat)"),
    ("dyvit", "missing the keep ratio (dyvit:RHO)"),
    ("tome:-1", "ToMe's r must be 0 or more, found -1"),
    ("bat:0.7,clusters=2", "cluster fraction 2.0 is outside (0, 1]"),
    ("evit:0.7,nofuse,nofuse", "'nofuse' is given twice"),
    ("none@3", "'none' prunes nowhere and takes no @locations"),
    ("tome:1,1,1,1,1,1,1,1,1,1,1,1,1", "13 per-block merge counts for a model of 12 blocks"),
    ("tome:8,8@1", "a per-block list of r gives every block its own r; it takes no @locations"),
  ])
  func badSpecsAreRejected(spec: String, message: String) {
    do {
      _ = try ScheduleParser.parse(spec, depth: 12)
      Issue.record("'\(spec)' was accepted")
    } catch {
      #expect(error.description.hasPrefix("--prune '\(spec)'"), "\(error)")
      #expect(error.description.contains("error: " + message), "\(error)")
    }
  }

  @Test func aScheduleThatKeepsNothingIsAnError() throws {
    #expect(throws: IRError.self) { try Self.pruned("dyvit:0.01") }
  }

  // MARK: - token counts, DeiT-S

  /// SEMANTICS §2.4: int(196·ρ^(s+1)) patches, plus cls.
  @Test(arguments: [(0.9, [177, 159, 143]), (0.8, [157, 126, 101]), (0.7, [138, 97, 68]), (0.5, [99, 50, 25])])
  func dynamicViTTokens(rho: Double, tokens: [Int]) throws {
    let graph = try Self.pruned("dyvit:\(rho)")
    #expect(Self.stageTokens(graph) == tokens)
    #expect(Self.attentionTokens(graph) == [197, 197, 197] + [Int](repeating: tokens[0], count: 3)
      + [Int](repeating: tokens[1], count: 3) + [Int](repeating: tokens[2], count: 3))
  }

  /// SEMANTICS §3.4: ceil(ρ·(N−1)) kept inside blocks 3, 6, 9, plus cls and the fused token.
  @Test(arguments: [
    (0.9, true, [179, 163, 148]), (0.9, false, [178, 161, 145]), (0.8, true, [159, 129, 105]),
    (0.8, false, [158, 127, 102]), (0.7, true, [140, 100, 72]), (0.7, false, [139, 98, 69]),
    (0.5, true, [100, 52, 28]), (0.5, false, [99, 50, 26]),
  ])
  func evitTokens(rho: Double, fuse: Bool, tokens: [Int]) throws {
    let graph = try Self.pruned("evit:\(rho)\(fuse ? "" : ",nofuse")")
    #expect(Self.stageTokens(graph) == tokens)
    // The attention of block 3 still sees all tokens; block 4 sees the reduced set.
    #expect(Self.attentionTokens(graph)[3] == 197 && Self.attentionTokens(graph)[4] == tokens[0])
  }

  /// SEMANTICS §6.4: r = 13 removes 13 tokens per block down to 41; r = 16 caps the last block.
  @Test func tomeTokens() throws {
    let r13 = try Self.pruned("tome:13")
    #expect(Self.attentionTokens(r13) == [197, 184, 171, 158, 145, 132, 119, 106, 93, 80, 67, 54])
    #expect(Self.stageTokens(r13).last == 41)
    let r16 = try Self.pruned("tome:16")
    #expect(Self.stageTokens(r16).last == 11)
    #expect(Self.attentionTokens(r16).last == 21)
    // Proportional attention: every attention after the first merge reads the sizes.
    #expect(r13.ops.filter { $0.kind == .attention }.map(\.operands.count) == [1] + [Int](repeating: 2, count: 11))
  }

  /// BAT, SEMANTICS §5.3: 1 + (K − n_p) + n_c tokens, with n_c = n_p + 1 (the EViT-with-fusion count
  /// unless the pair cap bites).
  @Test func batTokens() throws {
    let graph = try Self.pruned("bat:0.7")
    #expect(Self.stageTokens(graph) == [140, 100, 72])
    let merges = graph.ops.filter { $0.kind == .batMerge }
    // N = 197: K = 138, M = 58, n_c = ceil(11.6) = 12, n_p = 11.
    #expect(merges.first?.attributes == .batMerge(k: 138, clusters: 12, pairs: 11))
  }

  /// InsertPruning marks what it inserts, the predictor MLP included, and nothing of the model;
  /// later passes keep the mark, fusing the predictor's linear and GELU into a marked op.
  @Test(arguments: ["dyvit:0.7", "evit:0.7", "asvit:0.001,0.002,0.003", "bat:0.7", "tome:8"])
  func insertedOpsAreMarkedForSelection(spec: String) throws {
    let parsed = try Self.deitS.get()
    #expect(parsed.ops.allSatisfy { $0.role == nil })
    let graph = try Self.pruned(spec)
    let schedule = try ScheduleParser.parse(spec, depth: parsed.blocks.count)
    let unpruned = try Pipeline.run(parsed, through: .fusedAttention, schedule: schedule)
    let marked = graph.ops.filter { $0.role == .pruningSelection }
    #expect(marked.count == graph.ops.count - unpruned.ops.count)
    #expect(graph.ops.allSatisfy { !$0.kind.isTokenPruning || $0.role == .pruningSelection })
    #expect(!graph.ops.contains { $0.kind == .attention && $0.role != nil })
    let fused = try Pipeline.run(parsed, through: .fusedEpilogues, schedule: schedule)
    #expect(fused.ops.allSatisfy { !$0.kind.isTokenPruning || $0.role == .pruningSelection })
    if spec.hasPrefix("dyvit") {
      #expect(marked.contains { $0.kind == .linear } && marked.contains { $0.kind == .layernorm })
      #expect(fused.ops.contains { $0.kind == .linearGelu && $0.role == .pruningSelection })
      #expect(fused.ops.contains { $0.kind == .linearGelu && $0.role == nil })
    }
  }

  @Test func denseAndFullKeepLeaveTheGraphUnpruned() throws {
    #expect(Self.stageTokens(try Self.pruned("none")).isEmpty)
    // EViT at ρ = 1 keeps every token: no gather, only the recorded stages.
    let full = try Self.pruned("evit:1")
    #expect(Self.stageTokens(full) == [197, 197, 197])
    #expect(!full.ops.contains { $0.kind == .gatherFuseTokens || $0.kind == .topkKeep })
  }

  /// AS-ViT's count is known only at run time: a dynamic dimension bounded by the dense count,
  /// scored from the attention of the block before.
  @Test func asvitMakesTheTokenCountDynamic() throws {
    let graph = try Self.pruned("asvit:0.001,0.002,0.003")
    let stages = graph.ops.filter { $0.kind == .traceStage }
    #expect(stages.map(\.attributes) == [.traceStage(block: 4), .traceStage(block: 7), .traceStage(block: 10)])
    let afterFirst = graph.type(of: stages[0].operands[0])
    #expect(afterFirst.dims[0] == .dynamic(symbol: .tokens(stage: 0), bound: 197))
    #expect(graph.ops.filter { $0.kind == .asvitScores }.count == 3)
    #expect(graph.type(of: graph.output!) == TensorType(fixed: [1000]))
  }

  // MARK: - FLOPs (SEMANTICS §7)

  @Test(arguments: [
    ("dyvit:0.9", FlopConvention.fvcore, 4_049_813_760), ("dyvit:0.8", .fvcore, 3_470_856_384),
    ("dyvit:0.7", .fvcore, 2_987_611_968), ("dyvit:0.5", .fvcore, 2_234_041_152),
    ("evit:0.7", .torchprofile, 3_032_105_162), ("evit:0.7", .fvcore, 3_035_522_688),
    ("evit:0.9", .torchprofile, 4_025_801_396), ("evit:0.5,nofuse", .torchprofile, 2_284_472_521),
    ("evit:0.7,nofuse", .torchprofile, 2_999_739_005), ("tome:13", .fvcore, 2_708_263_296),
  ])
  func macsMatchThePapers(spec: String, convention: FlopConvention, macs: Int) throws {
    #expect(FlopCounter.report(try Self.pruned(spec), convention: convention).totalMACs == macs)
  }

  @Test func predictorsAreCountedAsParameters() throws {
    // SEMANTICS §2.2: 241,250 parameters per predictor, 22,774,414 in all.
    #expect(try Self.pruned("dyvit:0.7").parameterCount == 22_774_414)
  }

  // MARK: - the rewritten IR

  /// Random weights are drawn by each parameter's role, found from its use; every stage of the
  /// pipeline (fused attention, fused epilogues) must draw the same values, or the backends
  /// would run other models than the interpreter of the parsed graph.
  @Test func randomWeightsDoNotDependOnTheStage() throws {
    let tiny = try GraphLoader.load(path: repositoryPath("samples/tiny.graph"))
    let parsed = RandomWeights.generate(for: tiny, seed: 1)
    let schedule = try ScheduleParser.parse("dyvit:0.7", depth: 12)
    let final = RandomWeights.generate(for: try Pipeline.run(tiny, through: .planned, schedule: schedule), seed: 1)
    for (name, tensor) in parsed { #expect(final[name] == tensor, "\(name)") }
    #expect(final.count == parsed.count + 30)  // three predictors of ten tensors
  }

  /// DynamicViT's stage as ops: predictor, score, top-k, gather, trace, right before block 3's
  /// first op (IR in → IR out, as text).
  @Test func dynamicViTStageIsInsertedBeforeItsBlock() throws {
    let tiny = try GraphLoader.load(path: repositoryPath("samples/tiny.graph"))
    let graph = try Self.pruned("dyvit:0.7@3", tiny)
    let text = Printer.print(graph)
    let expected = """
      block 3 {
        owner: i32[196] = patch_owner(patches=196)
        dyvit0.patches: f32[196,64] = patch_tokens(x.7)
        dyvit0.ln: f32[196,64] = layernorm(dyvit0.patches, @score_predictor.0.in_conv.0.weight, @score_predictor.0.in_conv.0.bias, eps=1e-05)
        dyvit0.in: f32[196,64] = linear(dyvit0.ln, @score_predictor.0.in_conv.1.weight, @score_predictor.0.in_conv.1.bias)
        dyvit0.in.1: f32[196,64] = gelu(dyvit0.in)
        dyvit0.mix: f32[196,64] = dyvit_mix(dyvit0.in.1)
        dyvit0.out0: f32[196,32] = linear(dyvit0.mix, @score_predictor.0.out_conv.0.weight, @score_predictor.0.out_conv.0.bias)
        dyvit0.out0.1: f32[196,32] = gelu(dyvit0.out0)
        dyvit0.out2: f32[196,16] = linear(dyvit0.out0.1, @score_predictor.0.out_conv.2.weight, @score_predictor.0.out_conv.2.bias)
        dyvit0.out2.1: f32[196,16] = gelu(dyvit0.out2)
        dyvit0.logits: f32[196,2] = linear(dyvit0.out2.1, @score_predictor.0.out_conv.4.weight, @score_predictor.0.out_conv.4.bias)
        dyvit0.score: f32[196] = keep_score(dyvit0.logits)
        dyvit0.keep: i32[137] = topk_keep(dyvit0.score, k=137)
        x.8: f32[138,64], owner.1: i32[196] = gather_tokens(x.7, dyvit0.keep, owner)
        owner.2: i32[196] = trace_stage(x.8, owner.1, block=3)
        h.9: f32[138,64] = layernorm(x.8, @blocks.3.norm1.weight, @blocks.3.norm1.bias, eps=1e-06)
    """
    #expect(text.contains(expected), "\(text)")
  }

  /// The pruned IR prints as a .graph file that reads back to the same text.
  @Test(arguments: ["dyvit:0.7", "evit:0.7", "bat:0.7", "tome:8", "asvit:0.001,0.002,0.003"])
  func prunedIRRoundTrips(spec: String) throws {
    let tiny = try GraphLoader.load(path: repositoryPath("samples/tiny.graph"))
    let text = Printer.print(try Self.pruned(spec, tiny))
    let reread = try GraphLoader.parse(text, file: "pruned.graph")
    #expect(Printer.print(reread) == text)
  }
}

extension Schedule {
  fileprivate func with(spec: String) -> Schedule { Schedule(method: method, locations: locations, spec: spec) }
}
