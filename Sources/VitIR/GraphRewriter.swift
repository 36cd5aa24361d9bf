/// Builds a new graph from an old one op by op: passes copy the ops they keep and append new
/// ones in place of those they replace. Values of the old graph are mapped to the new one;
/// kept values keep their names, so dumps before and after a pass line up.
public struct GraphRewriter {
  public let source: Graph
  public private(set) var result: Graph
  private var mapping: [ValueID: ValueID] = [:]

  public init(_ source: Graph) {
    self.source = source
    var result = Graph(name: source.name, outputType: source.outputType)
    result.imageTransform = source.imageTransform
    for input in source.inputs {
      mapping[input] = result.addInput(name: source[input].name, type: source[input].type, location: source[input].location)
    }
    for parameter in source.parameters {
      // Names were unique and static in the source, so this cannot fail.
      mapping[parameter] = try! result.addParameter(
        name: source[parameter].name, type: source[parameter].type, location: source[parameter].location)
    }
    self.result = result
  }

  /// The new value standing for an old one.
  public func mapped(_ id: ValueID) -> ValueID {
    guard let new = mapping[id] else { preconditionFailure("\(id) has not been rewritten yet") }
    return new
  }

  /// Copies an op of the source unchanged, its role included.
  public mutating func copy(_ op: Op) throws(IRError) {
    let results = try result.append(
      op.kind, op.operands.map(mapped), attributes: op.attributes,
      resultNames: op.results.map { source[$0].name }, block: op.block, location: op.location, role: op.role)
    for (old, new) in zip(op.results, results) { mapping[old] = new }
  }

  /// Appends a new op whose operands are values of the source, standing for the source value
  /// `replacing` (it takes its name).
  @discardableResult
  public mutating func append(
    _ kind: OpKind, _ operands: [ValueID], attributes: OpAttributes = .none,
    replacing old: ValueID, block: Int?, location: SourceLocation?, role: OpRole? = nil
  ) throws(IRError) -> ValueID {
    let new = try result.append(
      kind, operands.map(mapped), attributes: attributes, resultNames: [source[old].name],
      block: block, location: location, role: role)[0]
    mapping[old] = new
    return new
  }

  /// Appends a new op whose operands are values of the result graph (ops a pass invents, such
  /// as a pruning stage's). Returns the new results.
  @discardableResult
  public mutating func emit(
    _ kind: OpKind, _ operands: [ValueID], attributes: OpAttributes = .none,
    names: [String], block: Int?, location: SourceLocation?, role: OpRole? = nil
  ) throws(IRError) -> [ValueID] {
    try result.append(
      kind, operands, attributes: attributes, resultNames: names, block: block, location: location, role: role)
  }

  /// Declares a parameter the pass needs (a predictor's weights) in the result graph.
  public mutating func addParameter(name: String, type: TensorType) throws(IRError) -> ValueID {
    if let existing = result.parameter(named: name) {
      guard result.type(of: existing) == type else {
        throw .duplicateParameter(name, previous: result[existing].location, at: nil)
      }
      return existing
    }
    return try result.addParameter(name: name, type: type)
  }

  /// From now on, uses of the source value `old` read the result value `new` (a pruned
  /// sequence standing in for the one it was computed from).
  public mutating func remap(_ old: ValueID, to new: ValueID) {
    mapping[old] = new
  }

  /// The rewritten graph, with the source's output mapped.
  public mutating func finish() -> Graph {
    result.output = source.output.map(mapped)
    return result
  }
}

extension Graph {
  /// How many times each value is used as an operand (the output counts as a use).
  public var useCounts: [ValueID: Int] {
    var counts: [ValueID: Int] = [:]
    for op in ops { for operand in op.operands { counts[operand, default: 0] += 1 } }
    if let output { counts[output, default: 0] += 1 }
    return counts
  }

  /// The op that defines a value, if it is an op result.
  public func definingOp(_ id: ValueID) -> Op? {
    if case .result(let op, _) = self[id].origin { return ops[op] }
    return nil
  }
}
