import Foundation
import VitFrontend
import VitIR

/// Writes the `.graph` of a checkpoint from its tensor names and shapes (`vitc graph`), for
/// timm's VisionTransformer as DeiT uses it: any width, depth, patch size, image size, MLP
/// ratio, with or without qkv bias. What shapes cannot tell (heads, LayerNorm eps, the image
/// transform) comes from timm's `config.json`, the options, or timm's defaults (head dimension
/// 64, eps 1e-6, DeiT's transform), and `assumptions` says which defaults were taken. Layouts
/// whose ops vitc does not have yet (a distillation token, LayerScale, average pooling without a
/// class token, register tokens) are refused with the tensor that shows them.
public struct GraphInference: Sendable {
  /// What the user said, each nil when not said.
  public struct Settings: Sendable {
    public var heads: Int?
    public var eps: Double?
    public var mean: [Double]?
    public var std: [Double]?
    public var cropPct: Double?
    public var name: String?
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
    for (tensor, what) in [
      ("dist_token", "a distillation token (DeiT distilled)"), ("reg_token", "register tokens"),
      ("blocks.0.ls1.gamma", "LayerScale (DeiT-III)"), ("fc_norm.weight", "average pooling with fc_norm"),
      ("head_dist.weight", "a distillation head"),
    ] where file.entries[tensor] != nil {
      throw Failure.unsupported(path: path, tensor: tensor, what: what)
    }
    let embed = try shape("patch_embed.proj.weight")
    guard embed.count == 4, embed[1] == 3, embed[2] == embed[3], embed[2] > 0 else {
      throw Failure.shape(path: path, tensor: "patch_embed.proj.weight", reason: "has shape \(embed), not [C,3,p,p]")
    }
    let (width, patch) = (embed[0], embed[2])
    guard file.entries["cls_token"] != nil else {
      throw Failure.unsupported(path: path, tensor: "cls_token", what: "missing (a model without a class token)")
    }
    let position = try shape("pos_embed")
    guard position.count == 3, position[0] == 1, position[2] == width, position[1] >= 2 else {
      throw Failure.shape(path: path, tensor: "pos_embed", reason: "has shape \(position), not [1,N,\(width)]")
    }
    let tokens = position[1]
    let grid = Int(Double(tokens - 1).squareRoot().rounded())
    guard grid * grid == tokens - 1 else {
      throw Failure.shape(path: path, tensor: "pos_embed", reason: "holds \(tokens - 1) patch positions, not a square grid")
    }
    var depth = 0
    while file.entries["blocks.\(depth).attn.qkv.weight"] != nil { depth += 1 }
    guard depth > 0 else { throw Failure.missing(path: path, tensor: "blocks.0.attn.qkv.weight") }
    let hidden = try shape("blocks.0.mlp.fc1.weight")[0]
    let qkvBias = file.entries["blocks.0.attn.qkv.bias"] != nil
    let head = try shape("head.weight")
    guard head.count == 2, head[1] == width else {
      throw Failure.shape(path: path, tensor: "head.weight", reason: "has shape \(head), not [classes,\(width)]")
    }
    var assumptions: [String] = []
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
    let side = grid * patch
    var name = String((settings.name ?? stem).map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
    if name.first?.isLetter != true { name = "model_" + name }
    var preprocess = ""
    if settings.mean != nil || settings.std != nil || settings.cropPct != nil {
      func list(_ values: [Double]) -> String { values.count == 1 ? formatReal(values[0]) : "[" + values.map(formatReal).joined(separator: ",") + "]" }
      var parts: [String] = []
      if let mean = settings.mean { parts.append("mean=" + list(mean)) }
      if let std = settings.std { parts.append("std=" + list(std)) }
      if let crop = settings.cropPct { parts.append("crop_pct=" + formatReal(crop)) }
      preprocess = "\n  preprocess " + parts.joined(separator: ", ")
    } else {
      assumptions.append("preprocessing: DeiT's (ImageNet mean and std, crop_pct 0.875; give --config)")
    }
    let bias = qkvBias ? ", @blocks.{i}.attn.qkv.bias" : ""
    let biasParam = qkvBias ? "    param @blocks.{i}.attn.qkv.bias: f32[\(3 * width)]\n" : ""
    let epsText = formatReal(eps)
    text = """
      # \(name): written by `vitc graph` from the tensors of \(URL(fileURLWithPath: path).lastPathComponent)
      # (timm VisionTransformer: width \(width), depth \(depth), \(heads) heads, patch \(patch), image \(side), MLP \(hidden)\(qkvBias ? "" : ", no qkv bias")).
      graph \(name)(image: f32[3,\(side),\(side)]) -> f32[\(head[0])] {\(preprocess)
        param @cls_token: f32[1,1,\(width)]
        param @pos_embed: f32[1,\(tokens),\(width)]
        param @patch_embed.proj.weight: f32[\(width),3,\(patch),\(patch)]
        param @patch_embed.proj.bias: f32[\(width)]
        patches: f32[\(tokens - 1),\(width)] = patch_embed(image, @patch_embed.proj.weight, @patch_embed.proj.bias, patch=\(patch))
        x: f32[\(tokens),\(width)] = concat(reshape(@cls_token, shape=[1,\(width)]), patches)
        x = x + reshape(@pos_embed, shape=[\(tokens),\(width)])

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
          h = layernorm(x, @blocks.{i}.norm1.weight, @blocks.{i}.norm1.bias, eps=\(epsText))
          qkv: f32[\(tokens),\(3 * width)] = linear(h, @blocks.{i}.attn.qkv.weight\(bias))
          q: f32[\(heads),\(tokens),\(d)], k: f32[\(heads),\(tokens),\(d)], v: f32[\(heads),\(tokens),\(d)] = split_heads(qkv, heads=\(heads))
          attn: f32[\(heads),\(tokens),\(tokens)] = softmax(matmul(q, transpose(k)) * \(scale))
          context: f32[\(tokens),\(width)] = merge_heads(matmul(attn, v))
          x = x + linear(context, @blocks.{i}.attn.proj.weight, @blocks.{i}.attn.proj.bias)
          h = layernorm(x, @blocks.{i}.norm2.weight, @blocks.{i}.norm2.bias, eps=\(epsText))
          h: f32[\(tokens),\(hidden)] = gelu(linear(h, @blocks.{i}.mlp.fc1.weight, @blocks.{i}.mlp.fc1.bias))
          x = x + linear(h, @blocks.{i}.mlp.fc2.weight, @blocks.{i}.mlp.fc2.bias)
        }

        param @norm.weight, @norm.bias: f32[\(width)]
        param @head.weight: f32[\(head[0]),\(width)]
        param @head.bias: f32[\(head[0])]
        cls: f32[\(width)] = row(layernorm(x, @norm.weight, @norm.bias, eps=\(epsText)), index=0)
        logits = linear(cls, @head.weight, @head.bias)
        return logits
      }

      """
    self.assumptions = assumptions
  }
}
