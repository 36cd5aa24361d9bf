import Foundation
import TestSupport
import Testing
import VitDriver
import VitFrontend
import VitIR

/// `vitc graph`: the graph of a checkpoint from its tensors.
@Suite struct GraphInferenceTests {
  /// timm's tiny model, from its weights alone (plus its 2 heads): the same IR as the
  /// hand-written samples/tiny.graph, op for op.
  @Test func inferredGraphIsTheSampleGraph() throws {
    let file = try WeightsReader.open(path: repositoryPath("Tests/Fixtures/timm-tiny/weights.safetensors"))
    var settings = GraphInference.Settings()
    settings.heads = 2
    settings.name = "tiny_vit"
    let inferred = try GraphInference(file: file, settings: settings, stem: "x")
    #expect(inferred.assumptions.count == 3)  // eps, the transform and the image's shape; heads were given
    let mine = try GraphLoader.parse(inferred.text, file: "inferred.graph")
    let sample = try GraphLoader.load(path: repositoryPath("samples/tiny.graph"))
    #expect(Printer.print(mine, header: "") == Printer.print(sample, header: ""))
  }

  /// A config.json supplies heads and the transform, and a graph without qkv bias is written
  /// without it.
  @Test func configAndMissingQkvBias() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let config = scratch.appendingPathComponent("config.json")
    try Data(#"{"architecture": "vit_tiny.test", "model_args": {"num_heads": 2}, "pretrained_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "crop_pct": 0.9}}"#.utf8).write(to: config)
    let full = try WeightsReader.open(path: repositoryPath("Tests/Fixtures/timm-tiny/weights.safetensors"))
    let kept = try full.names.filter { !$0.hasSuffix("attn.qkv.bias") }.map { ($0, try full.tensor($0)) }
    let file = try SafetensorsFile(bytes: SafetensorsWriter.encode(kept), path: "no-bias.safetensors")
    var settings = try GraphInference.settings(config: config.path)
    settings.eps = 1e-6
    let inferred = try GraphInference(file: file, settings: settings, stem: "x")
    // The config gives no img_size: only the image's shape is assumed.
    #expect(inferred.assumptions.count == 1 && inferred.assumptions[0].hasPrefix("image: 224x224"))
    #expect(inferred.text.contains("graph vit_tiny_test(") && inferred.text.contains("preprocess mean=[0.5,0.5,0.5], std=[0.5,0.5,0.5], crop_pct=0.9"))
    #expect(!inferred.text.contains("qkv.bias"))
    let graph = try GraphLoader.parse(inferred.text, file: "x.graph")
    #expect(graph.parameters.count == full.names.count - 12)
  }

  /// config.json gives the image size (model_args.img_size, else pretrained_cfg.input_size),
  /// which a non-square image needs, and LayerNorm eps (layer_norm_eps); a size that does not
  /// fit pos_embed or the patch is refused with the tensor.
  @Test func configImageSizeAndEps() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let file = try WeightsReader.open(path: repositoryPath("Tests/Fixtures/checkpoints/vit-rect.safetensors"))
    func inferred(_ json: String) throws -> GraphInference {
      let config = scratch.appendingPathComponent("config.json")
      try Data(json.utf8).write(to: config)
      return try GraphInference(file: file, settings: try GraphInference.settings(config: config.path), stem: "x")
    }
    for json in [#"{"model_args": {"num_heads": 2, "img_size": [32, 48], "layer_norm_eps": 1e-5}}"#,
                 #"{"model_args": {"num_heads": 2}, "pretrained_cfg": {"input_size": [3, 32, 48]}, "layer_norm_eps": 1e-5}"#] {
      let text = try inferred(json).text
      #expect(text.contains("(image: f32[3,32,48])") && text.contains("patches: f32[24,32]") && text.contains("image 32x48,"))
      #expect(text.contains("eps=1e-05") || text.contains("eps=0.00001"), "\(text)")
    }
    for (size, message) in [
      ("[32, 32]", "'pos_embed' holds 25 positions, not the 16 patches of a 32x32 image with patch 8 (with or without the 1 prefix token)"),
      ("[32, 44]", "'patch_embed.proj.weight' has patch 8, which does not divide the image size 32x44"),
    ] {
      do {
        _ = try inferred(#"{"model_args": {"num_heads": 2, "img_size": \#(size)}}"#)
        Issue.record("img_size \(size) was not refused")
      } catch {
        #expect("\(error)" == file.path + ": error: cannot write a graph: " + message)
      }
    }
  }

  /// Layouts vitc cannot express, or tensors that contradict each other, are refused with the
  /// tensor that shows them.
  @Test(arguments: [
    ("reg_token", [1, 4, 64], "'reg_token' is register tokens, which vitc does not support yet"),
    ("dist_token", [1, 1, 64], "'dist_token' is there without 'head_dist.weight' (VisionTransformerDistilled has both)"),
    ("head_dist.weight", [1000, 64], "'head_dist.weight' is there without 'dist_token' (VisionTransformerDistilled has both)"),
    ("blocks.0.ls1.gamma", [64], "'blocks.0.ls2.gamma' is missing while 'blocks.0.ls1.gamma' is there (LayerScale is in every block and sub-layer, or in none)"),
  ])
  func unsupportedLayoutsAreNamed(tensor: String, shape: [Int], message: String) throws {
    let full = try WeightsReader.open(path: repositoryPath("Tests/Fixtures/timm-tiny/weights.safetensors"))
    let tensors = try full.names.map { ($0, try full.tensor($0)) } + [(tensor, Tensor(shape: shape, scalars: Array(repeating: 1, count: shape.reduce(1, *))))]
    let file = try SafetensorsFile(bytes: SafetensorsWriter.encode(tensors), path: "variant.safetensors")
    #expect(throws: GraphInference.Failure.self) { try GraphInference(file: file, settings: .init(), stem: "x") }
    do {
      _ = try GraphInference(file: file, settings: .init(), stem: "x")
    } catch {
      #expect("\(error)" == "variant.safetensors: error: cannot write a graph: \(message)")
    }
  }
}
