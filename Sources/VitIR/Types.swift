/// Element types: f32 for activations and weights, i32 for the token indices and patch-owner
/// maps of the pruning ops. (int8 and f16 activations are planned, DESIGN §3.)
public enum DType: String, Sendable, CaseIterable {
  /// 32-bit IEEE float.
  case f32
  /// 32-bit signed integer (indices; the interpreter holds them exactly as floats).
  case i32
}

/// One dimension of a value's shape: a number known when compiling, or the token count `n`,
/// known only at run time but never above a static bound (AS-ViT keeps a per-image count; the
/// arena is planned for the bound).
public enum Dim: Hashable, Sendable, CustomStringConvertible {
  /// A dimension known at compile time.
  case fixed(Int)
  /// A run-time token count named `symbol` (two dims with the same symbol are equal at run
  /// time), at most `bound`. Spelled `n<=197` in the textual IR.
  case dynamic(symbol: String, bound: Int)

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
  public func bind(_ shape: [Int], into bindings: inout [String: Int]) -> Bool {
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
