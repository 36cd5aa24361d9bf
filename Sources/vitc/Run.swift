import ArgumentParser
import Foundation
import VitFrontend
import VitIR
import VitInterpreter

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
    if (image == nil) == (input == nil) {
      throw ValidationError("give exactly one of --image FILE and --input FILE")
    }
    if top < 1 { throw ValidationError("--top must be at least 1") }
  }

  func run() throws {
    try reportingErrors {
      let loaded = try model.load(prune: pruning.prune)
      let (graph, weights) = (loaded.graph, loaded.weights)
      guard graph.inputs.count == 1, let inputShape = graph.type(of: graph.inputs[0]).fixedShape else {
        throw RunError.unsupportedInput(graph.type(of: graph.inputs[0]))
      }
      let tensor: Tensor
      if let image {
        guard inputShape.count == 3, inputShape[0] == 3, inputShape[1] == inputShape[2] else {
          throw RunError.notAnImageModel(graph.type(of: graph.inputs[0]))
        }
        tensor = Preprocessing.evaluation(try PPM.read(path: image), for: graph)
      } else {
        tensor = try RawInput.readF32(path: input!, shape: inputShape)
      }
      let classNames = try loadLabels(graphPath: model.graph, explicit: labels, classes: graph.outputType.dims.last?.bound ?? 0)

      // The patch grid of --kept-map, checked before the (slow) run.
      let patches = graph.ops.first { $0.kind == .patchEmbed }.map { graph.type(of: $0.results[0]).dims[0].bound } ?? 0
      if keptMap != nil {
        guard tensor.shape.count == 3, tensor.shape[0] == 3 else { throw KeptMapError.notAnImage(shape: tensor.shape) }
        _ = try KeptMap.grid(patches: patches, height: tensor.shape[1], width: tensor.shape[2])
      }

      let interpreter = try Interpreter(graph: graph, weights: weights)
      let progress = Progress(blocks: graph.blocks.count)
      let clock = ContinuousClock()
      let start = clock.now
      let (logits, stages) = try interpreter.runTraced([tensor]) { op in progress.update(block: op.block) }
      let elapsed = clock.now - start
      progress.finish()

      let ranked = logits.scalars.indices.sorted { (a, b) in
        logits.scalars[a] != logits.scalars[b] ? logits.scalars[a] > logits.scalars[b] : a < b
      }
      let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
      print("\(graph.name) on \(image ?? input!): interpreter, \(String(format: "%.2f", seconds)) s, --prune \(loaded.schedule.spec)")
      for stage in stages {
        print("  block \(stage.block): \(stage.tokens) tokens")
      }
      for (rank, index) in ranked.prefix(top).enumerated() {
        let name = classNames.map { "  \($0[index])" } ?? ""
        print(String(format: "%2d. %5d  %10.4f", rank + 1, index, logits.scalars[index]) + name)
      }
      if let trace {
        let record = Trace(method: loaded.schedule.spec, stages: stages, logits: logits.scalars)
        try writeAtomically(record.json(), to: trace)
      }
      if let keptMap {
        try writeAtomically(bytes: try KeptMap.render(input: tensor, stages: stages, patches: patches, transform: graph.imageTransform), to: keptMap)
      }
    }
  }
}

enum RunError: Error, CustomStringConvertible {
  case unsupportedInput(TensorType)
  case notAnImageModel(TensorType)

  var description: String {
    switch self {
    case .unsupportedInput(let type):
      "error: 'vitc run' needs a graph with one input of static shape, found \(type)"
    case .notAnImageModel(let type):
      "error: --image needs a square image input f32[3,S,S], the graph takes \(type); use --input"
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
