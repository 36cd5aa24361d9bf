import ArgumentParser
import Foundation
import VitDriver
import VitIR

struct Run: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run a model on one image with the Swift reference interpreter.",
    discussion: """
      Prints the top classes and the time taken. An image (--image, PPM P6 or P3, 8-bit) is \
      preprocessed as timm evaluates, with the graph's 'preprocess' settings (DeiT's if it has \
      none: shorter side resized to 256 with Pillow's bicubic, center crop 224, /255, ImageNet \
      mean and std; docs/graph-format.md). --input takes a raw little-endian float32 \
      tensor of the graph's input shape, already normalized. Labels come from \
      imagenet-labels.txt beside the graph when the model has 1000 classes, STEM/classes.txt \
      beside it (samples/fashion/classes.txt for samples/fashion.graph), or --labels.
      """)

  @OptionGroup var model: ModelOptions
  @OptionGroup var pruning: PruneOptions

  @Option(help: ArgumentHelp("A PPM image (P6 or P3, 8-bit).", valueName: "file"))
  var image: String?

  @Option(help: ArgumentHelp("A raw float32 input tensor, already normalized.", valueName: "file"))
  var input: String?

  @Option(help: "How many top classes to print.")
  var top: Int = 5

  @Option(help: ArgumentHelp("Class names, one per line (default: imagenet-labels.txt or STEM/classes.txt beside the graph, if it fits).", valueName: "file"))
  var labels: String?

  @Option(help: ArgumentHelp("Write the trace (docs/trace-format.md) as JSON to this file.", valueName: "file"))
  var trace: String?

  @Option(
    help: ArgumentHelp(
      "Write the kept-token map (docs/kept-map.md) as a PPM image: the input, then per pruning stage its patches, dropped ones washed out, merged tokens outlined.",
      valueName: "file"))
  var keptMap: String?

  func validate() throws {
    try model.requireWeights()
    if (image == nil) == (input == nil) {
      throw ValidationError("give exactly one of --image FILE and --input FILE")
    }
    if top < 1 { throw ValidationError("--top must be at least 1") }
  }

  func run() throws {
    try reportingErrors {
      let session = try model.session(prune: pruning.prune, precision: pruning.precision)
      let loaded = try session.model()
      let tensor = try session.input(image: image, raw: input, graph: loaded.graph)
      let classNames = try session.labels(explicit: labels)
      // Outputs never replace what this run reads (the image, the graph, the weights).
      for path in [trace, keptMap].compactMap({ $0 }) {
        try Output.check(path, against: session.inputs + [(image ?? input!, "input")])
      }
      // The patch grid of --kept-map, checked before the (slow) run.
      if keptMap != nil { try session.checkKeptMap(graph: loaded.graph, input: tensor) }

      let progress = Progress(blocks: loaded.graph.blocks.count)
      let result = try session.interpret(loaded, input: tensor) { block in progress.update(block: block) }
      progress.finish()

      print("\(loaded.graph.name) on \(image ?? input!): interpreter, \(String(format: "%.2f", result.seconds)) s, --prune \(loaded.schedule.spec)\(pruning.precision == .f32 ? "" : ", --precision \(pruning.precision.rawValue)")")
      for stage in result.stages {
        print("  block \(stage.block): \(stage.tokens) tokens")
      }
      for (rank, index) in result.ranked.prefix(top).enumerated() {
        let name = classNames.map { "  \($0[index])" } ?? ""
        print(String(format: "%2d. %5d  %10.4f", rank + 1, index, result.logits[index]) + name)
      }
      if let trace {
        try Output.write(Trace(method: loaded.schedule.spec, stages: result.stages, logits: result.logits).json(), to: trace)
      }
      if let keptMap {
        try Output.write(try session.keptMap(graph: loaded.graph, input: tensor, stages: result.stages), to: keptMap)
      }
    }
  }
}

/// A one-line progress display on a terminal's stderr ("block 3/12"), silent otherwise.
final class Progress {
  private let blocks: Int
  private let enabled = isatty(STDERR_FILENO) != 0
  private var shown: Int? = nil

  init(blocks: Int) { self.blocks = blocks }

  func update(block: Int?) {
    guard enabled, let block, block != shown else { return }
    shown = block
    FileHandle.standardError.write(Data("\rrunning block \(block + 1)/\(blocks)".utf8))
  }

  func finish() {
    if enabled && shown != nil { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
  }
}
