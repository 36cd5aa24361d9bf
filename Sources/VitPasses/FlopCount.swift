import VitIR

/// The two ways the papers count multiply-adds (SEMANTICS.md §7). Both count one
/// multiply-add as one "FLOP".
public enum FlopConvention: String, Sendable, CaseIterable {
  /// fvcore `FlopCountAnalysis` (DeiT, DynamicViT): linear, matmul and conv MACs, LayerNorm 5
  /// per element; softmax, GELU, add and scaling are not counted.
  case fvcore
  /// torchprofile `profile_macs` (EViT, BAT): the same MACs, LayerNorm 1 per element, and 1
  /// per output element of an elementwise multiply (the attention scaling).
  case torchprofile
}

/// Multiply-adds and parameters of a graph, per block.
public struct FlopReport: Sendable {
  /// One row per stretch of ops: the stem (block nil), each block, the head (block nil).
  public struct Row: Sendable, Equatable {
    /// Display name: "stem", "block 3", "head".
    public var name: String
    public var block: Int?
    /// Tokens the stretch runs on at most (the first dim of its widest op input), 0 if none.
    public var tokens: Int
    /// Tokens its last linear or layernorm runs on (fewer than `tokens` where a method prunes
    /// inside the block, as EViT does before the MLP), 0 if none.
    public var tokensOut: Int = 0
    public var macs: Int
  }

  public var rows: [Row]
  public var convention: FlopConvention
  public var parameters: Int

  public var totalMACs: Int { rows.reduce(0) { $0 + $1.macs } }
}

/// Counts multiply-adds of a graph by the rules of one convention, with every dynamic
/// dimension at its bound (an upper bound; AS-ViT averages over images in the pruning issue).
public enum FlopCounter {
  /// MACs of one op.
  ///
  /// `counts` gives run-time token counts by symbol (AS-ViT's `n{s}` and `k{s}` of one image);
  /// a dynamic dimension without one is counted at its bound.
  public static func macs(of op: Op, in graph: Graph, convention: FlopConvention, counts: [TokenCount: Int] = [:]) -> Int {
    var bounds: [TokenCount: Int] = [:]
    for id in op.operands + op.results {
      for case .dynamic(let symbol, let bound) in graph.type(of: id).dims { bounds[symbol] = bound }
    }
    return polynomial(of: op, in: graph, convention: convention).evaluated { counts[$0] ?? bounds[$0]! }
  }

  /// MACs of one op as a polynomial in the graph's dynamic dimensions.
  public static func polynomial(of op: Op, in graph: Graph, convention: FlopConvention) -> MacPolynomial {
    func bounds(_ id: ValueID) -> [MacPolynomial] { graph.type(of: id).dims.map { MacPolynomial($0) } }
    func elements(_ id: ValueID) -> MacPolynomial { bounds(id).reduce(1, *) }
    switch op.kind {
    case .linear, .linearGelu, .linearAdd:
      // fvcore and torchprofile: prod(input shape) × out_features (epilogues are not counted).
      return elements(op.operands[0]) * bounds(op.operands[1])[0]
    case .linearScaleAdd:
      // The linear, and LayerScale's `mul` as channel_scale counts it.
      return elements(op.operands[0]) * bounds(op.operands[1])[0]
        + (convention == .torchprofile ? elements(op.results[0]) : 0)
    case .attention:
      // What its primitive ops count: q·kᵀ and attn·v, H·n·n·d each (= n²·C), plus the
      // scaling, H·n² (torchprofile only).
      let n = bounds(op.operands[0])[0]
      let width = bounds(op.results[0])[1]
      guard case .attention(let headCount, _) = op.attributes else { op.attributesMismatch() }
      let heads = MacPolynomial(headCount)
      return 2 * n * n * width + (convention == .torchprofile ? heads * n * n : 0)
    case .matmul:
      // prod(first operand) × last dim of the second.
      return elements(op.operands[0]) * bounds(op.operands[1]).last!
    case .patchEmbed:
      // conv: prod(weight shape) × prod(output spatial) (batch 1).
      return elements(op.operands[1]) * bounds(op.results[0])[0]
    case .layernorm:
      return (convention == .fvcore ? 5 : 1) * elements(op.operands[0])
    case .scale:
      return convention == .torchprofile ? elements(op.results[0]) : 0
    case .clsAttention:
      // EViT's head mean of the cls row (torchprofile counts `mean`, 1 per output element);
      // the attention itself is counted by its attention op.
      return convention == .torchprofile ? bounds(op.results[0])[0] : 0
    case .gatherFuseTokens:
      // EViT's fused token: the dropped rows weighted by their scores (torchprofile `mul`).
      let dropped = bounds(op.operands[2])[0] - bounds(op.operands[1])[0]
      return convention == .torchprofile ? dropped * bounds(op.operands[0])[1] : 0
    case .conv2d:
      // fvcore's conv handler: prod(weight shape) × output pixels (batch 1).
      let result = bounds(op.results[0])
      return elements(op.operands[1]) * result[1] * result[2]
    case .batchnorm:
      // fvcore: batch_norm in eval with affine, 2 per element (SEMANTICS-LVVIT §L8.1);
      // torchprofile: 1 per element, as it counts layer_norm.
      return (convention == .fvcore ? 2 : 1) * elements(op.operands[0])
    case .auxHeadMax:
      // The aux head's linear on the n − 1 patch tokens; the max is not counted.
      let x = bounds(op.operands[0])
      return (x[0] - 1) * x[1] * bounds(op.operands[1])[0]
    case .relu:
      return 0
    case .channelScale:
      // LayerScale's product (torchprofile `mul`, 1 per output element; fvcore skips it).
      return convention == .torchprofile ? elements(op.results[0]) : 0
    case .meanTokens:
      // Average pooling (torchprofile `mean`, 1 per output element; fvcore skips it).
      return convention == .torchprofile ? elements(op.results[0]) : 0
    case .reshape, .concat, .add, .gelu, .softmax, .splitHeads, .transpose, .mergeHeads, .row,
      .patchTokens, .dyvitMix, .keepScore, .asvitScores, .tomeMetric, .topkKeep, .thresholdKeep,
      .patchOwner, .unitSizes, .gatherTokens, .batMerge, .bipartiteMerge, .traceStage:
      // Selection and merging are not counted by either convention (SEMANTICS §7; ToMe's
      // matching and BAT's clustering are left out as the papers do).
      return 0
    }
  }

  /// The run-time counts of AS-ViT's symbols from a run's trace: stage s kept `tokens` rows,
  /// so n{s} = tokens and k{s} = tokens − 1 (stages in the order of the graph's trace_stage ops).
  public static func counts(of graph: Graph, stages: [Int]) -> [TokenCount: Int] {
    var counts: [TokenCount: Int] = [:]
    for (symbol, (stage, offset)) in traceSymbols(of: graph) where stage < stages.count {
      counts[symbol] = stages[stage] + offset
    }
    return counts
  }

  /// Where a run's trace gives each dynamic symbol: `symbol → (stage, offset)` means
  /// `symbol = tokens[stage] + offset` (n{s} is the stage's token count, k{s} one less).
  public static func traceSymbols(of graph: Graph) -> [TokenCount: (stage: Int, offset: Int)] {
    var symbols: [TokenCount: (stage: Int, offset: Int)] = [:]
    for (stage, op) in graph.ops.filter({ $0.kind == .traceStage }).enumerated() {
      if case .dynamic(let symbol, _) = graph.type(of: op.operands[0]).dims[0] {
        symbols[symbol] = (stage, 0)
        if let kept = symbol.withoutClassToken { symbols[kept] = (stage, -1) }
      }
    }
    return symbols
  }

  /// The whole graph's MACs as a polynomial in its dynamic dimensions.
  public static func polynomial(of graph: Graph, convention: FlopConvention) -> MacPolynomial {
    graph.ops.reduce(MacPolynomial(0)) { $0 + polynomial(of: $1, in: graph, convention: convention) }
  }

  public static func report(_ graph: Graph, convention: FlopConvention, counts: [TokenCount: Int] = [:]) -> FlopReport {
    var rows: [FlopReport.Row] = []
    var seenBlock = false
    for op in graph.ops {
      let name: String
      if let block = op.block {
        name = "block \(block)"
        seenBlock = true
      } else {
        name = seenBlock ? "head" : "stem"
      }
      if rows.last?.name != name {
        rows.append(FlopReport.Row(name: name, block: op.block, tokens: 0, macs: 0))
      }
      rows[rows.count - 1].macs += macs(of: op, in: graph, convention: convention, counts: counts)
      if [.linear, .linearGelu, .linearAdd, .linearScaleAdd, .layernorm].contains(op.kind),
        let first = graph.type(of: op.operands[0]).dims.first, graph.type(of: op.operands[0]).rank == 2
      {
        var tokens = first.bound
        if case .dynamic(let symbol, _) = first, let count = counts[symbol] { tokens = count }
        rows[rows.count - 1].tokens = max(rows[rows.count - 1].tokens, tokens)
        rows[rows.count - 1].tokensOut = tokens
      }
    }
    return FlopReport(rows: rows, convention: convention, parameters: graph.parameterCount)
  }
}
