import Foundation
import VitIR

/// Rewrites a DeiT-shaped graph (attention already fused) so that it prunes or merges tokens
/// as a schedule says, using only the pruning ops of `OpKind` (SEMANTICS.md §2–§6,
/// docs/methods.md). Token counts are decided here, at compile time, from the method's rule;
/// AS-ViT's are decided at run time by `threshold_keep`, so its sequence has a dynamic
/// length bounded by the dense one.
///
/// Where each method acts, for a block b of the schedule:
/// - before block b (DynamicViT, AS-ViT): on the residual stream entering the block;
/// - inside block b (EViT, BAT, ToMe): on the residual stream right after the attention
///   sub-layer's add, so the MLP runs on the reduced sequence.
/// Every stage ends in a `trace_stage`, which the backends report as docs/trace-format.md says.
public enum InsertPruning {
  /// The pass for `schedule` (fully resolved: AS-ViT's thresholds are in it).
  public static func pass(_ schedule: Schedule) -> Pass {
    Pass(stage: .pruned) { graph throws(IRError) in try run(graph, schedule) }
  }

  /// The tensor names DynamicViT's predictor of stage s reads (SEMANTICS §2.2), with their
  /// shapes for width C.
  public static func predictorParameters(stage s: Int, width c: Int) -> [(name: String, shape: [Int])] {
    let p = "score_predictor.\(s)."
    return [
      (p + "in_conv.0.weight", [c]), (p + "in_conv.0.bias", [c]),
      (p + "in_conv.1.weight", [c, c]), (p + "in_conv.1.bias", [c]),
      (p + "out_conv.0.weight", [c / 2, c]), (p + "out_conv.0.bias", [c / 2]),
      (p + "out_conv.2.weight", [c / 4, c / 2]), (p + "out_conv.2.bias", [c / 4]),
      (p + "out_conv.4.weight", [2, c / 4]), (p + "out_conv.4.bias", [2]),
    ]
  }

  /// The tensor holding AS-ViT's learned threshold of stage s.
  public static func thresholdParameter(stage s: Int) -> String { "score_predictor.\(s).keep_threshold" }

  /// What a block looks like, found in the source graph.
  struct BlockShape {
    /// The residual stream entering the block (the first op's first operand).
    var input: ValueID
    /// Index of the block's attention op in the source.
    var attention: Int
    /// The residual stream after the attention sub-layer (the add of the projection).
    var afterAttention: ValueID
  }

  static func blockShapes(_ graph: Graph) throws(IRError) -> [Int: BlockShape] {
    var shapes: [Int: BlockShape] = [:]
    var firstOp: [Int: Int] = [:]
    var attention: [Int: Int] = [:]
    for (index, op) in graph.ops.enumerated() {
      guard let block = op.block else { continue }
      if firstOp[block] == nil { firstOp[block] = index }
      if op.kind == .attention, attention[block] == nil { attention[block] = index }
    }
    for (block, first) in firstOp {
      guard let attentionIndex = attention[block] else { continue }
      let context = graph.ops[attentionIndex].results[0]
      // context -> linear (proj) -> [channel_scale (LayerScale) | scale (LV-ViT's 1/skip_lam)]
      // -> add (residual)
      guard
        let projection = graph.ops.firstIndex(where: { $0.kind == .linear && $0.operands.first == context })
      else { continue }
      var branch = graph.ops[projection].results[0]
      if let scaled = graph.ops.first(where: {
        ($0.kind == .channelScale && $0.operands.first == branch) || ($0.kind == .scale && $0.operands == [branch])
      }) {
        branch = scaled.results[0]
      }
      guard let residual = graph.ops.firstIndex(where: { $0.kind == .add && $0.operands.contains(branch) })
      else { continue }
      shapes[block] = BlockShape(
        input: graph.ops[first].operands[0], attention: attentionIndex,
        afterAttention: graph.ops[residual].results[0])
    }
    return shapes
  }

  /// The token layout `method` prunes in `graph`, or the reason it cannot: prefix tokens
  /// (class, distillation) are never scored, dropped, merged or moved, and a method that scores
  /// with the class token's attention needs one (EViT, AS-ViT, BAT); AS-ViT's run-time count
  /// supports exactly one. The session asks this before it resolves a schedule's thresholds,
  /// so the layout is what a refused spec hears about first.
  public static func tokenLayout(for method: MethodKind, spec: String, of graph: Graph) throws(IRError) -> TokenLayout {
    guard let patchOp = graph.ops.first(where: { $0.kind == .patchEmbed }) else {
      throw .scheduleMismatch("--prune '\(spec)': the graph has no patch_embed, so its patches are unknown")
    }
    guard let layout = TokenLayout(of: graph) else {
      throw .noTokenLayout(spec: spec, at: patchOp.location)
    }
    if method.needsClassToken, !layout.hasClassToken {
      throw .needsClassToken(method, spec: spec, at: patchOp.location)
    }
    if method == .asvit, layout.prefix != 1 {
      throw .unsupportedPrefix(method, spec: spec, prefix: layout.prefix, at: patchOp.location)
    }
    return layout
  }

  static func run(_ graph: Graph, _ schedule: Schedule) throws(IRError) -> Graph {
    if case .none = schedule.method { return graph }
    let shapes = try blockShapes(graph)
    for block in schedule.locations where shapes[block] == nil {
      throw .scheduleMismatch(
        "--prune '\(schedule.spec)' acts at block \(block), but the graph has no such block with a fused attention and its residual add")
    }
    if case .asvit = schedule.method {
      for block in schedule.locations where shapes[block - 1] == nil {
        throw .scheduleMismatch("--prune '\(schedule.spec)': AS-ViT scores block \(block) from the attention of block \(block - 1), which the graph does not have")
      }
    }
    let layout = try tokenLayout(for: schedule.kind, spec: schedule.spec, of: graph)
    var state = State(schedule: schedule, layout: layout, rewriter: GraphRewriter(graph))

    let before: Bool
    switch schedule.method {
    case .dyvit, .asvit: before = true
    default: before = false
    }
    let stageOf = Dictionary(uniqueKeysWithValues: schedule.locations.enumerated().map { ($1, $0) })
    var firstOpDone = Set<Int>()
    for op in graph.ops {
      if before, let block = op.block, !firstOpDone.contains(block) {
        firstOpDone.insert(block)
        if let stage = stageOf[block] {
          let x = state.rewriter.mapped(shapes[block]!.input)
          let pruned = try state.before(block: block, stage: stage, x: x, shapes: shapes, location: op.location)
          state.rewriter.remap(shapes[block]!.input, to: pruned)
        }
      }
      if op.kind == .attention, let size = state.size {
        // ToMe's proportional attention: log(size) on the keys once tokens have merged.
        let sized = try state.rewriter.emit(
          .attention, [state.rewriter.mapped(op.operands[0]), size], attributes: op.attributes,
          names: [graph[op.results[0]].name], block: op.block, location: op.location)[0]
        state.rewriter.remap(op.results[0], to: sized)
      } else {
        try state.rewriter.copy(op)
      }
      if !before, let block = op.block, let stage = stageOf[block], op.results.first == shapes[block]!.afterAttention {
        let x = state.rewriter.mapped(op.results[0])
        let attention = graph.ops[shapes[block]!.attention]
        guard case .attention(let heads, let scale) = attention.attributes else { attention.attributesMismatch() }
        let pruned = try state.inside(
          block: block, stage: stage, x: x, qkv: state.rewriter.mapped(attention.operands[0]),
          heads: heads, scale: scale, location: op.location)
        state.rewriter.remap(op.results[0], to: pruned)
      }
    }
    return state.rewriter.finish()
  }

  /// The rewriter and what the stages carry from one to the next.
  struct State {
    let schedule: Schedule
    let patches: Int
    /// Rows before the patch tokens, which no stage touches.
    let prefix: Int
    var rewriter: GraphRewriter
    /// The patch-owner map, once the first stage has made it.
    var owner: ValueID? = nil
    /// ToMe's token sizes, once the first block has merged.
    var size: ValueID? = nil

    init(schedule: Schedule, layout: TokenLayout, rewriter: GraphRewriter) {
      self.schedule = schedule
      self.patches = layout.patches
      self.prefix = layout.prefix
      self.rewriter = rewriter
    }

    /// `attributes` of an op that reads token rows, with this sequence's prefix count.
    func prefixed(_ attributes: OpAttributes) -> OpAttributes { attributes.withPrefix(prefix) }

    var graph: Graph { rewriter.result }

    func rows(_ x: ValueID) -> Dim { graph.type(of: x).dims[0] }
    func width(_ x: ValueID) -> Int { graph.type(of: x).dims[1].bound }

    mutating func op(
      _ kind: OpKind, _ operands: [ValueID], _ attributes: OpAttributes = .none, names: [String],
      block: Int, location: SourceLocation?
    ) throws(IRError) -> [ValueID] {
      try rewriter.emit(
        kind, operands, attributes: attributes, names: names, block: block, location: location,
        role: .pruningSelection)
    }

    mutating func ownerMap(block: Int, location: SourceLocation?) throws(IRError) -> ValueID {
      if let owner { return owner }
      let made = try op(.patchOwner, [], prefixed(.patchOwner(patches: patches)), names: ["owner"], block: block, location: location)[0]
      owner = made
      return made
    }

    mutating func record(_ x: ValueID, owner newOwner: ValueID, block: Int, location: SourceLocation?) throws(IRError) {
      owner = try op(.traceStage, [x, newOwner], prefixed(.traceStage(block: block)), names: ["owner"], block: block, location: location)[0]
    }

    /// DynamicViT and AS-ViT, before `block`.
    mutating func before(
      block: Int, stage: Int, x: ValueID, shapes: [Int: BlockShape], location: SourceLocation?
    ) throws(IRError) -> ValueID {
      let owner = try ownerMap(block: block, location: location)
      switch schedule.method {
      case .dyvit(let rho):
        let c = width(x)
        guard c % 4 == 0 else { throw .scheduleMismatch("DynamicViT's predictor needs a width divisible by 4, found \(c)") }
        let keepCount = Int(Double(patches) * pow(rho, Double(stage + 1)))
        let current = rows(x).bound - prefix
        guard keepCount >= 1 else {
          throw .scheduleMismatch("--prune '\(schedule.spec)': stage \(stage) keeps int(\(patches)·\(rho)^\(stage + 1)) = 0 patches")
        }
        guard keepCount <= current else {
          throw .scheduleMismatch("--prune '\(schedule.spec)': stage \(stage) would keep \(keepCount) of \(current) patch tokens")
        }
        var parameters: [String: ValueID] = [:]
        for (name, shape) in InsertPruning.predictorParameters(stage: stage, width: c) {
          parameters[name] = try rewriter.addParameter(name: name, type: TensorType(fixed: shape))
        }
        func p(_ suffix: String) -> ValueID { parameters["score_predictor.\(stage).\(suffix)"]! }
        let tag = "dyvit\(stage)"
        let tokens = try op(.patchTokens, [x], prefixed(.none), names: ["\(tag).patches"], block: block, location: location)[0]
        let normed = try op(
          .layernorm, [tokens, p("in_conv.0.weight"), p("in_conv.0.bias")], .layernorm(eps: 1e-5),
          names: ["\(tag).ln"], block: block, location: location)[0]
        var h = try op(.linear, [normed, p("in_conv.1.weight"), p("in_conv.1.bias")], names: ["\(tag).in"], block: block, location: location)[0]
        h = try op(.gelu, [h], names: ["\(tag).in"], block: block, location: location)[0]
        h = try op(.dyvitMix, [h], names: ["\(tag).mix"], block: block, location: location)[0]
        for layer in [0, 2] {
          h = try op(.linear, [h, p("out_conv.\(layer).weight"), p("out_conv.\(layer).bias")], names: ["\(tag).out\(layer)"], block: block, location: location)[0]
          h = try op(.gelu, [h], names: ["\(tag).out\(layer)"], block: block, location: location)[0]
        }
        let logits = try op(.linear, [h, p("out_conv.4.weight"), p("out_conv.4.bias")], names: ["\(tag).logits"], block: block, location: location)[0]
        let scores = try op(.keepScore, [logits], names: ["\(tag).score"], block: block, location: location)[0]
        let keep = try op(.topkKeep, [scores], .topkKeep(k: keepCount), names: ["\(tag).keep"], block: block, location: location)[0]
        let gathered = try op(.gatherTokens, [x, keep, owner], prefixed(.none), names: ["x", "owner"], block: block, location: location)
        try record(gathered[0], owner: gathered[1], block: block, location: location)
        return gathered[0]

      case .asvit(let thresholds):
        let source = rewriter.source
        let attention = source.ops[shapes[block - 1]!.attention]  // checked in run()
        let qkv = rewriter.mapped(attention.operands[0])
        let context = rewriter.mapped(attention.results[0])
        let tag = "asvit\(stage)"
        let scores = try op(
          .asvitScores, [qkv, context], prefixed(attention.attributes),
          names: ["\(tag).score"], block: block, location: location)[0]
        let keep = try op(
          .thresholdKeep, [scores], .thresholdKeep(threshold: thresholds[stage], stage: stage),
          names: ["\(tag).keep"], block: block, location: location)[0]
        let gathered = try op(.gatherTokens, [x, keep, owner], prefixed(.none), names: ["x", "owner"], block: block, location: location)
        try record(gathered[0], owner: gathered[1], block: block, location: location)
        return gathered[0]

      case .none, .evit, .bat, .tome:
        throw .scheduleMismatch("--prune '\(schedule.spec)': \(schedule.kind.rawValue) does not act before a block (a vitc bug)")
      }
    }

    /// EViT, BAT and ToMe, inside `block` after the attention residual.
    mutating func inside(
      block: Int, stage: Int, x: ValueID, qkv: ValueID, heads: Int, scale: Double, location: SourceLocation?
    ) throws(IRError) -> ValueID {
      let owner = try ownerMap(block: block, location: location)
      guard let n = rows(x).fixedValue else {
        throw .scheduleMismatch("--prune '\(schedule.spec)' cannot follow a run-time token count")
      }
      let tag = "\(schedule.kind.rawValue)\(stage)"
      var result = x
      var newOwner = owner
      switch schedule.method {
      case .evit(let rho, let fuse):
        let left = Int((rho * Double(n - prefix)).rounded(.up))
        if left < n - prefix {
          let scores = try op(
            .clsAttention, [qkv], prefixed(.attention(heads: heads, scale: scale)), names: ["\(tag).score"], block: block,
            location: location)[0]
          let keep = try op(.topkKeep, [scores], .topkKeep(k: left), names: ["\(tag).keep"], block: block, location: location)[0]
          let gathered =
            fuse
            ? try op(.gatherFuseTokens, [x, keep, scores, owner], prefixed(.none), names: ["x", "owner"], block: block, location: location)
            : try op(.gatherTokens, [x, keep, owner], prefixed(.none), names: ["x", "owner"], block: block, location: location)
          (result, newOwner) = (gathered[0], gathered[1])
        }
      case .bat(let rho, let fraction):
        let k = Int((rho * Double(n - prefix)).rounded(.up))
        let inattentive = n - prefix - k
        if inattentive > 0 {
          let clusters = min(Int((fraction * Double(inattentive)).rounded(.up)), inattentive)
          let pairs = min(max(clusters - 1, 0), k / 2)
          let scores = try op(
            .clsAttention, [qkv], prefixed(.attention(heads: heads, scale: scale)), names: ["\(tag).score"], block: block,
            location: location)[0]
          let merged = try op(
            .batMerge, [x, scores, owner], prefixed(.batMerge(k: k, clusters: clusters, pairs: pairs)),
            names: ["x", "owner"], block: block, location: location)
          (result, newOwner) = (merged[0], merged[1])
        }
      case .tome(let merges):
        let r = min(merges[stage], (n - prefix) / 2)
        if r > 0 {
          var size: ValueID
          if let existing = self.size {
            size = existing
          } else {
            size = try op(.unitSizes, [x], names: ["size"], block: block, location: location)[0]
          }
          let metric = try op(.tomeMetric, [qkv], .heads(heads), names: ["\(tag).metric"], block: block, location: location)[0]
          let merged = try op(
            .bipartiteMerge, [x, metric, size, owner], prefixed(.bipartiteMerge(r: r)), names: ["x", "size", "owner"], block: block,
            location: location)
          (result, newOwner) = (merged[0], merged[2])
          self.size = merged[1]
        }
      default:
        throw .scheduleMismatch("--prune '\(schedule.spec)' does not act inside blocks (a vitc bug)")
      }
      try record(result, owner: newOwner, block: block, location: location)
      return result
    }
  }
}
