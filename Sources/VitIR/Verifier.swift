/// Checks the invariants every stage of the IR must keep. It runs after parsing and after
/// every pass in debug builds and tests; a failure is a bug in vitc, not in the user's model.
public enum Verifier {
  public static func check(_ graph: Graph) throws(IRError) {
    var defined = Set<ValueID>()
    for input in graph.inputs {
      guard graph[input].origin == .input else { throw .invalidGraph("input \(input) is not an input value") }
      defined.insert(input)
    }
    for parameter in graph.parameters {
      guard graph[parameter].origin == .parameter else {
        throw .invalidGraph("parameter \(parameter) is not a parameter value")
      }
      defined.insert(parameter)
    }
    var lastBlock = Int.min
    for (index, op) in graph.ops.enumerated() {
      for operand in op.operands {
        guard operand.index >= 0, operand.index < graph.values.count, defined.contains(operand) else {
          throw .invalidGraph("op \(index) '\(op.kind.rawValue)' uses \(operand) before it is defined")
        }
      }
      let types = try ShapeInference.resultTypes(
        op.kind, operands: op.operands.map { graph.type(of: $0) }, attributes: op.attributes,
        resultCount: op.results.count, at: op.location)
      for (position, (result, type)) in zip(op.results, types).enumerated() {
        guard graph[result].origin == .result(op: index, index: position) else {
          throw .invalidGraph("op \(index) result \(position) (\(result)) has a wrong origin")
        }
        guard graph[result].type == type else {
          throw .invalidGraph(
            "op \(index) result \(graph[result].name) has type \(graph[result].type), rules give \(type)")
        }
        guard defined.insert(result).inserted else {
          throw .invalidGraph("\(result) is defined twice")
        }
      }
      if let block = op.block {
        guard block >= lastBlock else {
          throw .invalidGraph("op \(index) of block \(block) comes after an op of block \(lastBlock)")
        }
        lastBlock = block
      }
    }
    guard let output = graph.output, defined.contains(output) else {
      throw .invalidGraph("the graph has no defined output")
    }
    guard graph.type(of: output) == graph.outputType else {
      throw .outputType(declared: graph.outputType, found: graph.type(of: output), at: nil)
    }
  }
}
