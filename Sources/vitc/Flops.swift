import ArgumentParser
import Foundation
import VitDriver
import VitPasses

struct Flops: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Count multiply-adds per block and the parameters of a model.",
    discussion: """
      Prints, per stretch of the graph (stem, each block, head), the tokens it runs on and its \
      multiply-adds in the two conventions the papers use (SEMANTICS.md §7): fvcore (DeiT, \
      DynamicViT; LayerNorm 5 per element, no elementwise ops) and torchprofile (EViT, BAT; \
      LayerNorm 1 per element, the attention scaling 1 per element). One multiply-add counts \
      as one FLOP. "197→140" means the block's attention ran on 197 tokens and its MLP on 140. \
      Needs no weights, except for AS-ViT, whose token counts depend on the image: give \
      --image (one or more) and the weights, and vitc runs the interpreter on each image and \
      prints the average; without images the run-time counts are taken at their bound.
      """)

  @Argument(help: "The model graph (.graph file).")
  var graph: String

  @OptionGroup var pruning: PruneOptions

  @Option(help: ArgumentHelp("Images (PPM) to average AS-ViT's run-time counts over; repeat the option for more.", valueName: "file"))
  var image: [String] = []

  @Option(help: ArgumentHelp("Weights for --image (safetensors).", valueName: "file"))
  var weights: String?

  @Option(help: ArgumentHelp("Random weights for --image, from this seed.", valueName: "seed"))
  var randomWeights: UInt64?

  func validate() throws {
    if !image.isEmpty && (weights == nil) == (randomWeights == nil) {
      throw ValidationError("--image needs exactly one of --weights FILE and --random-weights SEED")
    }
  }

  func run() throws {
    try reportingErrors {
      let source: WeightsSource = weights.map { .file($0) } ?? randomWeights.map { .random(seed: $0) } ?? .none
      var session = try CompileSession(graph: self.graph, weights: source, prune: pruning.prune)
      session.precision = pruning.precision
      let (graph, fvcore, torchprofile) = try session.flops(images: image) { path, stages in
        printError("\(path): " + stages.map { "block \($0.block) \($0.tokens) tokens" }.joined(separator: ", "))
      }
      let width = max(grouped(fvcore.totalMACs).count, grouped(torchprofile.totalMACs).count)
      func pad(_ text: String, _ count: Int) -> String {
        String(repeating: " ", count: max(0, count - text.count)) + text
      }
      let over = image.isEmpty ? "" : ", average over \(image.count) image\(image.count == 1 ? "" : "s")"
      print("\(graph.name), --prune \(session.schedule.spec): multiply-adds (1 MAC = 1 FLOP)\(over)")
      if image.isEmpty && graph.values.contains(where: { $0.type.isDynamic }) {
        print("(run-time token counts at their bound; give --image and weights to average over images)")
      }
      print("stage        tokens  \(pad("fvcore", width))  \(pad("torchprofile", width))")
      for (row, other) in zip(fvcore.rows, torchprofile.rows) {
        let name = row.name.padding(toLength: 9, withPad: " ", startingAt: 0)
        let tokens =
          row.tokens == 0 ? "-" : row.tokensOut != row.tokens && row.tokensOut != 0 ? "\(row.tokens)→\(row.tokensOut)" : "\(row.tokens)"
        print("\(name) \(pad(tokens, 9))  \(pad(grouped(row.macs), width))  \(pad(grouped(other.macs), width))")
      }
      if let own = FlopCounter.lvvitConvention(graph) {
        // SEMANTICS-LVVIT §L8.2: the count the DynamicViT paper's LV-ViT column rounds.
        print("LV-ViT's count         \(pad(grouped(own), width))  (TokenLabeling's flops(): the papers' LV-ViT column; no BatchNorm, predictors or heads)")
      }
      print("total                  \(pad(grouped(fvcore.totalMACs), width))  \(pad(grouped(torchprofile.totalMACs), width))")
      print("parameters             \(pad(grouped(fvcore.parameters), width))")
      if let (reduced, total) = try session.reducedPrecisionMACs() {
        let percent = total == 0 ? 0 : Double(reduced) * 100 / Double(total)
        print("\(session.precision.rawValue) (the blocks' linears): \(grouped(reduced)) of fvcore's \(grouped(total)) at the token bounds (\(String(format: "%.1f", percent)) %); the rest in f32")
      }
    }
  }
}
