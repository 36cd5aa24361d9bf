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
  /// A type whose element count overflows or whose bytes exceed `Limits.maxTensorBytes`.
  case tensorTooLarge(String, at: SourceLocation?)
  /// A real attribute that is not a finite float32 number.
  case nonFiniteAttribute(OpKind, String, Double, at: SourceLocation?)
  /// A pruning method that scores with the class token's attention (EViT, AS-ViT, BAT) asked of
  /// a model without one; `at` is where the stem makes the token sequence.
  case needsClassToken(MethodKind, spec: String, at: SourceLocation?)
  /// A method asked of a model with a prefix it does not support yet (AS-ViT's run-time count
  /// is one class token plus the kept patches).
  case unsupportedPrefix(MethodKind, spec: String, prefix: Int, at: SourceLocation?)
  /// Pruning asked of a graph whose token layout (TokenLayout) cannot be read off its stem.
  case noTokenLayout(spec: String, at: SourceLocation?)

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
        "\(prefix(at))'\(kind.rawValue)' has no attribute '\(MessageText.clean(name))'"
        + (known.isEmpty ? " (it takes none)" : " (it takes \(known))")
    case .attributeKind(let kind, let name, let expected, let found, let at):
      return "\(prefix(at))attribute '\(name)' of '\(kind.rawValue)' must be \(expected), found \(MessageText.clean(found.description))"
    case .attributeValue(let kind, let name, let found, let expected, let at):
      return "\(prefix(at))attribute '\(name)' of '\(kind.rawValue)' is \(MessageText.clean(found.description)), expected \(MessageText.clean(expected))"
    case .operandType(let kind, let operand, let found, let expected, let at):
      return "\(prefix(at))'\(kind.rawValue)' operand '\(operand)' has type \(MessageText.clean(found.description)), expected \(MessageText.clean(expected))"
    case .dynamicUnsupported(let kind, let operand, let found, let at):
      return
        "\(prefix(at))'\(kind.rawValue)' does not support a run-time token count yet: operand '\(operand)' has type \(MessageText.clean(found.description))"
    case .duplicateParameter(let name, let previous, let at):
      let earlier = previous.map { " (first declared at \($0))" } ?? ""
      return "\(prefix(at))parameter '@\(MessageText.clean(name))' is declared twice\(earlier)"
    case .dynamicParameter(let name, let type, let at):
      return "\(prefix(at))parameter '@\(MessageText.clean(name))' must have a static shape, found \(MessageText.clean(type.description))"
    case .annotation(let name, let declared, let inferred, let at):
      return "\(prefix(at))'\(MessageText.clean(name))' is declared as \(MessageText.clean(declared.description)) but its value has type \(MessageText.clean(inferred.description))"
    case .outputType(let declared, let found, let at):
      return "\(prefix(at))the graph returns \(MessageText.clean(found.description)), but its signature declares \(MessageText.clean(declared.description))"
    case .invalidGraph(let what):
      return "error: invalid IR (a vitc bug): \(what)"
    case .scheduleMismatch(let what):
      return "error: \(what)"
    case .tensorTooLarge(let what, let at):
      return
        "\(prefix(at))\(MessageText.clean(what)) is too large: vitc allows at most \(Limits.maxTensorBytes) bytes (\(Limits.maxTensorBytes >> 30) GiB) per tensor"
    case .nonFiniteAttribute(let kind, let name, let value, let at):
      return
        "\(prefix(at))attribute '\(name)' of '\(kind.rawValue)' is \(value), which is not a finite float32 number"
    case .needsClassToken(let method, let spec, let at):
      return
        "\(prefix(at))--prune '\(MessageText.clean(spec))': \(method.displayName) scores patches by the class token's attention, and this model has no class token (0 prefix tokens before its patches); dyvit and tome need none"
    case .unsupportedPrefix(let method, let spec, let count, let at):
      return
        "\(prefix(at))--prune '\(MessageText.clean(spec))': \(method.displayName) supports one prefix token (the class token) only, and this model has \(count)"
    case .noTokenLayout(let spec, let at):
      return
        "\(prefix(at))--prune '\(MessageText.clean(spec))': cannot tell which rows are patch tokens: the stem must make them with one patch_embed and put any class or distillation token before them with concat"
    }
  }

  private func prefix(_ location: SourceLocation?) -> String {
    location.map { "\(MessageText.path($0.description)): error: " } ?? "error: "
  }
}

/// The limits vitc puts on what it reads, so that a hostile or corrupt file gives one clear
/// error instead of a trap, an allocation failure, a stack overflow or a hang
/// (docs/reliability.md lists each with how it is tested).
public enum Limits {
  /// Bytes of one tensor (at its bound): 1 GiB, so every element index fits a C `int`.
  public static let maxTensorBytes = 1 << 30
  /// How deeply an expression of a `.graph` file nests (parentheses, calls, `+` and `*`).
  public static let maxExpressionDepth = 100
  /// Statements a `.graph` file expands to once its `block` loops are unrolled.
  public static let maxUnrolledStatements = 200_000
  /// The smallest `crop_pct`: the resize is then at most 4× the crop.
  public static let minCropFraction = 0.25
  /// The shorter side an image is resized to, `floor(S / crop_pct)` for an input of S×S: with
  /// the aspect limit, the resized image then stays under 1 GiB of bytes.
  public static let maxResizeSide = 4096
  /// Pixels of an input image (64 Mi), checked before any allocation.
  public static let maxImagePixels = 1 << 26
  /// The longer side of an input image over its shorter side: the resize of the shorter side to
  /// the model's resize size then stays bounded.
  public static let maxImageAspect = 16
  /// Prefix tokens before the patches (`prefix=` on pruning ops): timm's models have at most a
  /// class, a distillation and a few register tokens.
  public static let maxPrefixTokens = 64
  /// Characters of a name or other user text quoted in a message.
  public static let maxQuotedCharacters = 200
}

/// User text inside error messages: one line, bounded, printable.
public enum MessageText {
  /// A path or `file:line:col`: escaped like `clean`, but cut only past 4096 characters (the
  /// usual PATH_MAX), so that a long real path stays whole.
  public static func path(_ text: String) -> String { clean(text, limit: 4096) }

  /// `text` with control characters (and line separators and bidi overrides) escaped (`\n`,
  /// `\u{1B}`) and cut to
  /// `Limits.maxQuotedCharacters` characters, then "…(N characters)".
  public static func clean(_ text: String, limit: Int = Limits.maxQuotedCharacters) -> String {
    var result = ""
    var count = 0
    for scalar in text.unicodeScalars {
      if count == limit {
        return result + "…(\(text.unicodeScalars.count) characters)"
      }
      count += 1
      switch scalar {
      case "\n": result += "\\n"
      case "\t": result += "\\t"
      case "\r": result += "\\r"
      default:
        if scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value)
          || (0x2028...0x202e).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
        {
          result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
        } else {
          result.unicodeScalars.append(scalar)
        }
      }
    }
    return result
  }
}
