import Foundation
import VitFrontend
import VitIR
import VitInterpreter
import VitPasses

/// The lines `vitc eval` and a binary's `--eval` print (Runtime/main/main.c writes the same).
public struct EvalSummary: Sendable {
  public var stages: [Int]
  public var images = 0
  public var correct = 0
  public var tokenSums: [Int] = []
  public var macSum = 0.0

  public init(stages: [Int]) {
    self.stages = stages
    tokenSums = Array(repeating: 0, count: stages.count)
  }

  public mutating func add(correct hit: Bool, tokens: [Int], macs: Int) {
    images += 1
    correct += hit ? 1 : 0
    for (s, count) in tokens.enumerated() where s < tokenSums.count { tokenSums[s] += count }
    macSum += Double(macs)
  }

  public func text(model: String, schedule: String, data: String, engine: String) -> String {
    var lines = ["\(model), --prune \(schedule), \(engine), on \(data): \(images) images"]
    lines.append(String(format: "top-1: %.2f%% (%d of %d)", 100 * Double(correct) / Double(images), correct, images))
    if !stages.isEmpty {
      let kept = zip(stages, tokenSums).map { String(format: "block %d %.2f", $0, Double($1) / Double(images)) }
      lines.append("tokens kept (mean, cls included): " + kept.joined(separator: ", "))
    }
    lines.append(String(format: "MACs (fvcore, mean per image): %.0f", macSum / Double(images)))
    return lines.joined(separator: "\n")
  }
}

extension CompileSession {
  /// The square side of the graph's image input.
  func imageSide(_ graph: Graph) throws -> Int {
    guard graph.inputs.count == 1, let shape = graph.type(of: graph.inputs[0]).fixedShape, shape.count == 3,
      shape[0] == 3, shape[1] == shape[2]
    else {
      throw DriverError.notAnImageModel(graph.type(of: graph.inputs[0]))
    }
    return shape[1]
  }

  /// Top-1, tokens kept and MACs over an evaluation set (docs/eval-set.md), images in parallel;
  /// `progress` is called once per finished image, from any thread, with the image count.
  public func evaluate(data: String, limit: Int? = nil, progress: @Sendable (_ total: Int) -> Void = { _ in }) throws -> EvalSummary {
    let loaded = try model(at: .planned)
    let graph = loaded.graph
    let set = try EvalSet.load(directory: data, side: try imageSide(graph), limit: limit, classes: graph.outputType.dims.last!.bound)
    let interpreter = try Interpreter(graph: graph, weights: loaded.weights)
    let results = ResultBox<(predicted: Int, tokens: [Int])>(count: set.images.count)
    DispatchQueue.concurrentPerform(iterations: set.images.count) { index in
      results.set(
        index,
        Result {
          let input = Preprocessing.evaluation(set.rgb(index), for: graph)
          let (logits, stages) = try interpreter.runTraced([input])
          // The first index of the largest logit, by the binary's very loop (main.c run_eval).
          var best = 0
          for c in logits.scalars.indices where logits.scalars[c] > logits.scalars[best] { best = c }
          return (best, stages.map(\.tokens))
        })
      progress(set.images.count)
    }
    var summary = EvalSummary(stages: graph.ops.filter { $0.kind == .traceStage }.map { $0.block ?? 0 })
    for (index, result) in results.values.enumerated() {
      let (predicted, tokens) = try result!.get()
      // As `vitc flops --image` and `vitc calibrate` count an image's run; the binary evaluates
      // the same count as the emitted polynomial (vit_<model>_macs), a check on both.
      let counts = FlopCounter.counts(of: graph, stages: tokens)
      let macs = FlopCounter.report(graph, convention: .fvcore, counts: counts).totalMACs
      summary.add(correct: predicted == set.labels[index], tokens: tokens, macs: macs)
    }
    return summary
  }
}
