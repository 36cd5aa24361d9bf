import VitIR

/// A multiply-add count as a polynomial in the graph's run-time token counts (AS-ViT's `n{s}`
/// and `k{s}`): `FlopCounter` builds one per op, so that a count can be evaluated for any run
/// (`vitc flops --image`) or emitted as C that evaluates it from a run's trace (`--eval`).
public struct MacPolynomial: Sendable, Equatable, ExpressibleByIntegerLiteral {
  /// Coefficient by monomial; a monomial is its symbols, sorted, with repeats (`[n1, n1]`
  /// is n1²; `[]` the constant term). No zero coefficients.
  public private(set) var terms: [[TokenCount]: Int] = [:]

  public init(_ constant: Int) { terms = constant != 0 ? [[]: constant] : [:] }
  public init(integerLiteral value: Int) { self.init(value) }
  private init(terms: [[TokenCount]: Int]) { self.terms = terms }

  /// The count of one dimension: its value if fixed, its symbol if dynamic.
  public init(_ dim: Dim) {
    switch dim {
    case .fixed(let value): self.init(value)
    case .dynamic(let symbol, _): self.init(terms: [[symbol]: 1])
    }
  }

  /// The symbols it depends on, sorted.
  public var symbols: [TokenCount] { Array(Set(terms.keys.flatMap { $0 })).sorted() }

  /// Its value with each symbol replaced by `value(symbol)`.
  public func evaluated(_ value: (TokenCount) -> Int) -> Int {
    terms.reduce(0) { sum, term in sum + term.value * term.key.reduce(1) { $0 * value($1) } }
  }

  /// Terms in a fixed order: by degree, then by symbols.
  public var sortedTerms: [(monomial: [TokenCount], coefficient: Int)] {
    terms.map { ($0.key, $0.value) }.sorted { a, b in
      a.monomial.count != b.monomial.count ? a.monomial.count < b.monomial.count : a.monomial.lexicographicallyPrecedes(b.monomial)
    }
  }

  public static func + (a: MacPolynomial, b: MacPolynomial) -> MacPolynomial {
    var sum = a
    for (monomial, coefficient) in b.terms { sum.add(coefficient, monomial) }
    return sum
  }

  public static prefix func - (a: MacPolynomial) -> MacPolynomial { a * MacPolynomial(-1) }

  public static func - (a: MacPolynomial, b: MacPolynomial) -> MacPolynomial { a + -b }

  public static func * (a: MacPolynomial, b: MacPolynomial) -> MacPolynomial {
    var product = MacPolynomial(0)
    for (left, x) in a.terms {
      for (right, y) in b.terms { product.add(x * y, (left + right).sorted()) }
    }
    return product
  }

  private mutating func add(_ coefficient: Int, _ monomial: [TokenCount]) {
    let sum = (terms[monomial] ?? 0) + coefficient
    terms[monomial] = sum == 0 ? nil : sum
  }
}
