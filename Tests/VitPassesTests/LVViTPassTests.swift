import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR
import VitPasses

/// SEMANTICS-LVVIT.md §L9's deterministic test vectors on samples/lvvit-{s,m}.graph: shapes,
/// parameter counts, the methods' default locations and token counts, and §L8's fvcore MACs.
@Suite struct LVViTPassTests {
  static func sample(_ name: String) throws -> Graph {
    try GraphLoader.load(path: repositoryRoot.appendingPathComponent("samples/\(name)").path)
  }

  static func pruned(_ name: String, _ spec: String) throws -> Graph {
    let parsed = try sample(name)
    let schedule = try ScheduleParser.parse(spec, depth: parsed.blocks.count, backbone: parsed.backbone)
    return try Pipeline.run(parsed, through: .pruned, schedule: schedule)
  }

  /// §L9.1: [3,224,224] → conv1 [64,112,112] → conv2, conv3 [64,112,112] → proj [C,14,14] →
  /// 197 tokens; the graph is recognised as an LV-ViT.
  @Test func stemShapes() throws {
    let graph = try Self.sample("lvvit-s.graph")
    #expect(graph.backbone == .lvvit)
    #expect(try Self.sample("deit-s.graph").backbone == .deit)
    let convs = graph.ops.filter { $0.kind == .conv2d }.map { graph.type(of: $0.results[0]).fixedShape! }
    #expect(convs == [[64, 112, 112], [64, 112, 112], [64, 112, 112]])
    let patches = graph.ops.first { $0.kind == .patchEmbed }!
    #expect(graph.type(of: patches.results[0]).fixedShape == [196, 384])
    #expect(graph.blocks == Array(0..<16))
  }

  /// §L9.2: LV-ViT-S 26,151,824 and -M 55,830,544 parameters; with DynamicViT's three
  /// predictors 26,875,574 and 57,115,030 (BatchNorm's running statistics are not parameters).
  @Test(arguments: [("lvvit-s.graph", 26_151_824, 26_875_574), ("lvvit-m.graph", 55_830_544, 57_115_030)])
  func parameterCounts(file: String, dense: Int, dynamicViT: Int) throws {
    #expect(try Self.sample(file).parameterCount == dense)
    #expect(try Self.pruned(file, "dyvit:0.7").parameterCount == dynamicViT)
  }

  /// §L8: fvcore's counts, the DynamicViT column for S and M and EViT-LV-S with and without
  /// fusion.
  @Test(arguments: [
    ("lvvit-s.graph", "none", 6_568_784_256), ("lvvit-s.graph", "dyvit:0.9", 5_892_798_720),
    ("lvvit-s.graph", "dyvit:0.8", 5_221_091_520), ("lvvit-s.graph", "dyvit:0.7", 4_663_533_888),
    ("lvvit-s.graph", "dyvit:0.5", 3_801_392_448), ("lvvit-s.graph", "evit:0.7", 4_719_634_560),
    ("lvvit-s.graph", "evit:0.7,nofuse", 4_681_722_240), ("lvvit-s.graph", "evit:0.5", 3_886_053_504),
    ("lvvit-m.graph", "none", 12_703_539_712), ("lvvit-m.graph", "dyvit:0.9", 11_230_579_712),
    ("lvvit-m.graph", "dyvit:0.8", 9_803_800_832), ("lvvit-m.graph", "dyvit:0.7", 8_612_118_272),
  ])
  func fvcoreMACs(file: String, spec: String, macs: Int) throws {
    #expect(FlopCounter.report(try Self.pruned(file, spec), convention: .fvcore).totalMACs == macs)
  }

  /// §L8.2: LV-ViT's own counter (TokenLabeling's flops()), which the DynamicViT paper's LV-ViT
  /// column rounds (6.6, 5.8, 5.1, 4.6, 3.7; M 12.7, 11.0, 9.6, 8.5); nil for DeiT.
  @Test(arguments: [
    ("lvvit-s.graph", "none", 6_572_402_112), ("lvvit-s.graph", "dyvit:0.9", 5_772_982_848),
    ("lvvit-s.graph", "dyvit:0.8", 5_118_285_072), ("lvvit-s.graph", "dyvit:0.7", 4_575_977_760),
    ("lvvit-s.graph", "dyvit:0.5", 3_738_655_632), ("lvvit-m.graph", "none", 12_738_122_816),
    ("lvvit-m.graph", "dyvit:0.9", 11_038_755_776), ("lvvit-m.graph", "dyvit:0.8", 9_636_296_816),
    ("lvvit-m.graph", "dyvit:0.7", 8_467_030_496),
  ])
  func lvvitOwnCounter(file: String, spec: String, macs: Int) throws {
    #expect(FlopCounter.lvvitConvention(try Self.pruned(file, spec)) == macs)
  }

  @Test func lvvitOwnCounterIsOnlyForLVViT() throws {
    #expect(FlopCounter.lvvitConvention(try Self.sample("deit-s.graph")) == nil)
  }

  /// §L8.1 by operator for LV-ViT-S dense: conv 1,351,139,328 (the stem's four convolutions)
  /// and batch_norm 4,816,896.
  @Test func stemByOperator() throws {
    let graph = try Self.sample("lvvit-s.graph")
    func macs(_ kinds: Set<OpKind>) -> Int {
      graph.ops.filter { kinds.contains($0.kind) }.reduce(0) { $0 + FlopCounter.macs(of: $1, in: graph, convention: .fvcore) }
    }
    #expect(macs([.conv2d, .patchEmbed]) == 1_351_139_328)
    #expect(macs([.batchnorm]) == 4_816_896)
    #expect(macs([.auxHeadMax]) == 75_264_000)
  }

  /// The default locations follow the backbone (§L4–§L7), and the token counts follow the
  /// method: DynamicViT-LV-S/0.7 keeps 137, 96, 67 before blocks 4, 8, 12; EViT 0.7 with fusion
  /// 140, 100, 72 inside them; AS-ViT acts before 5, 9, 13 (M: 5, 10, 15 and 6, 11, 16).
  @Test(arguments: [
    ("lvvit-s.graph", "dyvit:0.7", [4, 8, 12], [138, 97, 68]),
    ("lvvit-s.graph", "dyvit:0.5", [4, 8, 12], [99, 50, 25]),
    ("lvvit-s.graph", "evit:0.7", [4, 8, 12], [140, 100, 72]),
    ("lvvit-s.graph", "evit:0.7,nofuse", [4, 8, 12], [139, 98, 69]),
    ("lvvit-s.graph", "bat:0.7", [4, 8, 12], [140, 100, 72]),
    ("lvvit-s.graph", "asvit", [5, 9, 13], [197, 197, 197]),
    ("lvvit-m.graph", "dyvit:0.7", [5, 10, 15], [138, 97, 68]),
    ("lvvit-m.graph", "evit:0.7", [5, 10, 15], [140, 100, 72]),
    ("lvvit-m.graph", "asvit", [6, 11, 16], [197, 197, 197]),
    ("deit-s.graph", "dyvit:0.7", [3, 6, 9], [138, 97, 68]),
  ])
  func locationsAndTokens(file: String, spec: String, blocks: [Int], tokens: [Int]) throws {
    let graph = try Self.pruned(file, spec)
    let stages = graph.ops.filter { $0.kind == .traceStage }
    #expect(stages.map { op -> Int in
      guard case .traceStage(let block) = op.attributes else { return -1 }
      return block
    } == blocks)
    // Rows of the sequence each stage records (AS-ViT's at their bound, decided at run time).
    #expect(stages.map { graph.type(of: $0.operands[0]).dims[0].bound } == tokens)
  }

  /// ToMe at r = 13 on LV-ViT-S: every block merges, and the cap min(r, (N−1)/2) binds in the
  /// last two, taking 197 tokens down to 5 (§L7).
  @Test func tomeRunsDownToFiveTokens() throws {
    let graph = try Self.pruned("lvvit-s.graph", "tome:13")
    let stages = graph.ops.filter { $0.kind == .traceStage }
    #expect(stages.count == 16)
    #expect(graph.type(of: stages.last!.operands[0]).dims[0].bound == 5)
  }
}
