import VitIR

/// Folds what follows a linear into its epilogue, so the C kernel applies it while the result
/// is still in registers:
///
///     y = gelu(linear(x, W, b))        ->  y = linear_gelu(x, W, b)
///     y = r + linear(x, W, b)          ->  y = linear_add(x, W, b, r)    (either operand order)
///     y = r + channel_scale(linear(x, W, b), g)  ->  y = linear_scale_add(x, W, b, g, r)  (LayerScale)
///
/// Only when the linear has a bias and no other use. (LayerNorm feeding a linear is left
/// alone: the row statistics would be computed once per output panel, which does not pay at
/// these widths.)
public enum FuseEpilogues {
  public static let pass = Pass(stage: .fusedEpilogues) { graph throws(IRError) in try run(graph) }

  static func run(_ graph: Graph) throws(IRError) -> Graph {
    let uses = graph.useCounts
    /// The index of the single-use, biased linear that defines `id`, if any.
    func fusableLinear(_ id: ValueID) -> Int? {
      guard uses[id] == 1, case .result(let index, _) = graph[id].origin,
        graph.ops[index].kind == .linear, graph.ops[index].operands.count == 3
      else { return nil }
      return index
    }
    /// The single-use LayerScale of a fusable linear that defines `id`: (its op, the linear).
    func scaledLinear(_ id: ValueID) -> (scale: Int, linear: Int)? {
      guard uses[id] == 1, case .result(let index, _) = graph[id].origin, graph.ops[index].kind == .channelScale,
        let linear = fusableLinear(graph.ops[index].operands[0])
      else { return nil }
      return (index, linear)
    }
    var absorbed = Set<Int>()  // linears (and LayerScales) folded into a later op
    var fused: [Int: (kind: OpKind, linear: Int, residual: ValueID?)] = [:]
    var gammas: [Int: ValueID] = [:]  // the LayerScale of a fused linear_scale_add
    for (index, op) in graph.ops.enumerated() {
      switch op.kind {
      case .gelu:
        if let linear = fusableLinear(op.operands[0]) {
          fused[index] = (.linearGelu, linear, nil)
          absorbed.insert(linear)
        }
      case .add:
        // Prefer the right operand (x + linear(...), the residual form of the samples).
        if let linear = fusableLinear(op.operands[1]) {
          fused[index] = (.linearAdd, linear, op.operands[0])
          absorbed.insert(linear)
        } else if let linear = fusableLinear(op.operands[0]) {
          fused[index] = (.linearAdd, linear, op.operands[1])
          absorbed.insert(linear)
        } else if let scaled = scaledLinear(op.operands[1]) ?? scaledLinear(op.operands[0]) {
          let (scale, linear) = scaled
          let residual = op.operands[1] == graph.ops[scale].results[0] ? op.operands[0] : op.operands[1]
          fused[index] = (.linearScaleAdd, linear, residual)
          gammas[index] = graph.ops[scale].operands[1]
          absorbed.formUnion([scale, linear])
        }
      default:
        break
      }
    }
    var rewriter = GraphRewriter(graph)
    for (index, op) in graph.ops.enumerated() {
      if absorbed.contains(index) { continue }
      if let (kind, linearIndex, residual) = fused[index] {
        let linear = graph.ops[linearIndex]
        // A fused op serves selection when both its parts did (DynamicViT's predictor MLP).
        try rewriter.append(
          kind, linear.operands + (gammas[index].map { [$0] } ?? []) + (residual.map { [$0] } ?? []), replacing: op.results[0],
          block: op.block, location: linear.location, role: linear.role == op.role ? op.role : nil)
      } else {
        try rewriter.copy(op)
      }
    }
    return rewriter.finish()
  }
}
