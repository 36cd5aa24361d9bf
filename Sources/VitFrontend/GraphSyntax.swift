import VitIR

/// The syntax tree of a `.graph` file, before blocks are expanded and names resolved.
struct GraphSyntax {
  struct Input {
    var name: String
    var type: TensorType
    var location: SourceLocation
  }

  var name: String
  var inputs: [Input]
  var outputType: TensorType
  /// `preprocess …` at the top of the body, if given.
  var imageTransform: ImageTransform?
  var body: [Statement]
  /// The closing `}` of the graph, for "no return" messages.
  var end: SourceLocation
}

/// A named attribute in a call: `eps=1e-6`.
struct AttributeSyntax {
  var name: String
  var value: Attribute
  var location: SourceLocation
}

indirect enum Expression {
  /// A value by name.
  case value(String, at: SourceLocation)
  /// `@name`, possibly with `{i}` placeholders.
  case parameter(String, at: SourceLocation)
  /// `kind(operands…, attr=value…)`.
  case call(String, operands: [Expression], attributes: [AttributeSyntax], at: SourceLocation)
  /// `a + b`.
  case add(Expression, Expression, at: SourceLocation)
  /// `x * 0.125`.
  case scale(Expression, Double, at: SourceLocation)

  var location: SourceLocation {
    switch self {
    case .value(_, let at), .parameter(_, let at), .call(_, _, _, let at), .add(_, _, let at),
      .scale(_, _, let at):
      at
    }
  }
}

struct Target {
  var name: String
  var type: TensorType?
  var location: SourceLocation
}

enum Statement {
  /// `param @a, @b: f32[384]`
  case parameters([(name: String, location: SourceLocation)], TensorType)
  /// `x: f32[197,384] = expression` or `q, k, v = split_heads(…)`
  case assign([Target], Expression)
  /// `block i in 0..<12 { … }` (variable and range) or `block 3 { … }` (range 3..<4, no variable).
  case block(variable: String?, range: Range<Int>, body: [Statement], at: SourceLocation)
  /// `return expression`
  case output(Expression, at: SourceLocation)

  /// Where the statement starts, for messages about it as a whole.
  var location: SourceLocation {
    switch self {
    case .parameters(let names, _): names.first?.location ?? SourceLocation(file: "", line: 0, column: 0)
    case .assign(let targets, _): targets.first?.location ?? SourceLocation(file: "", line: 0, column: 0)
    case .block(_, _, _, let at), .output(_, let at): at
    }
  }
}
