import VitIR

/// Recursive-descent parser from tokens to `GraphSyntax`. The grammar is in
/// docs/graph-format.md; every error says what was expected and what was found, where.
struct GraphParser {
  private var tokens: [Token]
  private var position = 0

  init(tokens: [Token]) { self.tokens = tokens }

  private var current: Token { tokens[position] }

  private mutating func advance() { if position < tokens.count - 1 { position += 1 } }

  private func isSymbol(_ symbol: String) -> Bool { current.kind == .symbol(symbol) }

  private func isKeyword(_ word: String) -> Bool { current.kind == .identifier(word) }

  private mutating func expectSymbol(_ symbol: String, _ context: String) throws(GraphError) {
    guard isSymbol(symbol) else {
      throw .expected("'\(symbol)' \(context)", found: current.quoted, at: current.location)
    }
    advance()
  }

  private mutating func expectKeyword(_ word: String, _ context: String) throws(GraphError) {
    guard isKeyword(word) else {
      throw .expected("'\(word)' \(context)", found: current.quoted, at: current.location)
    }
    advance()
  }

  private mutating func identifier(_ what: String) throws(GraphError) -> (String, SourceLocation) {
    guard case .identifier(let name) = current.kind else {
      throw .expected(what, found: current.quoted, at: current.location)
    }
    let location = current.location
    advance()
    return (name, location)
  }

  private mutating func integer(_ what: String) throws(GraphError) -> Int {
    guard case .integer(let value) = current.kind else {
      throw .expected(what, found: current.quoted, at: current.location)
    }
    advance()
    return value
  }

  /// `graph NAME(INPUT: TYPE, …) -> TYPE { STATEMENT* }`
  mutating func parseFile() throws(GraphError) -> GraphSyntax {
    try expectKeyword("graph", "at the start of the file")
    let (name, _) = try identifier("the graph's name after 'graph'")
    try expectSymbol("(", "after the graph's name")
    var inputs: [GraphSyntax.Input] = []
    repeat {
      if !inputs.isEmpty { advance() }
      let (inputName, location) = try identifier("an input name")
      try expectSymbol(":", "after the input name '\(MessageText.clean(inputName))'")
      inputs.append(.init(name: inputName, type: try type(), location: location))
    } while isSymbol(",")
    try expectSymbol(")", "after the graph's inputs")
    try expectSymbol("->", "before the graph's output type")
    let outputType = try type()
    try expectSymbol("{", "to open the graph's body")
    let transform = isKeyword("preprocess") ? try preprocess() : nil
    let body = try statements(insideBlock: false)
    let end = current.location
    try expectSymbol("}", "to close the graph's body")
    guard current.kind == .endOfFile else {
      throw .expected("end of file after the graph", found: current.quoted, at: current.location)
    }
    return GraphSyntax(name: name, inputs: inputs, outputType: outputType, imageTransform: transform, body: body, end: end)
  }

  /// `preprocess mean=M, std=S, crop_pct=F`: M and S one number for all three channels or a
  /// list of three; each setting optional (DeiT's by default), in any order.
  private mutating func preprocess() throws(GraphError) -> ImageTransform {
    advance()
    var transform = ImageTransform.deit
    var seen: Set<String> = []
    repeat {
      if !seen.isEmpty { advance() }
      let (setting, at) = try identifier("a preprocessing setting (mean, std or crop_pct)")
      guard ["mean", "std", "crop_pct"].contains(setting) else {
        throw .badPreprocess("unknown preprocessing setting '\(MessageText.clean(setting))' (settings: mean, std, crop_pct)", at: at)
      }
      guard seen.insert(setting).inserted else { throw .duplicateAttribute(setting, at: at) }
      try expectSymbol("=", "after '\(setting)'")
      let valueAt = current.location
      var values: [Double] = []
      if isSymbol("[") {
        advance()
        repeat {
          if !values.isEmpty { advance() }
          values.append(try number("a number in the list of '\(setting)'"))
        } while isSymbol(",")
        try expectSymbol("]", "after the list of '\(setting)'")
      } else {
        values.append(try number("a number or a list of three after '\(setting)='"))
      }
      switch setting {
      case "crop_pct":
        guard values.count == 1, values[0] >= Limits.minCropFraction, values[0] <= 1 else {
          throw .badPreprocess(
            "crop_pct must be one number in [\(formatReal(Limits.minCropFraction)), 1] (the resize is then at most \(Int(1 / Limits.minCropFraction))× the crop), found \(values.map(formatReal))",
            at: valueAt)
        }
        transform.cropFraction = values[0]
      default:
        guard values.count == 1 || values.count == 3 else {
          throw .badPreprocess("\(setting) takes one number or three (R, G, B), found \(values.count)", at: valueAt)
        }
        if setting == "std", let bad = values.first(where: { !(Float($0) > 0) || !Float($0).isFinite }) {
          throw .badPreprocess("std must be positive and finite as float32, found \(formatReal(bad))", at: valueAt)
        }
        if setting == "mean", let bad = values.first(where: { !Float($0).isFinite }) {
          throw .badPreprocess("mean must be finite as float32, found \(formatReal(bad))", at: valueAt)
        }
        let channels = values.count == 1 ? Array(repeating: values[0], count: 3) : values
        if setting == "mean" { transform.mean = channels } else { transform.std = channels }
      }
    } while isSymbol(",")
    return transform
  }

  /// −1 after consuming a leading '-', else 1.
  private mutating func leadingSign() -> Int {
    guard isSymbol("-") else { return 1 }
    advance()
    return -1
  }

  /// An integer or real, with an optional leading '-'.
  private mutating func number(_ what: String) throws(GraphError) -> Double {
    let sign = Double(leadingSign())
    switch current.kind {
    case .integer(let value):
      advance()
      return sign * Double(value)
    case .real(let value):
      advance()
      return sign * value
    default:
      throw .expected(what, found: current.quoted, at: current.location)
    }
  }

  /// `f32[3,224,224]` or `f32[n<=197,384]`.
  mutating func type() throws(GraphError) -> TensorType {
    let (name, location) = try identifier("a type such as 'f32[197,384]'")
    guard let dtype = DType(rawValue: name) else {
      throw .expected(
        "an element type (\(DType.allCases.map(\.rawValue).joined(separator: ", ")))",
        found: "'\(MessageText.clean(name))'", at: location)
    }
    try expectSymbol("[", "after the element type")
    var dims: [Dim] = []
    repeat {
      if !dims.isEmpty { advance() }
      switch current.kind {
      case .integer(let value) where value > 0:
        dims.append(.fixed(value))
        advance()
      case .identifier(let symbol):
        advance()
        try expectSymbol("<=", "and a bound after the dynamic dimension '\(MessageText.clean(symbol))'")
        let bound = try integer("the bound of '\(MessageText.clean(symbol))'")
        guard bound > 0 else {
          throw .expected("a positive bound", found: "'\(bound)'", at: current.location)
        }
        dims.append(.dynamic(symbol: TokenCount(spelling: symbol), bound: bound))
      default:
        throw .expected("a positive dimension or 'n<=BOUND'", found: current.quoted, at: current.location)
      }
    } while isSymbol(",")
    try expectSymbol("]", "after the dimensions")
    let type = TensorType(dims, dtype: dtype)
    do {
      try ShapeInference.checkSize(type, what: "the type \(type)", at: location)
    } catch {
      throw .ir(error)
    }
    return type
  }

  private mutating func statements(insideBlock: Bool) throws(GraphError) -> [Statement] {
    var body: [Statement] = []
    while !isSymbol("}") && current.kind != .endOfFile {
      body.append(try statement(insideBlock: insideBlock))
    }
    return body
  }

  private mutating func statement(insideBlock: Bool) throws(GraphError) -> Statement {
    let start = current.location
    if isKeyword("param") {
      advance()
      var names: [(name: String, location: SourceLocation)] = []
      repeat {
        if !names.isEmpty { advance() }
        guard case .parameter(let name) = current.kind else {
          throw .expected("a parameter name such as '@norm.weight'", found: current.quoted, at: current.location)
        }
        names.append((name, current.location))
        advance()
      } while isSymbol(",")
      try expectSymbol(":", "and a type after the parameter name")
      return .parameters(names, try type())
    }
    if isKeyword("block") {
      if insideBlock { throw .nestedBlock(at: start) }
      advance()
      var variable: String? = nil
      let range: Range<Int>
      if case .integer(let index) = current.kind {
        guard index < Limits.maxUnrolledStatements else {
          throw .badBlockRange(lower: index, upper: index, at: start)
        }
        advance()
        range = index..<(index + 1)
      } else {
        let (name, _) = try identifier("a block variable or a block number after 'block'")
        variable = name
        try expectKeyword("in", "after the block variable")
        let lower = try integer("the first block number")
        try expectSymbol("..<", "in the block range")
        let upper = try integer("the end of the block range")
        guard lower >= 0, upper > lower else {
          throw .badBlockRange(lower: lower, upper: upper, at: start)
        }
        range = lower..<upper
      }
      try expectSymbol("{", "to open the block")
      let body = try statements(insideBlock: true)
      try expectSymbol("}", "to close the block")
      return .block(variable: variable, range: range, body: body, at: start)
    }
    if isKeyword("return") {
      advance()
      return .output(try expression(), at: start)
    }
    if isKeyword("preprocess") {
      throw .badPreprocess("'preprocess' must be the first statement of the graph's body", at: start)
    }
    var targets: [Target] = []
    repeat {
      if !targets.isEmpty { advance() }
      let (name, location) = try identifier("a statement ('param', 'block', 'return' or NAME = …)")
      var declared: TensorType? = nil
      if isSymbol(":") {
        advance()
        declared = try type()
      }
      targets.append(Target(name: name, type: declared, location: location))
    } while isSymbol(",")
    try expectSymbol("=", "after '\(MessageText.clean(targets.map(\.name).joined(separator: ", ")))'")
    return .assign(targets, try expression())
  }

  /// How many expressions the parser is inside (it recurses once per parenthesis or call).
  private var nesting = 0

  /// `Limits.maxExpressionDepth` bounds both the parser's recursion and the height of the
  /// tree it builds (which the elaborator walks recursively), so neither overflows the stack.
  private func checkHeight(_ height: Int, _ at: SourceLocation) throws(GraphError) {
    if height > Limits.maxExpressionDepth { throw .tooDeep(at: at) }
  }

  /// expression := term ('+' term)*
  mutating func expression() throws(GraphError) -> Expression { try expressionWithHeight().0 }

  /// The expression and the height of its tree (`a + b + c` is left-deep: each `+` adds one).
  private mutating func expressionWithHeight() throws(GraphError) -> (Expression, Int) {
    nesting += 1
    defer { nesting -= 1 }
    try checkHeight(nesting, current.location)
    var (left, height) = try term()
    while isSymbol("+") {
      let at = current.location
      advance()
      let (right, rightHeight) = try term()
      height = max(height, rightHeight) + 1
      try checkHeight(height, at)
      left = .add(left, right, at: at)
    }
    return (left, height)
  }

  /// term := primary ('*' NUMBER)*
  private mutating func term() throws(GraphError) -> (Expression, Int) {
    var (left, height) = try primary()
    while isSymbol("*") {
      let at = current.location
      height += 1
      try checkHeight(height, at)
      advance()
      let factor: Double
      switch current.kind {
      case .real(let value): factor = value
      case .integer(let value): factor = Double(value)
      default:
        throw .expected("a number after '*' (only scaling by a constant is written with '*')", found: current.quoted, at: current.location)
      }
      advance()
      left = .scale(left, factor, at: at)
    }
    return (left, height)
  }

  /// primary := NAME | @PARAM | NAME '(' arguments ')' | '(' expression ')'
  private mutating func primary() throws(GraphError) -> (Expression, Int) {
    let at = current.location
    switch current.kind {
    case .parameter(let name):
      advance()
      return (.parameter(name, at: at), 1)
    case .identifier(let name):
      advance()
      guard isSymbol("(") else { return (.value(name, at: at), 1) }
      advance()
      var height = 1
      var operands: [Expression] = []
      var attributes: [AttributeSyntax] = []
      var attributeNames: Set<String> = []
      while !isSymbol(")") {
        if !operands.isEmpty || !attributes.isEmpty {
          try expectSymbol(",", "or ')' between the arguments of '\(MessageText.clean(name))'")
        }
        if case .identifier(let attribute) = current.kind, tokens[position + 1].kind == .symbol("=") {
          let attributeAt = current.location
          advance()
          advance()
          if !attributeNames.insert(attribute).inserted {
            throw .duplicateAttribute(attribute, at: attributeAt)
          }
          attributes.append(AttributeSyntax(name: attribute, value: try attributeValue(), location: attributeAt))
        } else {
          if !attributes.isEmpty {
            throw .expected("an attribute 'name=value' (operands come first)", found: current.quoted, at: current.location)
          }
          let (operand, operandHeight) = try expressionWithHeight()
          height = max(height, operandHeight + 1)
          try checkHeight(height, at)
          operands.append(operand)
        }
      }
      advance()
      return (.call(name, operands: operands, attributes: attributes, at: at), height)
    case .symbol("("):
      advance()
      let inner = try expressionWithHeight()
      try expectSymbol(")", "to close the parenthesis")
      return inner
    default:
      throw .expected("a value, '@parameter' or a call", found: current.quoted, at: at)
    }
  }

  /// `12`, `-1e-6`, `0.125`, `[1,384]` or a word (`int8`).
  private mutating func attributeValue() throws(GraphError) -> Attribute {
    let sign = leadingSign()
    switch current.kind {
    case .identifier(let word) where sign == 1:
      advance()
      return .word(word)
    case .integer(let value):
      advance()
      return .int(sign * value)
    case .real(let value):
      advance()
      return .real(Double(sign) * value)
    case .symbol("[") where sign == 1:
      advance()
      var values: [Int] = []
      while !isSymbol("]") {
        if !values.isEmpty { try expectSymbol(",", "or ']' in the list") }
        let itemSign = leadingSign()
        values.append(itemSign * (try integer("an integer in the list")))
      }
      advance()
      return .ints(values)
    default:
      throw .expected("an attribute value (a number, a list such as [1,384] or a word such as int8)", found: current.quoted, at: current.location)
    }
  }
}
