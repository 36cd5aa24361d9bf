import ArgumentParser
import Foundation
import VitDriver
import VitFrontend

struct GraphCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "graph",
    abstract: "Write the .graph of a checkpoint from its tensor names and shapes.",
    discussion: """
      Reads a checkpoint (safetensors, or a PyTorch file as torch.save writes it) of timm's \
      VisionTransformer as DeiT uses it, and writes its graph: width, depth, patch and image \
      size, MLP size, qkv bias and classes come from the shapes, and so do a distillation token \
      (dist_token, head_dist: the mean of both heads), LayerScale (ls1.gamma, ls2.gamma), \
      average pooling (no class token, or fc_norm) and pos_embed without the class slot \
      (DeiT-III); heads, LayerNorm eps (layer_norm_eps), the image size (model_args.img_size \
      or pretrained_cfg.input_size; a non-square image needs it) and the \
      image transform from --config (timm's config.json, as the hub ships it beside the \
      weights) or the options, else timm's defaults (head dimension 64, eps 1e-6, a square \
      image, DeiT's transform), each named on stderr. A checkpoint with DynamicViT predictors or AS-ViT \
      thresholds (score_predictor.*) gets a note saying which --prune it was trained for. \
      Register tokens are refused with the tensor that shows them. build, compile, run, eval and flops take a checkpoint \
      in place of a .graph and do the same inside.
      """)

  @Argument(help: "The checkpoint.")
  var weights: String

  @Option(help: ArgumentHelp("timm's config.json for the model.", valueName: "file"))
  var config: String?

  @Option(help: "Attention heads (default: width / 64).")
  var heads: Int?

  @Option(help: "LayerNorm epsilon (default: 1e-6).")
  var eps: Double?

  @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file instead of standard output.", valueName: "file"))
  var output: String?

  func run() throws {
    try reportingErrors {
      var settings = try config.map { try GraphInference.settings(config: $0) } ?? GraphInference.Settings()
      if let heads { settings.heads = heads }
      if let eps { settings.eps = eps }
      let file = try WeightsReader.open(path: weights)
      let stem = URL(fileURLWithPath: output ?? weights).deletingPathExtension().lastPathComponent
      let inferred = try GraphInference(file: file, settings: settings, stem: stem)
      for assumption in inferred.assumptions { printError("\(weights): note: assumed \(assumption)") }
      if let trainedFor = inferred.trainedFor { printError("\(weights): note: trained for --prune \(trainedFor)") }
      if let output {
        try Output.check(output, against: [(weights, "checkpoint")] + (config.map { [($0, "config")] } ?? []))
        try Output.write(inferred.text, to: output)
      } else {
        print(inferred.text, terminator: "")
      }
    }
  }
}
