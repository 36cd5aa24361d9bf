import ArgumentParser
import Foundation
import VitFrontend
import VitIR
import VitInterpreter
import VitPasses

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure top-1 accuracy on a labelled evaluation set with the reference interpreter.",
    discussion: """
      Runs the model on every image of an evaluation set (docs/eval-set.md; samples/fashion is \
      one) and prints the top-1 accuracy, the mean number of tokens each pruning stage kept, and \
      the mean multiply-adds per image (fvcore's convention, SEMANTICS.md §7). Each image is \
      preprocessed by the graph's 'preprocess' settings, as --image is. A binary built by \
      'vitc build' does the same with --eval DIR, and prints the same lines. Images run in \
      parallel; use a release build (swift build -c release): the interpreter is slow.
      """)

  @OptionGroup var model: ModelOptions
  @OptionGroup var pruning: PruneOptions

  @Option(help: ArgumentHelp("The evaluation set: a directory with test-images.rle and test-labels.u8.", valueName: "dir"))
  var data: String

  @Option(help: ArgumentHelp("Evaluate only the first N images.", valueName: "N"))
  var limit: Int?

  func validate() throws {
    if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
  }

  func run() throws {
    try reportingErrors {
      let loaded = try model.load(prune: pruning.prune)
      let graph = loaded.graph
      guard graph.inputs.count == 1, let shape = graph.type(of: graph.inputs[0]).fixedShape, shape.count == 3,
        shape[0] == 3, shape[1] == shape[2]
      else {
        throw RunError.notAnImageModel(graph.type(of: graph.inputs[0]))
      }
      let set = try EvalSet.load(directory: data, side: shape[1], limit: limit)
      let classes = graph.outputType.dims.last!.bound
      if let bad = set.labels.first(where: { $0 >= classes }) {
        throw InputError.badEvalSet(path: data + "/" + EvalSet.labelsFile, reason: "label \(bad), the model has \(classes) classes")
      }
      let interpreter = try Interpreter(graph: graph, weights: loaded.weights)
      let results = ResultBox<(predicted: Int, tokens: [Int])>(count: set.images.count)
      let progress = EvalProgress(total: set.images.count)
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
        progress.step()
      }
      progress.finish()
      var summary = EvalSummary(stages: graph.ops.filter { $0.kind == .traceStage }.map { $0.block ?? 0 })
      for (index, result) in results.values.enumerated() {
        let (predicted, tokens) = try result!.get()
        // As `vitc flops --image` and `vitc calibrate` count an image's run; the binary evaluates
        // the same count as the emitted polynomial (vit_<model>_macs), a check on both.
        let counts = FlopCounter.counts(of: graph, stages: tokens)
        let macs = FlopCounter.report(graph, convention: .fvcore, counts: counts).totalMACs
        summary.add(correct: predicted == set.labels[index], tokens: tokens, macs: macs)
      }
      print(summary.text(model: graph.name, schedule: loaded.schedule.spec, data: data, engine: "interpreter"))
    }
  }
}

/// The lines `vitc eval` and a binary's `--eval` print (Runtime/main/main.c writes the same).
struct EvalSummary {
  var stages: [Int]
  var images = 0
  var correct = 0
  var tokenSums: [Int] = []
  var macSum = 0.0

  init(stages: [Int]) {
    self.stages = stages
    tokenSums = Array(repeating: 0, count: stages.count)
  }

  mutating func add(correct hit: Bool, tokens: [Int], macs: Int) {
    images += 1
    correct += hit ? 1 : 0
    for (s, count) in tokens.enumerated() where s < tokenSums.count { tokenSums[s] += count }
    macSum += Double(macs)
  }

  func text(model: String, schedule: String, data: String, engine: String) -> String {
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

/// "eval: 400/2000 images" on a terminal's stderr, silent otherwise.
final class EvalProgress: @unchecked Sendable {
  private let total: Int
  private let enabled = isatty(STDERR_FILENO) != 0
  private let lock = NSLock()
  private var done = 0
  private var shown = 0

  init(total: Int) { self.total = total }

  /// One more image finished.
  func step() {
    guard enabled else { return }
    lock.lock()
    defer { lock.unlock() }
    done += 1
    guard done >= shown + max(1, total / 100) || done == total else { return }
    shown = done
    FileHandle.standardError.write(Data("\reval: \(done)/\(total) images".utf8))
  }

  func finish() {
    if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
  }
}
