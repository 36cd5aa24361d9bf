import Foundation
import VitIR

/// Reads `.graph` files into verified IR.
public enum GraphLoader {
  /// Reads, parses, expands and verifies the graph at `path` (as the user wrote it; messages
  /// quote it unchanged).
  public static func load(path: String) throws(GraphError) -> Graph {
    guard FileManager.default.fileExists(atPath: path) else {
      throw .unreadable(path: path, reason: "no such file")
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw .unreadable(path: path, reason: "permission denied or not a regular file")
    }
    guard let source = String(data: data, encoding: .utf8) else {
      throw .unreadable(path: path, reason: "not UTF-8 text")
    }
    return try parse(source, file: path)
  }

  /// Parses `.graph` text; `file` names it in messages.
  public static func parse(_ source: String, file: String) throws(GraphError) -> Graph {
    var lexer = GraphLexer(source: source, file: file)
    var parser = GraphParser(tokens: try lexer.tokenize())
    let syntax = try parser.parseFile()
    var elaborator = GraphElaborator(syntax: syntax)
    let graph = try elaborator.run()
    do {
      try Verifier.check(graph)
    } catch {
      throw .ir(error)
    }
    return graph
  }
}

/// Expands `block` loops, substitutes `{i}` in parameter names, resolves names, flattens nested
/// expressions into SSA ops and checks every op's shapes as it is appended.
struct GraphElaborator {
  let syntax: GraphSyntax
  private var graph: Graph
  /// The value each name currently holds (a later assignment shadows an earlier one).
  private var scope: [String: ValueID] = [:]
  /// The loop variable and its value while inside `block i in …`.
  private var loop: (variable: String, value: Int)? = nil
  private var block: Int? = nil

  init(syntax: GraphSyntax) {
    self.syntax = syntax
    self.graph = Graph(name: syntax.name, outputType: syntax.outputType)
    if let transform = syntax.imageTransform { graph.imageTransform = transform }
  }

  mutating func run() throws(GraphError) -> Graph {
    for input in syntax.inputs {
      scope[input.name] = graph.addInput(name: input.name, type: input.type, location: input.location)
    }
    if let image = syntax.inputs.first, image.type.rank == 3, let side = image.type.dims.last?.bound {
      let resize = graph.imageTransform.resizeSize(crop: side)
      guard resize <= Limits.maxResizeSide else {
        throw .badPreprocess(
          "an image for input '\(MessageText.clean(image.name))' is resized to \(resize) pixels on its shorter side (floor(\(side) / crop_pct \(formatReal(graph.imageTransform.cropFraction)))); vitc allows at most \(Limits.maxResizeSide)",
          at: image.location)
      }
    }
    guard case .output(_, _)? = syntax.body.last else {
      if let misplaced = syntax.body.first(where: { if case .output = $0 { true } else { false } }),
        case .output(_, let at) = misplaced
      {
        throw .returnNotLast(at: at)
      }
      throw .missingReturn(at: syntax.end)
    }
    try checkUnrolledSize()
    for (index, statement) in syntax.body.enumerated() {
      if case .output(let expression, let at) = statement {
        guard index == syntax.body.count - 1 else { throw .returnNotLast(at: at) }
        let output = try value(of: expression, name: "output")
        guard graph.type(of: output) == syntax.outputType else {
          throw .ir(.outputType(declared: syntax.outputType, found: graph.type(of: output), at: at))
        }
        graph.output = output
      } else {
        try run(statement)
      }
    }
    return graph
  }

  /// Refuses, before expanding anything, a graph whose `block` loops unroll to more than
  /// `Limits.maxUnrolledStatements` statements (elaboration is linear in that number).
  private func checkUnrolledSize() throws(GraphError) {
    var total = 0
    for statement in syntax.body {
      var count = 1
      if case .block(_, let range, let body, let at) = statement {
        let (product, overflow) = range.count.multipliedReportingOverflow(by: max(body.count, 1))
        guard !overflow, product <= Limits.maxUnrolledStatements else {
          throw .tooManyStatements(overflow ? nil : product, at: at)
        }
        count = product
      }
      total += count
      if total > Limits.maxUnrolledStatements {
        throw .tooManyStatements(total, at: statement.location)
      }
    }
  }

  private mutating func run(_ statement: Statement) throws(GraphError) {
    switch statement {
    case .parameters(let names, let type):
      for (name, location) in names {
        let resolved = try substitute(name, at: location)
        do {
          try graph.addParameter(name: resolved, type: type, location: location)
        } catch {
          throw .ir(error)
        }
      }
    case .assign(let targets, let expression):
      let results: [ValueID]
      if targets.count > 1 {
        guard case .call(let name, let operands, let attributes, let at) = expression else {
          throw .multipleTargets(count: targets.count, at: targets[1].location)
        }
        results = try call(
          name, operands, attributes, at: at, resultNames: targets.map(\.name))
      } else {
        results = [try value(of: expression, name: targets[0].name)]
      }
      for (target, result) in zip(targets, results) {
        if let declared = target.type, declared != graph.type(of: result) {
          throw .ir(
            .annotation(target.name, declared: declared, inferred: graph.type(of: result), at: target.location))
        }
        scope[target.name] = result
      }
    case .block(let variable, let range, let body, _):
      for index in range {
        loop = variable.map { ($0, index) }
        block = index
        for inner in body { try run(inner) }
      }
      loop = nil
      block = nil
    case .output(_, let at):
      throw .returnNotLast(at: at)
    }
  }

  /// Emits the ops for an expression; the last one's result is named `name`.
  private mutating func value(of expression: Expression, name: String) throws(GraphError) -> ValueID {
    switch expression {
    case .value(let valueName, let at):
      guard let id = scope[valueName] else { throw .undefinedValue(valueName, at: at) }
      return id
    case .parameter(let parameterName, let at):
      let resolved = try substitute(parameterName, at: at)
      guard let id = graph.parameter(named: resolved) else {
        throw .undefinedParameter(resolved, at: at)
      }
      return id
    case .call(let kind, let operands, let attributes, let at):
      return try call(kind, operands, attributes, at: at, resultNames: [name])[0]
    case .add(let left, let right, let at):
      let a = try value(of: left, name: Self.temporaryName(left))
      let b = try value(of: right, name: Self.temporaryName(right))
      return try append(.add, [a, b], .none, at: at, resultNames: [name])[0]
    case .scale(let inner, let factor, let at):
      let x = try value(of: inner, name: Self.temporaryName(inner))
      return try append(.scale, [x], .scale(factor: factor), at: at, resultNames: [name])[0]
    }
  }

  private mutating func call(
    _ name: String, _ operands: [Expression], _ attributes: [AttributeSyntax], at: SourceLocation,
    resultNames: [String]
  ) throws(GraphError) -> [ValueID] {
    guard let kind = OpKind(rawValue: name) else {
      throw .unknownOp(name, suggestion: Self.closestOp(to: name), at: at)
    }
    var ids: [ValueID] = []
    for operand in operands {
      ids.append(try value(of: operand, name: Self.temporaryName(operand)))
    }
    var values: [String: Attribute] = [:]
    for attribute in attributes {
      // An integer literal is also a real number (`factor=1`).
      let wanted = kind.signature.attributes.first(where: { $0.name == attribute.name })?.kind
      if wanted == .real, case .int(let integer) = attribute.value {
        values[attribute.name] = .real(Double(integer))
      } else {
        values[attribute.name] = attribute.value
      }
    }
    let typed: OpAttributes
    do {
      try ShapeInference.checkArity(kind, operandCount: ids.count, resultCount: resultNames.count, at: at)
      typed = try OpAttributes(kind: kind, named: values, at: at)
    } catch {
      throw .ir(error)
    }
    return try append(kind, ids, typed, at: at, resultNames: resultNames)
  }

  private mutating func append(
    _ kind: OpKind, _ operands: [ValueID], _ attributes: OpAttributes, at: SourceLocation,
    resultNames: [String]
  ) throws(GraphError) -> [ValueID] {
    do {
      // Text does not carry roles: ops of the pruning kinds are marked as InsertPruning marks them.
      return try graph.append(
        kind, operands, attributes: attributes, resultNames: resultNames, block: block,
        location: at, role: kind.isTokenPruning ? .pruningSelection : nil)
    } catch {
      throw .ir(error)
    }
  }

  /// Temporaries are named after the op that makes them (`linear`, `linear.1`, …).
  private static func temporaryName(_ expression: Expression) -> String {
    switch expression {
    case .call(let name, _, _, _): name
    case .add: OpKind.add.rawValue
    case .scale: OpKind.scale.rawValue
    case .value(let name, _), .parameter(let name, _): name
    }
  }

  /// Replaces `{i}` with the loop variable's value.
  private func substitute(_ name: String, at location: SourceLocation) throws(GraphError) -> String {
    guard name.contains("{") || name.contains("}") else { return name }
    var result = ""
    var rest = Substring(name)
    while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
      result += rest[..<open]
      guard rest[open] == "{", let close = rest[open...].firstIndex(of: "}") else {
        throw .expected("'{variable}' in the parameter name", found: "'@\(name)'", at: location)
      }
      let variable = String(rest[rest.index(after: open)..<close])
      guard let loop, loop.variable == variable else {
        throw .unknownLoopVariable(variable, in: name, at: location)
      }
      result += String(loop.value)
      rest = rest[rest.index(after: close)...]
    }
    return result + rest
  }

  /// The op kind nearest to a misspelled name (edit distance ≤ 3), for the error message.
  static func closestOp(to name: String) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
      var previous = Array(0...b.count)
      for (i, x) in a.enumerated() {
        var row = [i + 1]
        for (j, y) in b.enumerated() {
          row.append(min(previous[j + 1] + 1, row[j] + 1, previous[j] + (x == y ? 0 : 1)))
        }
        previous = row
      }
      return previous[b.count]
    }
    let scored = OpKind.allCases.map { ($0.rawValue, distance(Array(name), Array($0.rawValue))) }
    guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 3 else { return nil }
    return best.0
  }
}
