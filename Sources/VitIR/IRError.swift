/// Errors found while building or checking a graph: wrong operand counts, attributes and
/// shapes. Each carries the location of the op in the user's file when there is one.
public enum IRError: Error, Equatable, CustomStringConvertible {
  /// An op got fewer or more operands than its kind takes.
  case operandCount(OpKind, expected: ClosedRange<Int>, found: Int, at: SourceLocation?)
  /// An op got a different number of results than its kind produces.
  case resultCount(OpKind, expected: String, found: Int, at: SourceLocation?)
  /// A required attribute is missing.
  case missingAttribute(OpKind, String, at: SourceLocation?)
  /// An attribute the kind does not take.
  case unknownAttribute(OpKind, String, at: SourceLocation?)
  /// An attribute of the wrong kind (a real where an integer list is expected, …).
  case attributeKind(OpKind, String, expected: String, found: Attribute, at: SourceLocation?)
  /// An attribute whose value is out of range (a patch size of 0, …).
  case attributeValue(OpKind, String, found: Attribute, expected: String, at: SourceLocation?)
  /// An operand's type does not fit: `expected` says what would.
  case operandType(
    OpKind, operand: String, found: TensorType, expected: String, at: SourceLocation?)
  /// The op cannot yet handle a dynamic (run-time) token count in this operand.
  case dynamicUnsupported(OpKind, operand: String, found: TensorType, at: SourceLocation?)
  /// A parameter declared twice.
  case duplicateParameter(String, previous: SourceLocation?, at: SourceLocation?)
  /// Learned tensors have static shapes.
  case dynamicParameter(String, TensorType, at: SourceLocation?)
  /// A type written in the source disagrees with the inferred one.
  case annotation(String, declared: TensorType, inferred: TensorType, at: SourceLocation?)
  /// The returned value's type is not the one the graph's signature declares.
  case outputType(declared: TensorType, found: TensorType, at: SourceLocation?)
  /// The verifier found a broken invariant (a pass bug, not a user mistake).
  case invalidGraph(String)
  /// A pruning schedule that does not fit the graph (no attention in a block it acts on, …).
  case scheduleMismatch(String)

  public var description: String {
    switch self {
    case .operandCount(let kind, let expected, let found, let at):
      let count =
        expected.lowerBound == expected.upperBound
        ? "\(expected.lowerBound)" : "\(expected.lowerBound) or \(expected.upperBound)"
      return
        "\(prefix(at))'\(kind.rawValue)' takes \(count) operand\(count == "1" ? "" : "s") (\(kind.signature.operands.joined(separator: ", "))), found \(found)"
    case .resultCount(let kind, let expected, let found, let at):
      return "\(prefix(at))'\(kind.rawValue)' produces \(expected), but \(found) names are assigned"
    case .missingAttribute(let kind, let name, let at):
      return "\(prefix(at))'\(kind.rawValue)' needs the attribute '\(name)'"
    case .unknownAttribute(let kind, let name, let at):
      let known = kind.signature.attributes.map { "'\($0.name)'" }.joined(separator: ", ")
      return
        "\(prefix(at))'\(kind.rawValue)' has no attribute '\(name)'"
        + (known.isEmpty ? " (it takes none)" : " (it takes \(known))")
    case .attributeKind(let kind, let name, let expected, let found, let at):
      return "\(prefix(at))attribute '\(name)' of '\(kind.rawValue)' must be \(expected), found \(found)"
    case .attributeValue(let kind, let name, let found, let expected, let at):
      return "\(prefix(at))attribute '\(name)' of '\(kind.rawValue)' is \(found), expected \(expected)"
    case .operandType(let kind, let operand, let found, let expected, let at):
      return "\(prefix(at))'\(kind.rawValue)' operand '\(operand)' has type \(found), expected \(expected)"
    case .dynamicUnsupported(let kind, let operand, let found, let at):
      return
        "\(prefix(at))'\(kind.rawValue)' does not support a run-time token count yet: operand '\(operand)' has type \(found)"
    case .duplicateParameter(let name, let previous, let at):
      let earlier = previous.map { " (first declared at \($0))" } ?? ""
      return "\(prefix(at))parameter '@\(name)' is declared twice\(earlier)"
    case .dynamicParameter(let name, let type, let at):
      return "\(prefix(at))parameter '@\(name)' must have a static shape, found \(type)"
    case .annotation(let name, let declared, let inferred, let at):
      return "\(prefix(at))'\(name)' is declared as \(declared) but its value has type \(inferred)"
    case .outputType(let declared, let found, let at):
      return "\(prefix(at))the graph returns \(found), but its signature declares \(declared)"
    case .invalidGraph(let what):
      return "error: invalid IR (a vitc bug): \(what)"
    case .scheduleMismatch(let what):
      return "error: \(what)"
    }
  }

  private func prefix(_ location: SourceLocation?) -> String {
    location.map { "\($0): error: " } ?? "error: "
  }
}
