/// Names a value of a graph: an index into `Graph.values`, never a reference.
public struct ValueID: Hashable, Comparable, Sendable, CustomStringConvertible {
  public var index: Int
  public init(_ index: Int) { self.index = index }
  public static func < (a: ValueID, b: ValueID) -> Bool { a.index < b.index }
  public var description: String { "%\(index)" }
}

/// Where a value comes from.
public enum ValueOrigin: Hashable, Sendable {
  /// An input of the graph (the image).
  case input
  /// A learned tensor bound from the weights by its name (timm's state-dict name).
  case parameter
  /// Result `index` of the op at `op` in `Graph.ops`.
  case result(op: Int, index: Int)
}

/// A value: one SSA definition with a type.
public struct Value: Hashable, Sendable {
  /// For inputs and op results, a name unique among them (`x`, `x.1`, ...); for parameters the
  /// weight tensor's name (`blocks.3.attn.qkv.weight`), unique among parameters.
  public var name: String
  public var type: TensorType
  public var origin: ValueOrigin
  /// Where the user wrote it, when it came from a file.
  public var location: SourceLocation?
}

/// What an op is for, when a pass says so: backends and profiles read it instead of guessing
/// from the kind.
public enum OpRole: Hashable, Sendable {
  /// Part of a token-pruning method's scoring and selection (InsertPruning marks every op it
  /// inserts, DynamicViT's predictor MLP included; the front end marks ops of the pruning kinds
  /// it reads). The C emitter gives them `_prune` stages, which `--bench` times apart.
  case pruningSelection
}

/// One operation: a kind, operands, attributes and results, and the transformer block it
/// belongs to (nil for the stem before block 0 and the head after the last block).
public struct Op: Hashable, Sendable {
  public var kind: OpKind
  public var operands: [ValueID]
  public var attributes: OpAttributes
  public var results: [ValueID]
  /// 0-based index of the transformer block this op is part of, so that a schedule can say
  /// "before block 6" (DynamicViT) or "inside block 3" (EViT).
  public var block: Int?
  public var location: SourceLocation?
  /// What the op is for, if a pass or the front end marked it; not printed (dumps are the same
  /// with or without it).
  public var role: OpRole? = nil
}

/// A model: inputs, parameters and ops in topological order over SSA values, and one output.
public struct Graph: Sendable {
  public var name: String
  /// Every value; `ValueID.index` indexes this array.
  public private(set) var values: [Value] = []
  /// The graph's inputs, in signature order.
  public private(set) var inputs: [ValueID] = []
  /// The learned tensors, in declaration order.
  public private(set) var parameters: [ValueID] = []
  /// Ops in execution (topological) order.
  public private(set) var ops: [Op] = []
  /// The value the graph returns (the logits); nil until set.
  public var output: ValueID?
  /// The declared type of the output, from the graph's signature.
  public var outputType: TensorType
  /// How an image becomes the input (`preprocess …` in the file; DeiT's if not stated).
  public var imageTransform: ImageTransform = .deit

  private var usedValueNames: Set<String> = []
  /// The suffix the next search for a base name starts from.
  private var nextSuffix: [String: Int] = [:]
  private var parameterIndex: [String: ValueID] = [:]

  public init(name: String, outputType: TensorType) {
    self.name = name
    self.outputType = outputType
  }

  public subscript(id: ValueID) -> Value { values[id.index] }

  /// The type of a value.
  public func type(of id: ValueID) -> TensorType { values[id.index].type }

  /// The parameter called `name`, if declared.
  public func parameter(named name: String) -> ValueID? { parameterIndex[name] }

  /// Adds an input of the graph.
  @discardableResult
  public mutating func addInput(
    name: String, type: TensorType, location: SourceLocation? = nil
  ) -> ValueID {
    let id = newValue(
      Value(name: uniqueName(name), type: type, origin: .input, location: location))
    inputs.append(id)
    return id
  }

  /// Declares a learned tensor. Declaring the same name twice is an error.
  @discardableResult
  public mutating func addParameter(
    name: String, type: TensorType, location: SourceLocation? = nil
  ) throws(IRError) -> ValueID {
    if let existing = parameterIndex[name] {
      throw .duplicateParameter(name, previous: values[existing.index].location, at: location)
    }
    if type.isDynamic { throw .dynamicParameter(name, type, at: location) }
    let id = newValue(Value(name: name, type: type, origin: .parameter, location: location))
    parameters.append(id)
    parameterIndex[name] = id
    return id
  }

  /// Appends an op after checking it against its kind's signature and inferring its result
  /// types. `resultNames` gives the base name of each result (made unique with `.1`, `.2`, …)
  /// and, for kinds with a variable number of results, how many there are.
  @discardableResult
  public mutating func append(
    _ kind: OpKind, _ operands: [ValueID], attributes: OpAttributes = .none,
    resultNames: [String]? = nil, block: Int? = nil, location: SourceLocation? = nil,
    role: OpRole? = nil
  ) throws(IRError) -> [ValueID] {
    let names = resultNames ?? Array(repeating: kind.rawValue, count: kind.signature.results ?? 1)
    let types = try ShapeInference.resultTypes(
      kind, operands: operands.map { type(of: $0) }, attributes: attributes,
      resultCount: names.count, at: location)
    let opIndex = ops.count
    var results: [ValueID] = []
    for (index, (name, type)) in zip(names, types).enumerated() {
      results.append(
        newValue(
          Value(
            name: uniqueName(name), type: type, origin: .result(op: opIndex, index: index),
            location: location)))
    }
    ops.append(
      Op(
        kind: kind, operands: operands, attributes: attributes, results: results, block: block,
        location: location, role: role))
    return results
  }

  /// The number of learned scalars (the "params" figure timm and the papers print).
  public var parameterCount: Int {
    // BatchNorm's running mean and variance are buffers, not learned: PyTorch's count (and the
    // papers') leaves them out.
    let buffers = Set(ops.filter { $0.kind == .batchnorm }.flatMap { $0.operands[3...4] })
    return parameters.reduce(0) { $0 + (buffers.contains($1) ? 0 : type(of: $1).boundCount) }
  }

  /// The blocks that ops name, ascending.
  public var blocks: [Int] {
    Array(Set(ops.compactMap(\.block))).sorted()
  }

  private mutating func newValue(_ value: Value) -> ValueID {
    values.append(value)
    return ValueID(values.count - 1)
  }

  /// Names are made unique by the first free suffix from where the last search for the same
  /// base stopped, so that N values of one name cost O(N), not O(N²) (a `block` loop of many
  /// iterations names the same values every time).
  private mutating func uniqueName(_ base: String) -> String {
    var name = base
    var suffix = nextSuffix[base] ?? 0
    if suffix > 0 { name = "\(base).\(suffix)" }
    defer { nextSuffix[base] = suffix }
    while usedValueNames.contains(name) {
      suffix += 1
      name = "\(base).\(suffix)"
    }
    usedValueNames.insert(name)
    return name
  }
}
