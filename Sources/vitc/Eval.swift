import ArgumentParser
import Foundation
import VitDriver

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
    try model.requireWeights()
    if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
  }

  func run() throws {
    try reportingErrors {
      let session = try model.session(prune: pruning.prune, precision: pruning.precision)
      let progress = EvalProgress()
      let summary = try session.evaluate(data: data, limit: limit) { total in progress.step(total: total) }
      progress.finish()
      print(summary.text(model: session.parsed.name, schedule: session.schedule.spec, data: data, engine: pruning.precision == .f32 ? "interpreter" : "interpreter, \(pruning.precision.rawValue)"))
    }
  }
}

/// "eval: 400/2000 images" on a terminal's stderr, silent otherwise.
final class EvalProgress: @unchecked Sendable {
  private var total = 0
  private let enabled = isatty(STDERR_FILENO) != 0
  private let lock = NSLock()
  private var done = 0
  private var shown = 0

  /// One more image finished, of `total`.
  func step(total: Int) {
    guard enabled else { return }
    lock.lock()
    defer { lock.unlock() }
    self.total = total
    done += 1
    guard done >= shown + max(1, total / 100) || done == total else { return }
    shown = done
    FileHandle.standardError.write(Data("\reval: \(done)/\(total) images".utf8))
  }

  func finish() {
    if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
  }
}
