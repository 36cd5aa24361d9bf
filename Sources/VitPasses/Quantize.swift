import VitIR

/// Chooses the arithmetic of the model's linear layers (`--precision`): with int8 or bf16,
/// every linear-family op of a transformer block whose weight is a parameter gets
/// `precision=int8` (Int8Quantization: weights per output channel when compiling, activations
/// per token at run time) or `precision=bf16` (BFloat16: both operands rounded, float32 sums).
/// What stays float32, and why:
///
/// - the patch embedding and the head (no block): the stem is a small share of the MACs and
///   the logits are what the user reads;
/// - every op of token selection (`OpRole.pruningSelection`: DynamicViT's predictor MLP, the
///   scores of EViT, AS-ViT, BAT and ToMe): a kept-token decision should not move with a
///   rounding step;
/// - attention's products (q·kᵀ, softmax·v), LayerNorm, softmax and GELU themselves.
///
/// - a linear wider than `Int8Quantization.maxInputs` inputs, whose int32 sums could overflow.
///
/// f32 leaves the graph as it is.
public enum Quantize {
  public static func pass(_ precision: Precision) -> Pass {
    Pass(stage: .quantized) { graph throws(IRError) in try run(graph, precision: precision) }
  }

  /// Whether `op` is a linear this pass converts.
  public static func converts(_ op: Op, in graph: Graph) -> Bool {
    op.kind.isLinear && op.block != nil && op.role != .pruningSelection && graph[op.operands[1]].origin == .parameter
      && graph.type(of: op.operands[1]).dims.last!.bound <= Int8Quantization.maxInputs
  }

  static func run(_ graph: Graph, precision: Precision) throws(IRError) -> Graph {
    if precision == .f32 { return graph }
    // A weight is stored in one form: one that an f32 op also reads (a tied weight) keeps every
    // linear that reads it in f32.
    var sharedWithFloat = Set<ValueID>()
    for op in graph.ops where !converts(op, in: graph) { sharedWithFloat.formUnion(op.operands) }
    var rewriter = GraphRewriter(graph)
    for op in graph.ops {
      var op = op
      if converts(op, in: graph), !sharedWithFloat.contains(op.operands[1]) { op.attributes = .precision(precision) }
      try rewriter.copy(op)
    }
    return rewriter.finish()
  }
}
