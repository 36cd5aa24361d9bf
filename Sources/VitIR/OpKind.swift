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
  /// heads merged: `f32[n, 3C] -> f32[n, C]` (q, k, v split as `split_heads` does). Kernels
  /// stream rows and never materialize the [H, n, n] scores.
  case attention = "attention"
  /// `gelu(x · Wᵀ + b)`: a linear with the GELU in its epilogue.
  case linearGelu = "linear_gelu"
  /// `residual + (x · Wᵀ + b)`: a linear with the residual add in its epilogue.
  case linearAdd = "linear_add"
}

/// An attribute value in the IR: an integer, a real number or a list of integers.
public enum Attribute: Hashable, Sendable, CustomStringConvertible {
  case int(Int)
  case real(Double)
  case ints([Int])

  public var description: String {
    switch self {
    case .int(let value): "\(value)"
    case .real(let value): formatReal(value)
    case .ints(let values): "[" + values.map(String.init).joined(separator: ",") + "]"
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
        operands: ["qkv"], optionalOperands: 0, attributes: [("heads", .int), ("scale", .real)],
        results: 1)
    case .linearGelu:
      OpSignature(operands: ["x", "weight", "bias"], optionalOperands: 0, attributes: [], results: 1)
    case .linearAdd:
      OpSignature(
        operands: ["x", "weight", "bias", "residual"], optionalOperands: 0, attributes: [],
        results: 1)
    }
  }
}
