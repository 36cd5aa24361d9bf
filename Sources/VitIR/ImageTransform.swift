/// How an 8-bit RGB image becomes the model's input tensor `f32[3,S,S]`, as timm's evaluation
/// transform does it: the shorter side resized (bicubic) to `floor(S / cropFraction)`, a
/// centre crop of S×S, `pixel / 255`, then `(v − mean[c]) / std[c]` per channel in float32.
///
/// A graph states it with `preprocess mean=…, std=…, crop_pct=…` (docs/graph-format.md); a
/// graph that does not gets `deit`, ImageNet's.
public struct ImageTransform: Sendable, Equatable {
  /// Per channel (R, G, B), in units of `pixel / 255`.
  public var mean: [Double]
  public var std: [Double]
  /// timm's `crop_pct`: the crop's share of the resized shorter side, in (0, 1].
  public var cropFraction: Double

  public init(mean: [Double], std: [Double], cropFraction: Double) {
    self.mean = mean
    self.std = std
    self.cropFraction = cropFraction
  }

  /// DeiT's (and timm's default): ImageNet mean and std, crop_pct 0.875 (224 from 256).
  public static let deit = ImageTransform(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], cropFraction: 0.875)

  /// The shorter side before cropping to `crop`: timm's `floor(crop / crop_pct)`.
  public func resizeSize(crop: Int) -> Int { Int((Double(crop) / cropFraction).rounded(.down)) }

  /// The statement that declares it in a `.graph` file.
  public var statement: String {
    func list(_ values: [Double]) -> String {
      Set(values).count == 1 ? formatReal(values[0]) : "[" + values.map(formatReal).joined(separator: ",") + "]"
    }
    return "preprocess mean=\(list(mean)), std=\(list(std)), crop_pct=\(formatReal(cropFraction))"
  }
}
