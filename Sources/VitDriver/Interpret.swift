import Foundation
import VitFrontend
import VitIR
import VitInterpreter

/// One run of the reference interpreter on one input.
public struct InterpretedRun: Sendable {
  public var logits: [Float]
  public var stages: [Trace.Stage]
  public var seconds: Double

  /// Class indices by descending logit, ties to the lower index.
  public var ranked: [Int] {
    logits.indices.sorted { (a, b) in logits[a] != logits[b] ? logits[a] > logits[b] : a < b }
  }
}

extension CompileSession {
  /// The input tensor from a PPM image (preprocessed by the graph's transform) or a raw
  /// float32 file of the graph's input shape.
  public func input(image: String?, raw: String?, graph: Graph) throws -> Tensor {
    guard graph.inputs.count == 1, let shape = graph.type(of: graph.inputs[0]).fixedShape else {
      throw DriverError.unsupportedInput(graph.type(of: graph.inputs[0]))
    }
    if let image {
      guard shape.count == 3, shape[0] == 3, shape[1] == shape[2] else {
        throw DriverError.notAnImageModel(graph.type(of: graph.inputs[0]))
      }
      return Preprocessing.evaluation(try PPM.read(path: image), for: graph)
    }
    return try RawInput.readF32(path: raw!, shape: shape)
  }

  /// The patch count of the graph's patch embedding (0 without one).
  public static func patchCount(of graph: Graph) -> Int {
    graph.ops.first { $0.kind == .patchEmbed }.map { graph.type(of: $0.results[0]).dims[0].bound } ?? 0
  }

  /// Runs the interpreter on `input`; `progress` is told each op's block as it starts.
  public func interpret(_ loaded: LoadedModel, input: Tensor, progress: (Int?) -> Void = { _ in }) throws -> InterpretedRun {
    let interpreter = try Interpreter(graph: loaded.graph, weights: loaded.weights)
    let clock = ContinuousClock()
    let start = clock.now
    let (logits, stages) = try interpreter.runTraced([input]) { op in progress(op.block) }
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    return InterpretedRun(logits: logits.scalars, stages: stages, seconds: seconds)
  }
}

extension CompileSession {
  /// Checks that `input` fits the patch grid a kept map draws (worth doing before a slow run).
  public func checkKeptMap(graph: Graph, input: Tensor) throws {
    guard input.shape.count == 3, input.shape[0] == 3 else { throw KeptMapError.notAnImage(shape: input.shape) }
    _ = try KeptMap.grid(patches: Self.patchCount(of: graph), height: input.shape[1], width: input.shape[2])
  }

  /// The kept-token picture of a run (docs/kept-map.md) as PPM bytes.
  public func keptMap(graph: Graph, input: Tensor, stages: [Trace.Stage]) throws -> [UInt8] {
    try checkKeptMap(graph: graph, input: input)
    return try KeptMap.render(input: input, stages: stages, patches: Self.patchCount(of: graph), transform: graph.imageTransform)
  }
}

/// Results written by concurrent iterations, one slot per index.
final class ResultBox<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private(set) var values: [Result<Value, any Error>?]
  init(count: Int) { values = Array(repeating: nil, count: count) }
  func set(_ index: Int, _ value: Result<Value, any Error>) {
    lock.lock()
    values[index] = value
    lock.unlock()
  }
}
