import VitIR

/// Recognizes multi-head self-attention written as its primitive ops,
///
///     q, k, v = split_heads(qkv, heads=H)
///     a = softmax(matmul(q, transpose(k)) * s)
///     o = merge_heads(matmul(a, v))
///
/// and replaces it with `o = attention(qkv, heads=H, scale=s)`, whose kernels stream rows and
/// never hold the [H, n, n] scores. A pattern whose intermediates are used elsewhere (a pruning
/// method reading the attention map) is left as it is.
public enum FuseAttention {
  public static let pass = Pass(stage: .fusedAttention) { graph throws(IRError) in try run(graph) }

  /// A matched pattern: the ops it removes and the attention op's parameters.
  struct Match {
    var qkv: ValueID
    var heads: Int
    var scale: Double
    /// Indices in `graph.ops` of the seven ops, split_heads first, merge_heads last.
    var ops: [Int]
  }

  static func match(endingAt mergeIndex: Int, in graph: Graph, uses: [ValueID: Int]) -> Match? {
    func producer(_ id: ValueID, _ kind: OpKind) -> (Int, Op)? {
      guard uses[id] == 1, case .result(let index, _) = graph[id].origin, graph.ops[index].kind == kind else {
        return nil
      }
      return (index, graph.ops[index])
    }
    let merge = graph.ops[mergeIndex]
    guard merge.kind == .mergeHeads,
      let (contextIndex, context) = producer(merge.operands[0], .matmul),
      let (softmaxIndex, softmax) = producer(context.operands[0], .softmax),
      let (scaleIndex, scale) = producer(softmax.operands[0], .scale),
      let (logitsIndex, logits) = producer(scale.operands[0], .matmul),
      let (transposeIndex, transpose) = producer(logits.operands[1], .transpose),
      case .result(let splitIndex, let qPosition) = graph[logits.operands[0]].origin,
      case .result(splitIndex, let kPosition) = graph[transpose.operands[0]].origin,
      case .result(splitIndex, let vPosition) = graph[context.operands[1]].origin,
      graph.ops[splitIndex].kind == .splitHeads, graph.ops[splitIndex].results.count == 3,
      (qPosition, kPosition, vPosition) == (0, 1, 2)
    else { return nil }
    let split = graph.ops[splitIndex]
    guard split.results.allSatisfy({ uses[$0] == 1 }),
      case .heads(let heads) = split.attributes, case .scale(let factor) = scale.attributes
    else { return nil }
    return Match(
      qkv: split.operands[0], heads: heads, scale: factor,
      ops: [splitIndex, transposeIndex, logitsIndex, scaleIndex, softmaxIndex, contextIndex, mergeIndex])
  }

  static func run(_ graph: Graph) throws(IRError) -> Graph {
    let uses = graph.useCounts
    var matches: [Int: Match] = [:]  // by merge_heads index
    var removed = Set<Int>()
    for index in graph.ops.indices {
      if let found = match(endingAt: index, in: graph, uses: uses) {
        matches[index] = found
        removed.formUnion(found.ops)
      }
    }
    var rewriter = GraphRewriter(graph)
    for (index, op) in graph.ops.enumerated() {
      if let found = matches[index] {
        try rewriter.append(
          .attention, [found.qkv], attributes: .attention(heads: found.heads, scale: found.scale),
          replacing: op.results[0], block: op.block, location: graph.ops[found.ops[4]].location)
      } else if !removed.contains(index) {
        try rewriter.copy(op)
      }
    }
    return rewriter.finish()
  }
}
