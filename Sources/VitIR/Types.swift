/// Element types: f32 for activations and weights, i32 for the token indices and patch-owner
/// maps of the pruning ops. (int8 and f16 activations are planned, DESIGN §3.)
public enum DType: String, Sendable, CaseIterable {
  /// 32-bit IEEE float.
  case f32
  /// 32-bit signed integer (indices; the interpreter holds them exactly as floats).
  case i32
}

/// The name of a run-time token count. Pruning with a run-time count (AS-ViT's
/// `threshold_keep` of stage s) makes a pair: the patch tokens it keeps, and the rows of the
/// sequence it gathers, one more for the cls token. Spelled `k{s}` and `n{s}` in the textual
/// IR; only `spelling`/`init(spelling:)` know that.
public enum TokenCount: Hashable, Sendable, Comparable, CustomStringConvertible {
  /// The rows of the token sequence after stage `stage`'s selection: the kept tokens and the
  /// cls token (`n{stage}`).
  case tokens(stage: Int)
  /// The patch tokens stage `stage` keeps (`k{stage}`): `tokens(stage) − 1`.
  case kept(stage: Int)
  /// Any other name a hand-written graph gives a dynamic dimension (`n<=197`): equal only to
  /// itself, with no kept/tokens partner.
  case named(String)

  /// Reads the textual spelling: `n3` and `k3` (a stage without leading zeros) are a stage's
  /// pair, anything else a plain name.
  public init(spelling: String) {
    let stageText = spelling.dropFirst()
    if let stage = Int(stageText), stage >= 0, String(stage) == stageText {
      switch spelling.first {
      case "n": self = .tokens(stage: stage); return
      case "k": self = .kept(stage: stage); return
      default: break
      }
    }
    self = .named(spelling)
  }

  /// The textual spelling, also the C name of the count's variable.
  public var spelling: String {
    switch self {
    case .tokens(let stage): "n\(stage)"
    case .kept(let stage): "k\(stage)"
    case .named(let name): name
    }
  }

  public var description: String { spelling }

  /// The patch tokens of a sequence of this many rows (the rows without the cls token).
  public var withoutClassToken: TokenCount? {
    if case .tokens(let stage) = self { return .kept(stage: stage) }
    return nil
  }

  /// The rows of a sequence of these patch tokens and the cls token.
  public var withClassToken: TokenCount? {
    if case .kept(let stage) = self { return .tokens(stage: stage) }
    return nil
  }

  /// Ordered by spelling, so that everything sorted by count reads as before it had a type.
  public static func < (a: TokenCount, b: TokenCount) -> Bool { a.spelling < b.spelling }
}

/// One dimension of a value's shape: a number known when compiling, or the token count `n`,
/// known only at run time but never above a static bound (AS-ViT keeps a per-image count; the
/// arena is planned for the bound).
public enum Dim: Hashable, Sendable, CustomStringConvertible {
  /// A dimension known at compile time.
  case fixed(Int)
  /// A run-time token count named `symbol` (two dims with the same symbol are equal at run
  /// time), at most `bound`. Spelled `n0<=197` in the textual IR.
  case dynamic(symbol: TokenCount, bound: Int)

  /// The static value, or the upper bound of a dynamic dimension.
  public var bound: Int {
    switch self {
    case .fixed(let value): value
    case .dynamic(_, let bound): bound
    }
  }

  /// The static value, or nil when the dimension is dynamic.
  public var fixedValue: Int? {
    if case .fixed(let value) = self { return value }
    return nil
  }

  public var isDynamic: Bool { fixedValue == nil }

  public var description: String {
    switch self {
    case .fixed(let value): "\(value)"
    case .dynamic(let symbol, let bound): "\(symbol)<=\(bound)"
    }
  }
}

/// The type of a graph value: element type and shape.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
  public var dtype: DType
  /// Dimensions, outermost first.
  public var dims: [Dim]

  public init(_ dims: [Dim], dtype: DType = .f32) {
    self.dtype = dtype
    self.dims = dims
  }

  /// A static type from plain numbers.
  public init(fixed dims: [Int], dtype: DType = .f32) {
    self.init(dims.map(Dim.fixed), dtype: dtype)
  }

  public var rank: Int { dims.count }

  /// The element count when every dimension is at its bound (what the memory plan reserves).
  public var boundCount: Int { dims.reduce(1) { $0 * $1.bound } }

  /// The concrete shape, when no dimension is dynamic.
  public var fixedShape: [Int]? {
    let values = dims.compactMap(\.fixedValue)
    return values.count == dims.count ? values : nil
  }

  public var isDynamic: Bool { dims.contains(where: \.isDynamic) }

  /// `f32[n<=197,384]`.
  public var description: String {
    "\(dtype.rawValue)[" + dims.map(\.description).joined(separator: ",") + "]"
  }

  /// Whether a concrete shape is an instance of this type (dynamic dims up to their bound;
  /// dims sharing a symbol must agree). Returns the symbol bindings, or nil.
  public func bind(_ shape: [Int], into bindings: inout [TokenCount: Int]) -> Bool {
    guard shape.count == dims.count else { return false }
    for (dim, value) in zip(dims, shape) {
      switch dim {
      case .fixed(let expected):
        if value != expected { return false }
      case .dynamic(let symbol, let bound):
        if value < 0 || value > bound { return false }
        if let seen = bindings[symbol], seen != value { return false }
        bindings[symbol] = value
      }
    }
    return true
  }
}
