import VitIR

extension FlopCounter {
  /// LV-ViT's own count (SEMANTICS-LVVIT §L8.2): TokenLabeling's `patch_embed.flops() +
  /// Σ blocks[i].flops(N_i)`, which the DynamicViT paper's LV-ViT column uses (6.57 G for
  /// LV-ViT-S, 4.58 G for DynamicViT-LV-S/0.7). The stem's convolutions as fvcore counts them
  /// (no BatchNorm); per block, with N tokens in the attention and N' in the MLP (hidden h):
  /// `N·(4C² + 2C·N + 10·H·N + 11C) + N'·(2C·h + 9h + 11C)`. Predictors and heads are left out.
  /// Dynamic counts at their bound. Nil for a graph that is not an LV-ViT.
  public static func lvvitConvention(_ graph: Graph) -> Int? {
    guard graph.backbone == .lvvit else { return nil }
    var total = 0
    for op in graph.ops where op.block == nil && (op.kind == .conv2d || op.kind == .patchEmbed) {
      total += macs(of: op, in: graph, convention: .fvcore)
    }
    for block in graph.blocks {
      let ops = graph.ops.filter { $0.block == block && $0.role != .pruningSelection }
      guard let attention = ops.first(where: { $0.kind == .attention }),
        case .attention(let heads, _) = attention.attributes
      else { continue }
      let n = graph.type(of: attention.operands[0]).dims[0].bound
      let c = graph.type(of: attention.results[0]).dims[1].bound
      total += n * (4 * c * c + 2 * c * n + 10 * heads * n + 11 * c)
      // The MLP's first linear, the one GELU follows (fused into it after FuseEpilogues).
      let geluInputs = Set(ops.filter { $0.kind == .gelu }.map { $0.operands[0] })
      if let fc1 = ops.first(where: { $0.kind == .linearGelu || ($0.kind == .linear && geluInputs.contains($0.results[0])) }) {
        let rows = graph.type(of: fc1.operands[0]).dims[0].bound
        let hidden = graph.type(of: fc1.results[0]).dims.last!.bound
        total += rows * (2 * c * hidden + 9 * hidden + 11 * c)
      }
    }
    return total
  }
}
