import Foundation
import VitIR

/// Errors a caller can make when running the interpreter (the graph itself was verified).
public enum InterpreterError: Error, Equatable, CustomStringConvertible {
  /// The number of input tensors differs from the graph's inputs.
  case inputCount(expected: Int, found: Int)
  /// An input's concrete shape is not an instance of the input's type.
  case inputShape(name: String, expected: TensorType, found: [Int])
  /// A parameter has no tensor bound to it.
  case unboundParameter(String)
  /// A bound tensor's shape differs from the declaration.
  case parameterShape(String, expected: TensorType, found: [Int])

  public var description: String {
    switch self {
    case .inputCount(let expected, let found):
      "error: the graph takes \(expected) input\(expected == 1 ? "" : "s"), \(found) given"
    case .inputShape(let name, let expected, let found):
      "error: input '\(name)' has shape \(formatShape(found)), expected \(expected)"
    case .unboundParameter(let name):
      "error: parameter '@\(name)' has no tensor"
    case .parameterShape(let name, let expected, let found):
      "error: parameter '@\(name)' is bound to a tensor of shape \(formatShape(found)), expected \(expected)"
    }
  }
}

/// The reference interpreter: executes any stage of the IR with plain loops that follow
/// SEMANTICS.md §1.3 (biased-variance LayerNorm, erf GELU, max-subtracted softmax), storing
/// float32 and accumulating in double. Slow on purpose: it is what the fast paths are held to.
public struct Interpreter: Sendable {
  public let graph: Graph
  /// Parameter tensors by value, checked against their declarations.
  private let parameters: [ValueID: Tensor]
  /// For each op, the values whose last use it is (freed right after it runs).
  private let releaseAfter: [[ValueID]]

  /// Binds `weights` (by parameter name) to the graph's parameters.
  public init(graph: Graph, weights: [String: Tensor]) throws(InterpreterError) {
    var bound: [ValueID: Tensor] = [:]
    for parameter in graph.parameters {
      let value = graph[parameter]
      guard let tensor = weights[value.name] else { throw .unboundParameter(value.name) }
      guard tensor.shape == value.type.fixedShape else {
        throw .parameterShape(value.name, expected: value.type, found: tensor.shape)
      }
      bound[parameter] = tensor
    }
    self.graph = graph
    self.parameters = bound
    var lastUse: [ValueID: Int] = [:]
    for (index, op) in graph.ops.enumerated() {
      for operand in op.operands where graph[operand].origin != .parameter {
        lastUse[operand] = index
      }
    }
    var release = Array(repeating: [ValueID](), count: graph.ops.count)
    for (value, index) in lastUse where value != graph.output {
      release[index].append(value)
    }
    self.releaseAfter = release
  }

  /// Runs the graph and returns its output. `observe` is called before each op runs (for
  /// progress displays).
  public func run(_ inputs: [Tensor], observe: (Op) -> Void = { _ in }) throws(InterpreterError) -> Tensor {
    try run(inputs, observe: observe, inspect: { _, _ in })
  }

  /// Runs the graph and returns its output with the trace stages its `trace_stage` ops
  /// recorded (docs/trace-format.md).
  public func runTraced(_ inputs: [Tensor], observe: (Op) -> Void = { _ in }) throws(InterpreterError) -> (
    logits: Tensor, stages: [Trace.Stage]
  ) {
    var stages: [Trace.Stage] = []
    let logits = try run(inputs, observe: observe, stages: &stages, inspect: { _, _ in })
    return (logits, stages)
  }

  /// Runs the graph, showing `inspect` every op result as it is computed (for tests and traces
  /// that need intermediate values, such as attention maps).
  public func run(
    _ inputs: [Tensor], observe: (Op) -> Void = { _ in }, inspect: (ValueID, Tensor) -> Void
  ) throws(InterpreterError) -> Tensor {
    var stages: [Trace.Stage] = []
    return try run(inputs, observe: observe, stages: &stages, inspect: inspect)
  }

  /// Runs the graph, showing `inspect` every op result and collecting the trace stages.
  public func runTraced(
    _ inputs: [Tensor], observe: (Op) -> Void = { _ in }, inspect: (ValueID, Tensor) -> Void,
    stages: inout [Trace.Stage]
  ) throws(InterpreterError) -> Tensor {
    try run(inputs, observe: observe, stages: &stages, inspect: inspect)
  }

  func run(
    _ inputs: [Tensor], observe: (Op) -> Void, stages: inout [Trace.Stage], inspect: (ValueID, Tensor) -> Void
  ) throws(InterpreterError) -> Tensor {
    guard inputs.count == graph.inputs.count else {
      throw .inputCount(expected: graph.inputs.count, found: inputs.count)
    }
    var symbols: [TokenCount: Int] = [:]
    var values = [Tensor?](repeating: nil, count: graph.values.count)
    for (id, tensor) in zip(graph.inputs, inputs) {
      guard graph[id].type.bind(tensor.shape, into: &symbols) else {
        throw .inputShape(name: graph[id].name, expected: graph[id].type, found: tensor.shape)
      }
      values[id.index] = tensor
    }
    for (index, op) in graph.ops.enumerated() {
      observe(op)
      let operands = op.operands.map { id in parameters[id] ?? values[id.index]! }
      let results = Self.execute(op, operands, resultCount: op.results.count)
      if case .traceStage(let block) = op.attributes.base {
        stages.append(
          PruningKernels.traceStage(
            block: block, rows: operands[0].shape[0], prefix: op.attributes.prefix, owner: operands[1]))
      }
      for (id, result) in zip(op.results, results) {
        inspect(id, result)
        values[id.index] = result
      }
      for id in releaseAfter[index] { values[id.index] = nil }
    }
    return values[graph.output!.index]!
  }

  /// One op on concrete tensors.
  static func execute(_ op: Op, _ x: [Tensor], resultCount: Int) -> [Tensor] {
    /// The op's product `x·Wᵀ + b` in its precision (its epilogue follows in float).
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
      switch op.attributes.precision {
      case .f32: Kernels.linear(x, weight: weight, bias: bias)
      case .int8: Kernels.linearInt8(x, weight: weight, bias: bias)
      case .bf16:
        // Both operands rounded; their products are exact, summed in double like f32's.
        Kernels.linear(
          Tensor(shape: x.shape, scalars: x.scalars.map(BFloat16.round)),
          weight: Tensor(shape: weight.shape, scalars: weight.scalars.map(BFloat16.round)), bias: bias)
      }
    }
    let prefix = op.attributes.prefix  // rows before the patch tokens (ops that read token rows)
    switch op.kind {
    case .patchEmbed:
      guard case .patchEmbed(let patch) = op.attributes else { op.attributesMismatch() }
      return [Kernels.patchEmbed(x[0], weight: x[1], bias: x[2], patch: patch)]
    case .reshape:
      guard case .reshape(let shape) = op.attributes else { op.attributesMismatch() }
      return [Tensor(shape: shape, scalars: x[0].scalars)]
    case .concat:
      return [Tensor(shape: [x[0].shape[0] + x[1].shape[0], x[0].shape[1]], scalars: x[0].scalars + x[1].scalars)]
    case .add: return [Tensor(shape: x[0].shape, scalars: zip(x[0].scalars, x[1].scalars).map { $0 + $1 })]
    case .scale:
      guard case .scale(let factor) = op.attributes else { op.attributesMismatch() }
      return [Tensor(shape: x[0].shape, scalars: x[0].scalars.map { Float(Double($0) * factor) })]
    case .layernorm:
      guard case .layernorm(let eps) = op.attributes else { op.attributesMismatch() }
      return [Kernels.layerNorm(x[0], weight: x[1], bias: x[2], eps: eps)]
    case .linear: return [linear(x[0], weight: x[1], bias: x.count > 2 ? x[2] : nil)]
    case .gelu: return [Tensor(shape: x[0].shape, scalars: x[0].scalars.map(Kernels.gelu))]
    case .softmax: return [Kernels.softmax(x[0])]
    case .splitHeads:
      guard case .heads(let heads) = op.attributes else { op.attributesMismatch() }
      return Kernels.splitHeads(x[0], heads: heads, parts: resultCount)
    case .transpose: return [Kernels.transpose(x[0])]
    case .matmul: return [Kernels.matmul(x[0], x[1])]
    case .mergeHeads: return [Kernels.mergeHeads(x[0])]
    case .attention:
      guard case .attention(let heads, let scale) = op.attributes else { op.attributesMismatch() }
      return [Kernels.attention(x[0], heads: heads, scale: scale, size: x.count > 1 ? x[1] : nil)]
    case .patchTokens: return [PruningKernels.patchTokens(x[0], prefix: prefix)]
    case .dyvitMix: return [PruningKernels.dyvitMix(x[0])]
    case .keepScore: return [PruningKernels.keepScore(x[0])]
    case .clsAttention:
      guard case .attention(let heads, let scale) = op.attributes.base else { op.attributesMismatch() }
      return [PruningKernels.clsAttention(x[0], heads: heads, scale: scale, prefix: prefix)]
    case .asvitScores:
      guard case .attention(let heads, let scale) = op.attributes.base else { op.attributesMismatch() }
      return [PruningKernels.asvitScores(x[0], context: x[1], heads: heads, scale: scale, prefix: prefix)]
    case .tomeMetric:
      guard case .heads(let heads) = op.attributes else { op.attributesMismatch() }
      return [PruningKernels.tomeMetric(x[0], heads: heads)]
    case .topkKeep:
      guard case .topkKeep(let k) = op.attributes else { op.attributesMismatch() }
      return [PruningKernels.topkKeep(x[0], k: k)]
    case .thresholdKeep:
      guard case .thresholdKeep(let threshold, _) = op.attributes else { op.attributesMismatch() }
      return [PruningKernels.thresholdKeep(x[0], threshold: threshold)]
    case .patchOwner:
      guard case .patchOwner(let patches) = op.attributes.base else { op.attributesMismatch() }
      return [Tensor(shape: [patches], scalars: (0..<patches).map { Float(prefix + $0) })]
    case .unitSizes: return [Tensor(shape: [x[0].shape[0]], scalars: [Float](repeating: 1, count: x[0].shape[0]))]
    case .gatherTokens: return PruningKernels.gatherTokens(x[0], keep: x[1], owner: x[2], fuseScores: nil, prefix: prefix)
    case .gatherFuseTokens:
      return PruningKernels.gatherTokens(x[0], keep: x[1], owner: x[3], fuseScores: x[2], prefix: prefix)
    case .batMerge:
      guard case .batMerge(let k, let clusters, let pairs) = op.attributes.base else { op.attributesMismatch() }
      return PruningKernels.batMerge(
        x[0], scores: x[1], owner: x[2], k: k, clusters: clusters, pairs: pairs, prefix: prefix)
    case .bipartiteMerge:
      guard case .bipartiteMerge(let r) = op.attributes.base else { op.attributesMismatch() }
      return PruningKernels.bipartiteMerge(x[0], metric: x[1], size: x[2], owner: x[3], r: r, prefix: prefix)
    case .traceStage: return [x[1]]
    case .linearGelu:
      let y = linear(x[0], weight: x[1], bias: x[2])
      return [Tensor(shape: y.shape, scalars: y.scalars.map(Kernels.gelu))]
    case .linearAdd:
      let y = linear(x[0], weight: x[1], bias: x[2])
      return [Tensor(shape: y.shape, scalars: zip(x[3].scalars, y.scalars).map { $0 + $1 })]
    case .conv2d:
      guard case .conv2d(let stride, let pad) = op.attributes else { op.attributesMismatch() }
      return [LVViTKernels.conv2d(x[0], weight: x[1], bias: x.count > 2 ? x[2] : nil, stride: stride, pad: pad)]
    case .batchnorm:
      guard case .batchnorm(let eps) = op.attributes else { op.attributesMismatch() }
      return [LVViTKernels.batchnorm(x[0], weight: x[1], bias: x[2], mean: x[3], variance: x[4], eps: eps)]
    case .relu: return [LVViTKernels.relu(x[0])]
    case .auxHeadMax: return [LVViTKernels.auxHeadMax(x[0], weight: x[1], bias: x[2])]
    case .linearScaleAdd:
      let y = linear(x[0], weight: x[1], bias: x[2])
      let (gamma, width) = (x[3].scalars, x[3].shape[0])
      return [Tensor(shape: y.shape, scalars: y.scalars.enumerated().map { x[4].scalars[$0] + $1 * gamma[$0 % width] })]
    case .channelScale:
      let width = x[1].shape[0]
      let gamma = x[1].scalars
      return [Tensor(shape: x[0].shape, scalars: x[0].scalars.enumerated().map { $1 * gamma[$0 % width] })]
    case .meanTokens:
      let (n, width) = (x[0].shape[0], x[0].shape[1])
      var sum = [Double](repeating: 0, count: width)
      for t in prefix..<n { for j in 0..<width { sum[j] += Double(x[0].scalars[t * width + j]) } }
      return [Tensor(shape: [width], scalars: sum.map { Float($0 / Double(n - prefix)) })]
    case .row:
      let width = x[0].shape[1]
      guard case .row(let index) = op.attributes else { op.attributesMismatch() }
      let start = index * width
      return [Tensor(shape: [width], scalars: Array(x[0].scalars[start..<start + width]))]
    }
  }
}
