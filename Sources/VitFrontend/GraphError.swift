import VitIR

/// Errors in a `.graph` file: syntax, names, and (wrapped) shape errors from the IR. Every
/// message starts with `file:line:col: error:` and says what was found and what was expected.
public enum GraphError: Error, Equatable, CustomStringConvertible {
  /// The graph file does not exist or cannot be read.
  case unreadable(path: String, reason: String)
  /// A character that starts no token.
  case unexpectedCharacter(Character, at: SourceLocation)
  /// The parser wanted one thing and found another.
  case expected(String, found: String, at: SourceLocation)
  /// A call of an op kind vitc does not know.
  case unknownOp(String, suggestion: String?, at: SourceLocation)
  /// A value used before any statement assigns it.
  case undefinedValue(String, at: SourceLocation)
  /// `@name` that no `param` declares.
  case undefinedParameter(String, at: SourceLocation)
  /// `{j}` in a parameter name where no loop variable `j` is in scope.
  case unknownLoopVariable(String, in: String, at: SourceLocation)
  /// A `block` range that is empty or negative.
  case badBlockRange(lower: Int, upper: Int, at: SourceLocation)
  /// `block` inside `block`.
  case nestedBlock(at: SourceLocation)
  /// The same attribute given twice in one call.
  case duplicateAttribute(String, at: SourceLocation)
  /// More than one target for an expression that yields one value.
  case multipleTargets(count: Int, at: SourceLocation)
  /// No `return`, or a `return` that is not the last statement of the graph.
  case missingReturn(at: SourceLocation)
  case returnNotLast(at: SourceLocation)
  /// A `preprocess` statement with a bad setting (`what` says which and why), or one that is
  /// not the first statement of the graph's body.
  case badPreprocess(String, at: SourceLocation)
  /// An expression nested deeper than `Limits.maxExpressionDepth`.
  case tooDeep(at: SourceLocation)
  /// `block` loops that unroll to more than `Limits.maxUnrolledStatements` statements.
  case tooManyStatements(Int?, at: SourceLocation)
  /// A shape, operand or attribute error found while building the IR.
  case ir(IRError)

  public var description: String {
    switch self {
    case .unreadable(let path, let reason):
      "\(MessageText.path(path)): error: cannot read the graph: \(reason)"
    case .unexpectedCharacter(let character, let at):
      "\(MessageText.path(at.description)): error: unexpected character '\(MessageText.clean(String(character)))'"
    case .expected(let what, let found, let at):
      "\(MessageText.path(at.description)): error: expected \(what), found \(found)"
    case .unknownOp(let name, let suggestion, let at):
      "\(MessageText.path(at.description)): error: unknown op '\(MessageText.clean(name))'"
        + (suggestion.map { "; did you mean '\($0)'?" } ?? "")
        + " (ops: \(OpKind.allCases.map(\.rawValue).joined(separator: ", ")))"
    case .undefinedValue(let name, let at):
      "\(MessageText.path(at.description)): error: '\(MessageText.clean(name))' is used before it is assigned"
    case .undefinedParameter(let name, let at):
      "\(MessageText.path(at.description)): error: parameter '@\(MessageText.clean(name))' is not declared (add 'param @\(MessageText.clean(name)): f32[...]')"
    case .unknownLoopVariable(let variable, let name, let at):
      "\(MessageText.path(at.description)): error: '{\(MessageText.clean(variable))}' in '@\(MessageText.clean(name))' names no enclosing block variable"
    case .badBlockRange(let lower, let upper, let at):
      "\(MessageText.path(at.description)): error: block range \(lower)..<\(upper) is empty or negative"
    case .nestedBlock(let at):
      "\(MessageText.path(at.description)): error: a block cannot contain another block"
    case .duplicateAttribute(let name, let at):
      "\(MessageText.path(at.description)): error: attribute '\(MessageText.clean(name))' is given twice"
    case .multipleTargets(let count, let at):
      "\(MessageText.path(at.description)): error: \(count) names are assigned, but only a call of 'split_heads' yields several values"
    case .missingReturn(let at):
      "\(MessageText.path(at.description)): error: the graph has no 'return' statement"
    case .returnNotLast(let at):
      "\(MessageText.path(at.description)): error: 'return' must be the last statement of the graph"
    case .badPreprocess(let what, let at):
      "\(MessageText.path(at.description)): error: \(what)"
    case .tooDeep(let at):
      "\(MessageText.path(at.description)): error: expression nested more than \(Limits.maxExpressionDepth) deep (parentheses, calls, '+' and '*'); split it into statements"
    case .tooManyStatements(let count, let at):
      "\(MessageText.path(at.description)): error: the graph unrolls to \(count.map { "\($0)" } ?? "more than \(Int.max)") statements; vitc allows at most \(Limits.maxUnrolledStatements)"
    case .ir(let error):
      error.description
    }
  }
}
