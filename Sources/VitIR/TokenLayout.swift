/// Where the patch tokens sit in a model's token sequence: timm's `num_prefix_tokens`, the
/// rows the stem puts before the patches (0: none, 1: the class token, 2: class and
/// distillation tokens). Every token-pruning op keeps rows 0 ..< prefix where they are and
/// counts, scores, drops and merges only the patch tokens after them; the class token, when
/// there is one, is row 0 (docs/graph-format.md, "Token layout").
///
/// It is not written in the graph: it is read off the stem's ops (`TokenLayout(of:)`), so a
/// dump, which keeps the stem, states it as well as the source did.
public struct TokenLayout: Hashable, Sendable {
  /// Rows before the patch tokens.
  public var prefix: Int
  /// Patch tokens the stem makes (the rows of `patch_embed`'s result).
  public var patches: Int

  public init(prefix: Int, patches: Int) {
    self.prefix = prefix
    self.patches = patches
  }

  /// Whether row 0 is a class token, whose attention EViT, AS-ViT and BAT score with.
  public var hasClassToken: Bool { prefix >= 1 }

  /// The layout of `graph`, followed from its one `patch_embed` through the stem: a `concat`
  /// whose second operand is the sequence puts the first operand's rows before it, an `add`
  /// (the position embedding) keeps it; other ops leave it as it is. Nil when the graph has no
  /// single `patch_embed` (no patch tokens, or two embeddings) or puts rows after the patches.
  public init?(of graph: Graph) {
    let embeds = graph.ops.filter { $0.kind == .patchEmbed }
    guard embeds.count == 1, let patchRows = graph.type(of: embeds[0].results[0]).dims.first?.fixedValue
    else { return nil }
    var prefixOf: [ValueID: Int] = [embeds[0].results[0]: 0]
    var sequence = embeds[0].results[0]
    for op in graph.ops where op.block == nil {
      switch op.kind {
      case .concat:
        if let inner = prefixOf[op.operands[1]], let rows = graph.type(of: op.operands[0]).dims.first?.fixedValue {
          prefixOf[op.results[0]] = rows + inner
          sequence = op.results[0]
        } else if prefixOf[op.operands[0]] != nil {
          return nil  // rows after the patch tokens
        }
      case .add:
        if let inner = prefixOf[op.operands[0]] ?? prefixOf[op.operands[1]] {
          prefixOf[op.results[0]] = inner
          sequence = op.results[0]
        }
      default:
        continue
      }
    }
    self.init(prefix: prefixOf[sequence]!, patches: patchRows)
  }
}
