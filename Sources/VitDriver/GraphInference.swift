import Foundation
import VitFrontend
import VitIR

/// Writes the `.graph` of a checkpoint from its tensor names and shapes (`vitc graph`), for
/// timm's VisionTransformer: any width, depth, patch size, image size, MLP ratio, with or
/// without qkv bias; a distillation token (`dist_token`, `head_dist`: the mean of both heads,
/// as VisionTransformerDistilled in eval), LayerScale (`ls1.gamma`, `ls2.gamma`), pos_embed
/// with or without the prefix slots (DeiT-III's no_embed_class), average pooling (no class
/// token, or `fc_norm`). What shapes cannot tell (heads, LayerNorm eps, the image transform,
/// global_pool when both fit, the image size when it is not square) comes from timm's `config.json`, the options, or timm's defaults
/// (head dimension 64, eps 1e-6, DeiT's transform), and `assumptions` says which defaults were
/// taken. Register tokens are refused with the tensor that shows them.
public struct GraphInference: Sendable {
  /// What the user said, each nil when not said.
  public struct Settings: Sendable {
    public var heads: Int?
    public var eps: Double?
    public var mean: [Double]?
    public var std: [Double]?
    public var cropPct: Double?
    public var name: String?
    /// timm's `global_pool` ("token" or "avg"), from config.json's model_args.
    public var globalPool: String?
    /// The image's height and width (timm's `img_size`), needed when it is not square.
    public var imageSize: [Int]?
    public init() {}
  }

  public enum Failure: Error, CustomStringConvertible {
    case missing(path: String, tensor: String)
    case unsupported(path: String, tensor: String, what: String)
    case shape(path: String, tensor: String, reason: String)
    case config(path: String, reason: String)

    public var description: String {
      switch self {
      case .missing(let path, let tensor): "\(path): error: cannot write a graph: no tensor '\(tensor)' (not a timm VisionTransformer?)"
      case .unsupported(let path, let tensor, let what):
        "\(path): error: cannot write a graph: '\(tensor)' is \(what), which vitc does not support yet"
      case .shape(let path, let tensor, let reason): "\(path): error: cannot write a graph: '\(tensor)' \(reason)"
      case .config(let path, let reason): "\(path): error: \(reason)"
      }
    }
  }

  /// The graph text, and the defaults it assumed (one line each, for stderr).
  public var text: String
  public var assumptions: [String]
  /// The `--prune` a checkpoint with pruning tensors was trained for, said on stderr as a note
  /// (DynamicViT's predictors, AS-ViT's thresholds); nil without them.
  public var trainedFor: String?

  /// What a checkpoint trained for a pruning method carries (SEMANTICS §2.2, §4.4), as the
  /// `--prune` to name in a note; nil without predictors or thresholds.
  static func trainedFor(_ file: SafetensorsFile, lvvit: Bool = false) -> String? {
    func has(_ name: String) -> Bool { file.entries[name] != nil }
    var stages = 0
    while has("score_predictor.\(stages).in_conv.1.weight") || has("score_predictor.\(stages).keep_threshold") { stages += 1 }
    guard stages > 0 else { return nil }
    let method = has("score_predictor.0.keep_threshold") ? "asvit" : "dyvit:RHO"
    return "\(method) (\(stages) stage\(stages == 1 ? "" : "s") of \(method == "asvit" ? "learned thresholds" : "DynamicViT predictors"), score_predictor.*; "
      + (method == "asvit" ? "" : "the keep ratio RHO is not in the checkpoint; ")
      + (lvvit ? "their blocks are LV-ViT's defaults (docs/methods.md) unless @L gives others)"
        : method == "asvit" ? "their blocks are AS-ViT's 4, 7, 10 unless @L gives others)" : "their blocks are 3, 6, 9 unless @L gives others)")
  }

  /// The graph's name, a C identifier: `settings.name` or the file's stem, other characters as
  /// `_`, led by a letter.
  static func graphName(_ settings: Settings, stem: String) -> String {
    let name = String((settings.name ?? stem).map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
    return name.first?.isLetter == true ? name : "model_" + name
  }

  /// The image transform the user gave (config.json), as the `preprocess` statement's parts.
  static func transformParts(_ settings: Settings) -> [String] {
    func list(_ values: [Double]) -> String { values.count == 1 ? formatReal(values[0]) : "[" + values.map(formatReal).joined(separator: ",") + "]" }
    var parts: [String] = []
    if let mean = settings.mean { parts.append("mean=" + list(mean)) }
    if let std = settings.std { parts.append("std=" + list(std)) }
    if let crop = settings.cropPct { parts.append("crop_pct=" + formatReal(crop)) }
    return parts
  }

  /// Whether a path names a weights file rather than a `.graph` (by its extension).
  public static func isWeightsFile(_ path: String) -> Bool {
    ["pth", "pt", "bin", "ckpt", "safetensors"].contains(URL(fileURLWithPath: path).pathExtension.lowercased())
  }

  /// Reads timm's `config.json` (as the hub ships it beside the weights) into settings.
  public static func settings(config path: String) throws -> Settings {
    guard let data = FileManager.default.contents(atPath: path),
      let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { throw Failure.config(path: path, reason: "not a JSON object (timm's config.json)") }
    var settings = Settings()
    let pretrained = json["pretrained_cfg"] as? [String: Any] ?? json
    settings.mean = pretrained["mean"] as? [Double]
    settings.std = pretrained["std"] as? [Double]
    settings.cropPct = pretrained["crop_pct"] as? Double
    let arguments = json["model_args"] as? [String: Any] ?? [:]
    settings.heads = arguments["num_heads"] as? Int
    settings.globalPool = arguments["global_pool"] as? String
    // LayerNorm eps: timm has no argument for it (norm_layer is a callable), so vitc reads
    // `layer_norm_eps` (the name Hugging Face configs use) from model_args or the top level.
    if let eps = (arguments["layer_norm_eps"] ?? json["layer_norm_eps"]) as? Double {
      guard eps > 0, eps.isFinite else { throw Failure.config(path: path, reason: "layer_norm_eps \(eps) is not a positive number") }
      settings.eps = eps
    }
    // The image size: model_args.img_size (one side, or [height, width]), else
    // pretrained_cfg.input_size ([channels, height, width]).
    if let side = arguments["img_size"] as? Int {
      settings.imageSize = [side, side]
    } else if let sides = arguments["img_size"] as? [Int] {
      settings.imageSize = sides
    } else if let input = pretrained["input_size"] as? [Int], input.count == 3 {
      settings.imageSize = Array(input[1...])
    }
    if let size = settings.imageSize, size.count != 2 || size.contains(where: { $0 <= 0 }) {
      throw Failure.config(path: path, reason: "img_size \(size) is not a positive side or [height, width]")
    }
    if let architecture = json["architecture"] as? String {
      settings.name = architecture.replacingOccurrences(of: ".", with: "_")
    }
    return settings
  }

  public init(file: SafetensorsFile, settings: Settings, stem: String) throws {
    let path = file.path
    func shape(_ name: String) throws -> [Int] {
      guard let entry = file.entries[name] else { throw Failure.missing(path: path, tensor: name) }
      return entry.shape
    }
    func has(_ name: String) -> Bool { file.entries[name] != nil }
    if has("reg_token") {
      throw Failure.unsupported(path: path, tensor: "reg_token", what: "register tokens")
    }
    if has("patch_embed.conv1.weight") {
      (text, assumptions) = try Self.lvvit(file: file, settings: settings, stem: stem)
      trainedFor = Self.trainedFor(file, lvvit: true)
      return
    }
    let embed = try shape("patch_embed.proj.weight")
    guard embed.count == 4, embed[1] == 3, embed[2] == embed[3], embed[2] > 0 else {
      throw Failure.shape(path: path, tensor: "patch_embed.proj.weight", reason: "has shape \(embed), not [C,3,p,p]")
    }
    let (width, patch) = (embed[0], embed[2])
    // The prefix tokens (timm's num_prefix_tokens): the class token, then the distillation
    // token; none with average pooling. Each one timm stores is [1,1,C].
    let prefixNames = ["cls_token", "dist_token"].filter(has)
    for name in prefixNames where try shape(name) != [1, 1, width] {
      throw Failure.shape(path: path, tensor: name, reason: "has shape \(try shape(name)), not [1,1,\(width)]")
    }
    if has("dist_token") && !has("cls_token") {
      throw Failure.shape(path: path, tensor: "dist_token", reason: "is there without 'cls_token' (timm puts it after the class token)")
    }
    let distilled = has("dist_token")
    if distilled != has("head_dist.weight") {
      throw Failure.shape(
        path: path, tensor: distilled ? "dist_token" : "head_dist.weight",
        reason: distilled
          ? "is there without 'head_dist.weight' (VisionTransformerDistilled has both)"
          : "is there without 'dist_token' (VisionTransformerDistilled has both)")
    }
    let prefix = prefixNames.count
    let position = try shape("pos_embed")
    guard position.count == 3, position[0] == 1, position[2] == width, position[1] >= 1 else {
      throw Failure.shape(path: path, tensor: "pos_embed", reason: "has shape \(position), not [1,N,\(width)]")
    }
    // pos_embed covers the prefix tokens too, or (no_embed_class, DeiT-III) the patches only:
    // whichever leaves a square grid (both never do for a positive number of patches), or,
    // with the image size given, the grid of that size.
    var expectedPatches: Int? = nil
    if let size = settings.imageSize {
      guard size[0] % patch == 0, size[1] % patch == 0 else {
        throw Failure.shape(
          path: path, tensor: "patch_embed.proj.weight", reason: "has patch \(patch), which does not divide the image size \(size[0])x\(size[1])")
      }
      expectedPatches = (size[0] / patch) * (size[1] / patch)
    }
    func isSquare(_ count: Int) -> Bool {
      if let expectedPatches { return count == expectedPatches }
      let side = Int(Double(count).squareRoot().rounded())
      return count > 0 && side * side == count
    }
    let embedsPrefix: Bool
    if let expectedPatches, !isSquare(position[1] - prefix) && !isSquare(position[1]) {
      throw Failure.shape(
        path: path, tensor: "pos_embed",
        reason: "holds \(position[1]) positions, not the \(expectedPatches) patches of a \(settings.imageSize![0])x\(settings.imageSize![1]) image with patch \(patch) (with or without the \(prefix) prefix token\(prefix == 1 ? "" : "s"))")
    }
    if prefix > 0 && isSquare(position[1] - prefix) {
      embedsPrefix = true
    } else if isSquare(position[1]) {
      embedsPrefix = false
    } else {
      throw Failure.shape(
        path: path, tensor: "pos_embed",
        reason: "holds \(position[1]) positions: neither they nor they less the \(prefix) prefix token\(prefix == 1 ? "" : "s") make a square patch grid")
    }
    let patches = embedsPrefix ? position[1] - prefix : position[1]
    let (imageHeight, imageWidth) = settings.imageSize.map { ($0[0], $0[1]) } ?? {
      let grid = Int(Double(patches).squareRoot().rounded())
      return (grid * patch, grid * patch)
    }()
    let tokens = patches + prefix
    var depth = 0
    while file.entries["blocks.\(depth).attn.qkv.weight"] != nil { depth += 1 }
    guard depth > 0 else { throw Failure.missing(path: path, tensor: "blocks.0.attn.qkv.weight") }
    let hidden = try shape("blocks.0.mlp.fc1.weight")[0]
    let qkvBias = file.entries["blocks.0.attn.qkv.bias"] != nil
    // LayerScale: both gammas in every block, or none.
    let layerScale = has("blocks.0.ls1.gamma")
    for block in 0..<depth {
      for name in ["ls1", "ls2"] where has("blocks.\(block).\(name).gamma") != layerScale {
        throw Failure.shape(
          path: path, tensor: "blocks.\(block).\(name).gamma",
          reason: (layerScale ? "is missing while 'blocks.0.ls1.gamma' is there" : "is there while 'blocks.0.ls1.gamma' is not")
            + " (LayerScale is in every block and sub-layer, or in none)")
      }
    }
    // Pooling: the class token's row, or (fc_norm, or no class token) the mean of the patch
    // tokens; config.json's global_pool says it when given.
    let averagePool = settings.globalPool.map { $0 == "avg" } ?? (has("fc_norm.weight") || !has("cls_token"))
    if let pool = settings.globalPool, pool != "avg", pool != "token" {
      throw Failure.config(path: path, reason: "global_pool '\(pool)' is not supported (token or avg)")
    }
    if !averagePool && !has("cls_token") {
      throw Failure.unsupported(path: path, tensor: "cls_token", what: "missing with global_pool 'token'")
    }
    if averagePool && distilled {
      throw Failure.unsupported(path: path, tensor: "dist_token", what: "a distillation token with average pooling (fc_norm or global_pool 'avg')")
    }
    let finalNorm = has("norm.weight")
    let fcNorm = has("fc_norm.weight")
    if fcNorm && !averagePool {
      throw Failure.unsupported(path: path, tensor: "fc_norm.weight", what: "fc_norm without average pooling")
    }
    let head = try shape("head.weight")
    guard head.count == 2, head[1] == width else {
      throw Failure.shape(path: path, tensor: "head.weight", reason: "has shape \(head), not [classes,\(width)]")
    }
    if distilled, try shape("head_dist.weight") != head {
      throw Failure.shape(path: path, tensor: "head_dist.weight", reason: "has shape \(try shape("head_dist.weight")), not \(head) as head.weight")
    }
    self.trainedFor = Self.trainedFor(file)
    var assumptions: [String] = []
    if settings.imageSize == nil {
      // 1024 patches are 32x32, but also 16x64: only the training config can tell.
      assumptions.append(
        "image: \(imageHeight)x\(imageWidth) (a square grid of the \(patches) patches pos_embed holds; give --config with img_size for another shape)")
    }
    let heads = settings.heads ?? {
      assumptions.append("heads: \(max(1, width / 64)) (timm's head dimension 64; give --heads or --config)")
      return max(1, width / 64)
    }()
    guard heads > 0, width % heads == 0 else {
      throw Failure.shape(path: path, tensor: "blocks.0.attn.qkv.weight", reason: "width \(width) is not divisible by \(heads) heads")
    }
    let eps = settings.eps ?? {
      assumptions.append("LayerNorm eps: 1e-6 (timm's ViT; give --eps)")
      return 1e-6
    }()
    let d = width / heads
    let scale = pow(Double(d), -0.5)
    let imageText = imageHeight == imageWidth ? "\(imageHeight)" : "\(imageHeight)x\(imageWidth)"
    let name = Self.graphName(settings, stem: stem)
    var preprocess = ""
    if !Self.transformParts(settings).isEmpty {
      preprocess = "\n  preprocess " + Self.transformParts(settings).joined(separator: ", ")
    } else {
      assumptions.append("preprocessing: DeiT's (ImageNet mean and std, crop_pct 0.875; give --config)")
    }
    let bias = qkvBias ? ", @blocks.{i}.attn.qkv.bias" : ""
    let biasParam = qkvBias ? "    param @blocks.{i}.attn.qkv.bias: f32[\(3 * width)]\n" : ""
    let epsText = formatReal(eps)
    var features: [String] = []
    if !qkvBias { features.append("no qkv bias") }
    if distilled { features.append("class and distillation tokens, the mean of head and head_dist") }
    if !has("cls_token") { features.append("no class token") }
    if layerScale { features.append("LayerScale") }
    if !embedsPrefix && prefix > 0 { features.append("pos_embed without the prefix tokens") }
    if averagePool { features.append("average pooling" + (fcNorm ? " with fc_norm" : "")) }

    // The stem: patches, position embedding, prefix tokens in front (TokenLayout reads their
    // number off the concats).
    var stem = ["  patches: f32[\(patches),\(width)] = patch_embed(image, @patch_embed.proj.weight, @patch_embed.proj.bias, patch=\(patch))"]
    let positions = "reshape(@pos_embed, shape=[\(position[1]),\(width)])"
    if !embedsPrefix { stem.append("  patches = patches + \(positions)") }
    switch prefixNames.count {
    case 0: stem.append("  x: f32[\(tokens),\(width)] = patches")
    case 1: stem.append("  x: f32[\(tokens),\(width)] = concat(reshape(@cls_token, shape=[1,\(width)]), patches)")
    default:
      stem.append("  prefix: f32[2,\(width)] = concat(reshape(@cls_token, shape=[1,\(width)]), reshape(@dist_token, shape=[1,\(width)]))")
      stem.append("  x: f32[\(tokens),\(width)] = concat(prefix, patches)")
    }
    if embedsPrefix {
      stem[stem.count - 1] = stem[stem.count - 1].replacingOccurrences(of: " = patches", with: " = patches + \(positions)")
      if prefix > 0 { stem.append("  x = x + \(positions)") }
    }
    let prefixParams = prefixNames.map { "  param @\($0): f32[1,1,\(width)]\n" }.joined()
    let lsParams = layerScale ? "    param @blocks.{i}.ls1.gamma, @blocks.{i}.ls2.gamma: f32[\(width)]\n" : ""
    func scaled(_ expression: String, _ gamma: String) -> String {
      layerScale ? "channel_scale(\(expression), @blocks.{i}.\(gamma).gamma)" : expression
    }
    var headLines: [String] = []
    var headParams = ""
    if finalNorm { headParams += "  param @norm.weight, @norm.bias: f32[\(width)]\n" }
    if fcNorm { headParams += "  param @fc_norm.weight, @fc_norm.bias: f32[\(width)]\n" }
    headParams += "  param @head.weight: f32[\(head[0]),\(width)]\n  param @head.bias: f32[\(head[0])]\n"
    if distilled { headParams += "  param @head_dist.weight: f32[\(head[0]),\(width)]\n  param @head_dist.bias: f32[\(head[0])]\n" }
    if finalNorm && (averagePool || distilled) {
      headLines.append("  x = layernorm(x, @norm.weight, @norm.bias, eps=\(epsText))")
    }
    if averagePool {
      headLines.append("  pooled: f32[\(width)] = mean_tokens(x, prefix=\(prefix))")
      if fcNorm { headLines.append("  pooled = layernorm(pooled, @fc_norm.weight, @fc_norm.bias, eps=\(epsText))") }
      headLines.append("  logits = linear(pooled, @head.weight, @head.bias)")
    } else if distilled {
      headLines.append("  logits = (linear(row(x, index=0), @head.weight, @head.bias) + linear(row(x, index=1), @head_dist.weight, @head_dist.bias)) * 0.5")
    } else {
      let normed = finalNorm ? "layernorm(x, @norm.weight, @norm.bias, eps=\(epsText))" : "x"
      headLines.append("  cls: f32[\(width)] = row(\(normed), index=0)")
      headLines.append("  logits = linear(cls, @head.weight, @head.bias)")
    }
    text = """
      # \(name): written by `vitc graph` from the tensors of \(URL(fileURLWithPath: path).lastPathComponent)
      # (timm VisionTransformer: width \(width), depth \(depth), \(heads) heads, patch \(patch), image \(imageText), MLP \(hidden)\(features.isEmpty ? "" : "; " + features.joined(separator: ", "))).
      graph \(name)(image: f32[3,\(imageHeight),\(imageWidth)]) -> f32[\(head[0])] {\(preprocess)
      \(prefixParams)  param @pos_embed: f32[1,\(position[1]),\(width)]
        param @patch_embed.proj.weight: f32[\(width),3,\(patch),\(patch)]
        param @patch_embed.proj.bias: f32[\(width)]
      \(stem.joined(separator: "\n"))

        block i in 0..<\(depth) {
          param @blocks.{i}.norm1.weight, @blocks.{i}.norm1.bias: f32[\(width)]
          param @blocks.{i}.attn.qkv.weight: f32[\(3 * width),\(width)]
      \(biasParam)    param @blocks.{i}.attn.proj.weight: f32[\(width),\(width)]
          param @blocks.{i}.attn.proj.bias: f32[\(width)]
          param @blocks.{i}.norm2.weight, @blocks.{i}.norm2.bias: f32[\(width)]
          param @blocks.{i}.mlp.fc1.weight: f32[\(hidden),\(width)]
          param @blocks.{i}.mlp.fc1.bias: f32[\(hidden)]
          param @blocks.{i}.mlp.fc2.weight: f32[\(width),\(hidden)]
          param @blocks.{i}.mlp.fc2.bias: f32[\(width)]
      \(lsParams)    h = layernorm(x, @blocks.{i}.norm1.weight, @blocks.{i}.norm1.bias, eps=\(epsText))
          qkv: f32[\(tokens),\(3 * width)] = linear(h, @blocks.{i}.attn.qkv.weight\(bias))
          q: f32[\(heads),\(tokens),\(d)], k: f32[\(heads),\(tokens),\(d)], v: f32[\(heads),\(tokens),\(d)] = split_heads(qkv, heads=\(heads))
          attn: f32[\(heads),\(tokens),\(tokens)] = softmax(matmul(q, transpose(k)) * \(scale))
          context: f32[\(tokens),\(width)] = merge_heads(matmul(attn, v))
          x = x + \(scaled("linear(context, @blocks.{i}.attn.proj.weight, @blocks.{i}.attn.proj.bias)", "ls1"))
          h = layernorm(x, @blocks.{i}.norm2.weight, @blocks.{i}.norm2.bias, eps=\(epsText))
          h: f32[\(tokens),\(hidden)] = gelu(linear(h, @blocks.{i}.mlp.fc1.weight, @blocks.{i}.mlp.fc1.bias))
          x = x + \(scaled("linear(h, @blocks.{i}.mlp.fc2.weight, @blocks.{i}.mlp.fc2.bias)", "ls2"))
        }

      \(headParams)\(headLines.joined(separator: "\n"))
        return logits
      }

      """
    self.assumptions = assumptions
  }
}
