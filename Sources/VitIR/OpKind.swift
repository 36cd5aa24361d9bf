/// The kinds of operation in the IR. The raw value is the spelling in `.graph` files and in
/// every dump, so the printer and the parser cannot disagree about names.
///
/// Shapes below use n for the token count (static or dynamic), C for the width, H for heads and
/// d = C/H. Every op that reduces or normalizes does so over the last axis.
public enum OpKind: String, Sendable, CaseIterable {
  /// Conv2d with kernel = stride = `patch` over a CHW image, flattened row-major over the patch
  /// grid: `(image f32[3,Hi,Wi], weight f32[C,3,p,p], bias f32[C]) -> f32[(Hi/p)*(Wi/p), C]`.
  case patchEmbed = "patch_embed"
  /// Reinterprets a static tensor with another static shape of the same element count
  /// (`shape=[1,384]`), e.g. timm's `cls_token` [1,1,C] as a row [1,C].
  case reshape = "reshape"
  /// Stacks rows: `(a f32[n1,C], b f32[n2,C]) -> f32[n1+n2,C]` (static counts only).
  case concat = "concat"
  /// Elementwise sum of two values of the same type.
  case add = "add"
  /// Multiplies every element by the constant `factor` (written `x * 0.125` in source).
  case scale = "scale"
  /// LayerNorm over the last axis with biased variance:
  /// `(x f32[..., C], weight f32[C], bias f32[C]; eps) -> f32[..., C]`.
  case layernorm = "layernorm"
  /// `y = x · Wᵀ + b` with W stored [out, in] as nn.Linear does; the bias is optional:
  /// `(x f32[..., in], weight f32[out,in], bias f32[out]?) -> f32[..., out]`.
  case linear = "linear"
  /// Exact GELU, `0.5·x·(1 + erf(x/√2))`, elementwise.
  case gelu = "gelu"
  /// Softmax over the last axis, computed as `exp(x − rowmax) / Σ`.
  case softmax = "softmax"
  /// Splits a fused projection `f32[n, P·C]` into P values `f32[H, n, d]` (P = the number of
  /// results, 3 for q, k, v); element j of head h of part s is column `s·C + h·d + j`.
  case splitHeads = "split_heads"
  /// Swaps the last two axes: `f32[..., a, b] -> f32[..., b, a]`.
  case transpose = "transpose"
  /// Batched matrix product over leading axes: `(f32[..., a, k], f32[..., k, b]) -> f32[..., a, b]`.
  case matmul = "matmul"
  /// Inverse of a single split: `f32[H, n, d] -> f32[n, H·d]`, column `h·d + j`.
  case mergeHeads = "merge_heads"
  /// Takes one row (`index`) of a matrix: `f32[n, C] -> f32[C]` (the head reads the cls token).
  case row = "row"

  // Fused forms, produced by VitPasses (never needed in hand-written graphs, but accepted).

  /// Multi-head self-attention from a fused projection, `softmax(q·kᵀ·scale)·v` per head with
  /// heads merged: `(qkv f32[n, 3C], size f32[n]?) -> f32[n, C]` (q, k, v split as
  /// `split_heads` does). With `size` (ToMe's proportional attention) the logits of key j get
  /// `+ log(size[j])` before the softmax. Kernels stream rows and never materialize the
  /// [H, n, n] scores.
  case attention = "attention"
  /// `gelu(x · Wᵀ + b)`: a linear with the GELU in its epilogue.
  case linearGelu = "linear_gelu"
  /// `residual + (x · Wᵀ + b)`: a linear with the residual add in its epilogue.
  case linearAdd = "linear_add"

  // Token pruning (VitPasses/InsertPruning.swift, docs/methods.md). Rows of a token sequence
  // are tokens, row 0 the cls token; "patch tokens" are rows 1 … n−1, and score j belongs to
  // row 1 + j. That is one prefix token; with p others (`OpAttributes.prefixed`, TokenLayout)
  // read p for the 1 in each rule below (`readsTokenRows` lists the kinds it applies to). An `owner` value i32[P] says, for each original patch p (row-major over the
  // patch grid), which row of the current sequence stands for it, or −1 once it is dropped:
  // it is how every backend reports which patches survived.

  /// The patch tokens without the cls token, rows 1 … n−1: `f32[n, C] -> f32[n−1, C]` (a view).
  case patchTokens = "patch_tokens"
  /// DynamicViT's predictor mix: `f32[m, C] -> f32[m, C]`, columns < C/2 as they are, columns
  /// ≥ C/2 replaced by their mean over the m rows (the "global" feature).
  case dyvitMix = "dyvit_mix"
  /// DynamicViT's keep score, `log_softmax(l)[0]` of each row as PyTorch computes it:
  /// `f32[m, 2] -> f32[m]`.
  case keepScore = "keep_score"
  /// EViT's and BAT's score: post-softmax attention of the cls query, averaged over heads, for
  /// the patch-token keys: `(qkv f32[n, 3C]; heads, scale) -> f32[n−1]`.
  case clsAttention = "cls_attention"
  /// AS-ViT's score: cls attention weighted by head importance (the norm of each head's
  /// context row, normalised over heads): `(qkv f32[n, 3C], context f32[n, C]; heads, scale) ->
  /// f32[n−1]`.
  case asvitScores = "asvit_scores"
  /// ToMe's metric, the keys averaged over heads: `(qkv f32[n, 3C]; heads) -> f32[n, d]`.
  case tomeMetric = "tome_metric"
  /// The k highest scores, descending, ties to the lower index: `(scores f32[m]; k) -> i32[k]`.
  case topkKeep = "topk_keep"
  /// AS-ViT: the indices whose score is strictly above `threshold`, ascending; the count is
  /// known only at run time: `(scores f32[m]; threshold, stage) -> i32[k<=m]` (symbol `k{stage}`).
  case thresholdKeep = "threshold_keep"
  /// The owner map of the unpruned sequence, patch p in row 1 + p: `(; patches) -> i32[P]`.
  case patchOwner = "patch_owner"
  /// A size of 1 for every token (ToMe before its first merge): `f32[n, C] -> f32[n]`.
  case unitSizes = "unit_sizes"
  /// Keeps the cls token and the rows 1 + keep[i], in keep order:
  /// `(x f32[n, C], keep i32[k], owner i32[P]) -> (f32[k+1, C], i32[P])`.
  case gatherTokens = "gather_tokens"
  /// EViT with fusion: `gather_tokens`, plus one last row Σ score[j]·x[1+j] over the dropped j
  /// (ascending, not normalised): `(x f32[n, C], keep i32[k], scores f32[n−1], owner i32[P]) ->
  /// (f32[k+2, C], i32[P])`.
  case gatherFuseTokens = "gather_fuse_tokens"
  /// BAT (docs/methods.md): top-k attentive tokens with `pairs` similar pairs merged, the other
  /// tokens merged into `clusters` density-peak clusters:
  /// `(x f32[n, C], scores f32[n−1], owner i32[P]; k, clusters, pairs) ->
  /// (f32[1+k−pairs+clusters, C], i32[P])`.
  case batMerge = "bat_merge"
  /// ToMe's bipartite soft matching with the cls token protected, merging r tokens by
  /// size-weighted average: `(x f32[n, C], metric f32[n, d], size f32[n], owner i32[P]; r) ->
  /// (f32[n−r, C], f32[n−r], i32[P])`.
  case bipartiteMerge = "bipartite_merge"
  /// Records a stage of the trace (docs/trace-format.md) after block `block`'s selection and
  /// passes the owner map through: `(x f32[n, C], owner i32[P]; block) -> i32[P]`.
  case traceStage = "trace_stage"

  // LV-ViT (SEMANTICS-LVVIT.md): the convolutional stem and the auxiliary head.

  /// Conv2d over a CHW feature map with zero padding, cross-correlation as PyTorch computes it:
  /// `(x f32[Ci,H,W], weight f32[Co,Ci,k,k], bias f32[Co]?; stride, pad) -> f32[Co,Ho,Wo]`,
  /// Ho = ⌊(H + 2·pad − k)/stride⌋ + 1 (Wo alike).
  case conv2d = "conv2d"
  /// BatchNorm2d in eval form over the channels of a CHW map, with the running statistics:
  /// `(x f32[C,H,W], weight f32[C], bias f32[C], mean f32[C], var f32[C]; eps) -> f32[C,H,W]`,
  /// `y = x·α[c] + β[c]` with `α = weight/√(var + eps)`, `β = bias − mean·α` (PyTorch's CPU form).
  case batchnorm = "batchnorm"
  /// `max(x, 0)`, elementwise.
  case relu = "relu"
  /// LV-ViT's auxiliary head at evaluation: for each class the maximum over the patch tokens
  /// (rows 1 … n−1, those still present) of `x·Wᵀ + b`:
  /// `(x f32[n, C], weight f32[K, C], bias f32[K]) -> f32[K]`.
  case auxHeadMax = "aux_head_max"

  // timm variants: LayerScale (DeiT-III) and average pooling (models without a class token).

  /// A per-channel scale, timm's LayerScale `x * gamma`, gamma broadcast over the rows:
  /// `(x f32[..., C], gamma f32[C]) -> f32[..., C]`, each product rounded to float32 once.
  case channelScale = "channel_scale"
  /// The mean of the patch tokens, timm's `global_pool='avg'` (`x[:, prefix:].mean(1)`):
  /// `(x f32[n, C]; prefix) -> f32[C]`, over rows prefix … n−1 (`prefix=N` as on the pruning
  /// ops, 1 when not written: write `prefix=0` for a model without a class token), summed in
  /// double in row order and divided by their count.
  case meanTokens = "mean_tokens"
  /// `residual + gamma · (x · Wᵀ + b)`: a linear with LayerScale and the residual add after it,
  /// what FuseEpilogues makes of `r + channel_scale(linear(x, W, b), gamma)`; each step rounded
  /// to float32 as the unfused ops round it:
  /// `(x, weight, bias, gamma f32[out], residual) -> f32[..., out]`.
  case linearScaleAdd = "linear_scale_add"
}

extension OpKind {
  /// Whether only token pruning uses this kind: an op of it read from text is marked
  /// `OpRole.pruningSelection`, as InsertPruning marks what it inserts.
  public var isTokenPruning: Bool {
    switch self {
    case .patchTokens, .dyvitMix, .keepScore, .clsAttention, .asvitScores, .tomeMetric, .topkKeep,
      .thresholdKeep, .patchOwner, .unitSizes, .gatherTokens, .gatherFuseTokens, .batMerge,
      .bipartiteMerge, .traceStage:
      true
    case .conv2d, .batchnorm, .relu, .auxHeadMax:
      false
    case .patchEmbed, .reshape, .concat, .add, .scale, .layernorm, .linear, .gelu, .softmax,
      .splitHeads, .transpose, .matmul, .mergeHeads, .row, .attention, .linearGelu, .linearAdd,
      .channelScale, .meanTokens, .linearScaleAdd:
      false
    }
  }
}

extension OpKind {
  /// Whether ops of this kind are a linear layer (with or without a fused epilogue), the ops
  /// whose arithmetic `Precision` chooses (`OpAttributes.precision`, the Quantize pass).
  public var isLinear: Bool {
    switch self {
    case .linear, .linearGelu, .linearAdd, .linearScaleAdd: true
    default: false
    }
  }
}

extension OpKind {
  /// Whether ops of this kind read rows of a token sequence as tokens, so depend on how many
  /// prefix tokens lead it (`OpAttributes.prefix`, TokenLayout): they never drop, merge or move
  /// those rows, and count, score and rewrite only the patch tokens after them.
  public var readsTokenRows: Bool {
    switch self {
    case .patchTokens, .clsAttention, .asvitScores, .patchOwner, .gatherTokens, .gatherFuseTokens,
      .batMerge, .bipartiteMerge, .traceStage, .meanTokens:
      true
    default:
      false
    }
  }
}

/// An attribute value in the IR: an integer, a real number, a list of integers or a word (the
/// spelling of an enumeration such as `Precision`).
public enum Attribute: Hashable, Sendable, CustomStringConvertible {
  case int(Int)
  case real(Double)
  case ints([Int])
  case word(String)

  public var description: String {
    switch self {
    case .int(let value): "\(value)"
    case .real(let value): formatReal(value)
    case .ints(let values): "[" + values.map(String.init).joined(separator: ",") + "]"
    case .word(let word): word
    }
  }
}

/// Shortest text that reads back as the same Double (Swift's description already is), always
/// with a decimal point or exponent so that it never reads back as an integer.
public func formatReal(_ value: Double) -> String {
  let text = "\(value)"
  return text.contains(where: { $0 == "." || $0 == "e" || $0 == "n" || $0 == "i" }) ? text : text + ".0"
}

/// What an op kind accepts: how many operands, which attributes (with their kind and whether
/// they are required), and how many results.
public struct OpSignature: Sendable {
  public enum AttributeKind: Sendable { case int, real, ints }

  /// Operand names, for messages (`linear` operand 1 is "weight").
  public var operands: [String]
  /// How many trailing operands may be left out (linear's bias).
  public var optionalOperands: Int
  /// Attribute names and kinds; all are required.
  public var attributes: [(name: String, kind: AttributeKind)]
  /// The number of results; nil means "as many as the statement names" (split_heads).
  public var results: Int?

  public var operandRange: ClosedRange<Int> {
    (operands.count - optionalOperands)...operands.count
  }
}

extension OpKind {
  /// The operands, attributes and results this kind takes.
  public var signature: OpSignature {
    switch self {
    case .patchEmbed:
      OpSignature(
        operands: ["image", "weight", "bias"], optionalOperands: 0,
        attributes: [("patch", .int)], results: 1)
    case .reshape:
      OpSignature(operands: ["x"], optionalOperands: 0, attributes: [("shape", .ints)], results: 1)
    case .concat:
      OpSignature(operands: ["a", "b"], optionalOperands: 0, attributes: [], results: 1)
    case .add:
      OpSignature(operands: ["a", "b"], optionalOperands: 0, attributes: [], results: 1)
    case .scale:
      OpSignature(operands: ["x"], optionalOperands: 0, attributes: [("factor", .real)], results: 1)
    case .layernorm:
      OpSignature(
        operands: ["x", "weight", "bias"], optionalOperands: 0, attributes: [("eps", .real)],
        results: 1)
    case .linear:
      OpSignature(operands: ["x", "weight", "bias"], optionalOperands: 1, attributes: [], results: 1)
    case .gelu, .softmax, .transpose, .mergeHeads:
      OpSignature(operands: ["x"], optionalOperands: 0, attributes: [], results: 1)
    case .splitHeads:
      OpSignature(operands: ["x"], optionalOperands: 0, attributes: [("heads", .int)], results: nil)
    case .matmul:
      OpSignature(operands: ["a", "b"], optionalOperands: 0, attributes: [], results: 1)
    case .row:
      OpSignature(operands: ["x"], optionalOperands: 0, attributes: [("index", .int)], results: 1)
    case .attention:
      OpSignature(
        operands: ["qkv", "size"], optionalOperands: 1,
        attributes: [("heads", .int), ("scale", .real)], results: 1)
    case .linearGelu:
      OpSignature(operands: ["x", "weight", "bias"], optionalOperands: 0, attributes: [], results: 1)
    case .linearAdd:
      OpSignature(
        operands: ["x", "weight", "bias", "residual"], optionalOperands: 0, attributes: [],
        results: 1)
    case .patchTokens, .dyvitMix, .keepScore, .unitSizes:
      OpSignature(operands: ["x"], optionalOperands: 0, attributes: [], results: 1)
    case .clsAttention:
      OpSignature(
        operands: ["qkv"], optionalOperands: 0, attributes: [("heads", .int), ("scale", .real)],
        results: 1)
    case .asvitScores:
      OpSignature(
        operands: ["qkv", "context"], optionalOperands: 0,
        attributes: [("heads", .int), ("scale", .real)], results: 1)
    case .tomeMetric:
      OpSignature(operands: ["qkv"], optionalOperands: 0, attributes: [("heads", .int)], results: 1)
    case .topkKeep:
      OpSignature(operands: ["scores"], optionalOperands: 0, attributes: [("k", .int)], results: 1)
    case .thresholdKeep:
      OpSignature(
        operands: ["scores"], optionalOperands: 0,
        attributes: [("threshold", .real), ("stage", .int)], results: 1)
    case .patchOwner:
      OpSignature(operands: [], optionalOperands: 0, attributes: [("patches", .int)], results: 1)
    case .gatherTokens:
      OpSignature(operands: ["x", "keep", "owner"], optionalOperands: 0, attributes: [], results: 2)
    case .gatherFuseTokens:
      OpSignature(
        operands: ["x", "keep", "scores", "owner"], optionalOperands: 0, attributes: [], results: 2)
    case .batMerge:
      OpSignature(
        operands: ["x", "scores", "owner"], optionalOperands: 0,
        attributes: [("k", .int), ("clusters", .int), ("pairs", .int)], results: 2)
    case .bipartiteMerge:
      OpSignature(
        operands: ["x", "metric", "size", "owner"], optionalOperands: 0, attributes: [("r", .int)],
        results: 3)
    case .traceStage:
      OpSignature(operands: ["x", "owner"], optionalOperands: 0, attributes: [("block", .int)], results: 1)
    case .conv2d:
      OpSignature(
        operands: ["x", "weight", "bias"], optionalOperands: 1,
        attributes: [("stride", .int), ("pad", .int)], results: 1)
    case .batchnorm:
      OpSignature(
        operands: ["x", "weight", "bias", "mean", "var"], optionalOperands: 0,
        attributes: [("eps", .real)], results: 1)
    case .relu:
      OpSignature(operands: ["x"], optionalOperands: 0, attributes: [], results: 1)
    case .auxHeadMax:
      OpSignature(operands: ["x", "weight", "bias"], optionalOperands: 0, attributes: [], results: 1)
    case .channelScale:
      OpSignature(operands: ["x", "gamma"], optionalOperands: 0, attributes: [], results: 1)
    case .meanTokens:
      OpSignature(operands: ["x"], optionalOperands: 0, attributes: [], results: 1)
    case .linearScaleAdd:
      OpSignature(
        operands: ["x", "weight", "bias", "gamma", "residual"], optionalOperands: 0, attributes: [], results: 1)
    }
  }
}
