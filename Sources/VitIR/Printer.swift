/// Prints a graph as `.graph` text that the front end parses back to the same graph: every
/// statement flat, every value typed, the ops of each transformer block inside `block B { … }`.
/// The output is deterministic: no addresses, paths or times.
public enum Printer {
  /// `annotate` may add a trailing comment to an op's line (the memory plan does).
  public static func print(
    _ graph: Graph, header: String? = nil, annotate: (Op) -> String? = { _ in nil }
  ) -> String {
    var out = ""
    if let header {
      for line in header.split(separator: "\n", omittingEmptySubsequences: false) {
        out += "# \(line)\n"
      }
    }
    let inputs = graph.inputs.map { "\(graph[$0].name): \(graph[$0].type)" }
    out += "graph \(graph.name)(\(inputs.joined(separator: ", "))) -> \(graph.outputType) {\n"
    if graph.imageTransform != .deit { out += "  \(graph.imageTransform.statement)\n" }
    for parameter in graph.parameters {
      out += "  param @\(graph[parameter].name): \(graph[parameter].type)\n"
    }
    var openBlock: Int? = nil
    for op in graph.ops {
      if op.block != openBlock {
        if openBlock != nil { out += "  }\n" }
        if let block = op.block { out += "  block \(block) {\n" }
        openBlock = op.block
      }
      let indent = openBlock == nil ? "  " : "    "
      out += indent + statement(op, in: graph) + (annotate(op).map { "  # \($0)" } ?? "") + "\n"
    }
    if openBlock != nil { out += "  }\n" }
    if let output = graph.output { out += "  return \(graph[output].name)\n" }
    out += "}\n"
    return out
  }

  /// `name: type, … = kind(operands, attr=value, …)`.
  public static func statement(_ op: Op, in graph: Graph) -> String {
    let targets = op.results.map { "\(graph[$0].name): \(graph[$0].type)" }
    var arguments = op.operands.map { operand in
      graph[operand].origin == .parameter ? "@\(graph[operand].name)" : graph[operand].name
    }
    for (name, value) in op.attributes.named { arguments.append("\(name)=\(value)") }
    return targets.joined(separator: ", ") + " = \(op.kind.rawValue)("
      + arguments.joined(separator: ", ") + ")"
  }
}
