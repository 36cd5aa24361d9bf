import Foundation
import VitFrontend
import VitIR

extension GraphInference {
  /// The `.graph` of an LV-ViT checkpoint (TokenLabeling's `lvvit_s`/`lvvit_m` layout, the
  /// official state-dict names, SEMANTICS-LVVIT.md §L2–§L3): the 4-convolution stem
  /// (`patch_embed.conv1` 7×7 stride 2, `conv2`/`conv3` 3×3, each with BatchNorm and ReLU, then
  /// the 8×8 stride-8 projection: patch 16), blocks with or without qkv bias, each residual
  /// branch scaled by 1/skip_lam, and the eval head: the class head plus 0.5 × the aux head's
  /// per-class max over the patch tokens. From the shapes: width, stem channels, depth, MLP
  /// width, classes and the image size (a square grid of pos_embed's patches). What they cannot
  /// tell, and the defaults taken: heads (width / 64, lvvit_s's and lvvit_m's), skip_lam 2 (both
  /// releases'), LayerNorm eps 1e-5, crop_pct 0.9 (lvvit_s's evaluation; lvvit_m's is 1.0),
  /// each named in `assumptions`. The same text as tools/make_lvvit_graphs.py's template.
  static func lvvit(file: SafetensorsFile, settings: Settings, stem: String) throws -> (text: String, assumptions: [String]) {
    let path = file.path
    func shape(_ name: String) throws -> [Int] {
      guard let entry = file.entries[name] else { throw Failure.missing(path: path, tensor: name) }
      return entry.shape
    }
    func has(_ name: String) -> Bool { file.entries[name] != nil }
    let conv1 = try shape("patch_embed.conv1.weight")
    guard conv1.count == 4, conv1[1] == 3, conv1[2] == 7, conv1[3] == 7 else {
      throw Failure.shape(path: path, tensor: "patch_embed.conv1.weight", reason: "has shape \(conv1), not [E,3,7,7] (LV-ViT's stem)")
    }
    let channels = conv1[0]
    for name in ["patch_embed.conv2.weight", "patch_embed.conv3.weight"] where try shape(name) != [channels, channels, 3, 3] {
      throw Failure.shape(path: path, tensor: name, reason: "has shape \(try shape(name)), not [\(channels),\(channels),3,3]")
    }
    let projection = try shape("patch_embed.proj.weight")
    guard projection.count == 4, projection[1] == channels, projection[2] == 8, projection[3] == 8 else {
      throw Failure.shape(path: path, tensor: "patch_embed.proj.weight", reason: "has shape \(projection), not [C,\(channels),8,8]")
    }
    let width = projection[0]
    let position = try shape("pos_embed")
    let patches = position.count == 3 ? position[1] - 1 : -1
    let grid = Int(Double(max(patches, 0)).squareRoot().rounded())
    guard position.count == 3, position[0] == 1, position[2] == width, patches > 0, grid * grid == patches else {
      throw Failure.shape(path: path, tensor: "pos_embed", reason: "has shape \(position), not [1,1+G*G,\(width)]")
    }
    var depth = 0
    while has("blocks.\(depth).attn.qkv.weight") { depth += 1 }
    guard depth > 0 else { throw Failure.missing(path: path, tensor: "blocks.0.attn.qkv.weight") }
    let hidden = try shape("blocks.0.mlp.fc1.weight")[0]
    let classes = try shape("head.weight")[0]
    guard try shape("aux_head.weight") == [classes, width] else {
      throw Failure.shape(path: path, tensor: "aux_head.weight", reason: "has shape \(try shape("aux_head.weight")), not [\(classes),\(width)]")
    }
    let qkvBias = has("blocks.0.attn.qkv.bias")
    var assumptions: [String] = []
    let heads = settings.heads ?? {
      assumptions.append("heads: \(max(1, width / 64)) (LV-ViT's head dimension 64; give --heads or --config)")
      return max(1, width / 64)
    }()
    guard heads > 0, width % heads == 0 else {
      throw Failure.shape(path: path, tensor: "blocks.0.attn.qkv.weight", reason: "width \(width) is not divisible by \(heads) heads")
    }
    let eps = settings.eps ?? {
      assumptions.append("LayerNorm eps: 1e-5 (LV-ViT's; give --eps)")
      return 1e-5
    }()
    assumptions.append("skip_lam: 2 (lvvit_s's and lvvit_m's; each residual branch × 0.5)")
    let side = grid * 16
    if settings.imageSize == nil {
      assumptions.append("image: \(side)x\(side) (a square grid of the \(patches) patches pos_embed holds)")
    } else if settings.imageSize! != [side, side] {
      throw Failure.shape(path: path, tensor: "pos_embed", reason: "holds \(patches) patches, not those of a \(settings.imageSize![0])x\(settings.imageSize![1]) image")
    }
    var transform = transformParts(settings)
    if settings.cropPct == nil {
      assumptions.append("preprocessing: crop_pct 0.9 (lvvit_s's evaluation; lvvit_m's is 1.0; give --config)")
      transform.append("crop_pct=0.9")
    }
    let name = graphName(settings, stem: stem)
    let (e, c, n, d) = (channels, width, patches + 1, width / heads)
    let (h2, epsText, scale) = (side / 2, formatReal(eps), formatReal(pow(Double(d), -0.5)))
    func bn(_ index: Int) -> String {
      "@patch_embed.bn\(index).weight, @patch_embed.bn\(index).bias, @patch_embed.bn\(index).running_mean, @patch_embed.bn\(index).running_var"
    }
    let text = """
      # \(name): written by `vitc graph` from the tensors of \(URL(fileURLWithPath: path).lastPathComponent)
      # (LV-ViT: width \(c), depth \(depth), \(heads) heads, stem \(e) channels, image \(side), MLP \(hidden)\(qkvBias ? "" : ", no qkv bias"); SEMANTICS-LVVIT.md).
      graph \(name)(image: f32[3,\(side),\(side)]) -> f32[\(classes)] {
        preprocess \(transform.joined(separator: ", "))
        param @cls_token: f32[1,1,\(c)]
        param @pos_embed: f32[1,\(n),\(c)]
        param @patch_embed.conv1.weight: f32[\(e),3,7,7]
        param @patch_embed.conv2.weight, @patch_embed.conv3.weight: f32[\(e),\(e),3,3]
        param \(bn(1)): f32[\(e)]
        param \(bn(2)): f32[\(e)]
        param \(bn(3)): f32[\(e)]
        param @patch_embed.proj.weight: f32[\(c),\(e),8,8]
        param @patch_embed.proj.bias: f32[\(c)]
        a: f32[\(e),\(h2),\(h2)] = relu(batchnorm(conv2d(image, @patch_embed.conv1.weight, stride=2, pad=3), \(bn(1)), eps=1e-5))
        a = relu(batchnorm(conv2d(a, @patch_embed.conv2.weight, stride=1, pad=1), \(bn(2)), eps=1e-5))
        a = relu(batchnorm(conv2d(a, @patch_embed.conv3.weight, stride=1, pad=1), \(bn(3)), eps=1e-5))
        patches: f32[\(patches),\(c)] = patch_embed(a, @patch_embed.proj.weight, @patch_embed.proj.bias, patch=8)
        x: f32[\(n),\(c)] = concat(reshape(@cls_token, shape=[1,\(c)]), patches)
        x = x + reshape(@pos_embed, shape=[\(n),\(c)])

        block i in 0..<\(depth) {
          param @blocks.{i}.norm1.weight, @blocks.{i}.norm1.bias: f32[\(c)]
          param @blocks.{i}.attn.qkv.weight: f32[\(3 * c),\(c)]
      \(qkvBias ? "    param @blocks.{i}.attn.qkv.bias: f32[\(3 * c)]\n" : "")    param @blocks.{i}.attn.proj.weight: f32[\(c),\(c)]
          param @blocks.{i}.attn.proj.bias: f32[\(c)]
          param @blocks.{i}.norm2.weight, @blocks.{i}.norm2.bias: f32[\(c)]
          param @blocks.{i}.mlp.fc1.weight: f32[\(hidden),\(c)]
          param @blocks.{i}.mlp.fc1.bias: f32[\(hidden)]
          param @blocks.{i}.mlp.fc2.weight: f32[\(c),\(hidden)]
          param @blocks.{i}.mlp.fc2.bias: f32[\(c)]
          h = layernorm(x, @blocks.{i}.norm1.weight, @blocks.{i}.norm1.bias, eps=\(epsText))
          qkv: f32[\(n),\(3 * c)] = linear(h, @blocks.{i}.attn.qkv.weight\(qkvBias ? ", @blocks.{i}.attn.qkv.bias" : ""))
          q: f32[\(heads),\(n),\(d)], k: f32[\(heads),\(n),\(d)], v: f32[\(heads),\(n),\(d)] = split_heads(qkv, heads=\(heads))
          attn: f32[\(heads),\(n),\(n)] = softmax(matmul(q, transpose(k)) * \(scale))
          context: f32[\(n),\(c)] = merge_heads(matmul(attn, v))
          x = x + linear(context, @blocks.{i}.attn.proj.weight, @blocks.{i}.attn.proj.bias) * 0.5
          h = layernorm(x, @blocks.{i}.norm2.weight, @blocks.{i}.norm2.bias, eps=\(epsText))
          h: f32[\(n),\(hidden)] = gelu(linear(h, @blocks.{i}.mlp.fc1.weight, @blocks.{i}.mlp.fc1.bias))
          x = x + linear(h, @blocks.{i}.mlp.fc2.weight, @blocks.{i}.mlp.fc2.bias) * 0.5
        }

        param @norm.weight, @norm.bias: f32[\(c)]
        param @head.weight, @aux_head.weight: f32[\(classes),\(c)]
        param @head.bias, @aux_head.bias: f32[\(classes)]
        x = layernorm(x, @norm.weight, @norm.bias, eps=\(epsText))
        cls: f32[\(classes)] = linear(row(x, index=0), @head.weight, @head.bias)
        logits = cls + aux_head_max(x, @aux_head.weight, @aux_head.bias) * 0.5
        return logits
      }

      """
    return (text, assumptions)
  }
}
