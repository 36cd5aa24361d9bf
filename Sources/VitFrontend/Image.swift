import Foundation
import VitIR

/// An 8-bit RGB image, row-major, channels interleaved.
public struct RGBImage: Equatable, Sendable {
  public var width: Int
  public var height: Int
  /// `[height][width][3]`
  public var pixels: [UInt8]

  public init(width: Int, height: Int, pixels: [UInt8]) {
    precondition(pixels.count == width * height * 3)
    self.width = width
    self.height = height
    self.pixels = pixels
  }
}

/// Portable pixmaps: P6 (binary) and P3 (ASCII), 8-bit.
public enum PPM {
  public static func read(path: String) throws(InputError) -> RGBImage {
    try decode(try readBytes(path), path: path)
  }

  public static func decode(_ bytes: [UInt8], path: String) throws(InputError) -> RGBImage {
    guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), bytes[1] == UInt8(ascii: "6") || bytes[1] == UInt8(ascii: "3") else {
      throw .notPPM(path: path)
    }
    let binary = bytes[1] == UInt8(ascii: "6")
    var at = 2
    let width = try field(bytes, &at, path, "width")
    let height = try field(bytes, &at, path, "height")
    let maxval = try field(bytes, &at, path, "maximum value")
    guard width > 0, height > 0 else { throw .badPPMHeader(path: path, reason: "zero width or height") }
    guard maxval >= 1, maxval <= 255 else { throw .unsupportedPPMDepth(path: path, maxval: maxval) }
    // Every size is checked before anything is allocated (each field is at most 10^6).
    try checkDimensions(width: width, height: height, path: path)
    let count = width * height * 3
    if binary {
      at += 1  // exactly one white-space character ends the header
      let available = max(0, bytes.count - at)
      guard available >= count else { throw .truncatedPPM(path: path, expected: count, found: available) }
    } else {
      // A P3 sample takes at least two bytes (a digit and a separator), the last one.
      let available = max(0, bytes.count - at)
      guard available >= 2 * count - 1 else {
        throw .truncatedPPM(path: path, expected: count, found: (available + 1) / 2)
      }
    }
    var pixels = [UInt8](repeating: 0, count: count)
    if binary {
      for i in 0..<count {
        let value = bytes[at + i]
        guard Int(value) <= maxval else {
          throw .badPPMSample(path: path, index: i, reason: "\(value) is above the maximum \(maxval)")
        }
        pixels[i] = value
      }
    } else {
      for i in 0..<count {
        let value: Int
        do {
          value = try field(bytes, &at, path, "sample")
        } catch {
          throw .badPPMSample(path: path, index: i, reason: "missing or not a number (truncated P3 data?)")
        }
        guard value <= maxval else { throw .badPPMSample(path: path, index: i, reason: "\(value) is above the maximum \(maxval)") }
        pixels[i] = UInt8(value)
      }
    }
    if maxval != 255 {
      for i in 0..<count { pixels[i] = UInt8((Int(pixels[i]) * 255 + maxval / 2) / maxval) }
    }
    return RGBImage(width: width, height: height, pixels: pixels)
  }

  /// The limits every image reader shares (Runtime/main/main.c checks the same): at most
  /// `Limits.maxImagePixels` pixels, and the longer side at most `Limits.maxImageAspect` times
  /// the shorter, so that resizing the shorter side to the model's size stays bounded.
  public static func checkDimensions(width: Int, height: Int, path: String) throws(InputError) {
    guard width.multipliedReportingOverflow(by: height).partialValue <= Limits.maxImagePixels,
      width <= Limits.maxImagePixels, height <= Limits.maxImagePixels
    else {
      throw .imageTooLarge(path: path, width: width, height: height)
    }
    guard max(width, height) <= Limits.maxImageAspect * min(width, height) else {
      throw .imageAspect(path: path, width: width, height: height)
    }
  }

  /// A decimal header field after white space and `#` comments.
  private static func field(_ bytes: [UInt8], _ at: inout Int, _ path: String, _ what: String) throws(InputError) -> Int {
    while at < bytes.count {
      let c = bytes[at]
      if c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d {
        at += 1
      } else if c == UInt8(ascii: "#") {
        while at < bytes.count && bytes[at] != 0x0a { at += 1 }
      } else {
        break
      }
    }
    guard at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) else {
      throw .badPPMHeader(path: path, reason: "expected the \(what)")
    }
    var value = 0
    while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) {
      value = value * 10 + Int(bytes[at] - UInt8(ascii: "0"))
      guard value <= 1_000_000 else { throw .badPPMHeader(path: path, reason: "the \(what) is too large") }
      at += 1
    }
    return value
  }

  /// P6 bytes of an image.
  public static func encodeP6(_ image: RGBImage) -> [UInt8] {
    Array("P6\n\(image.width) \(image.height)\n255\n".utf8) + image.pixels
  }
}

/// timm's evaluation transform, exactly as torchvision runs it on a Pillow image:
/// `Resize(floor(crop / crop_pct), BICUBIC)`, `CenterCrop(crop)`, `ToTensor()`,
/// `Normalize(mean, std)`, with the graph's `ImageTransform` (DeiT's: ImageNet mean and std,
/// crop_pct 0.875). Runtime/main/main.c implements the same steps in C.
public enum Preprocessing {
  /// DeiT's mean and std as float32 (torch converts the Python floats the same way).
  public static let mean: [Float] = ImageTransform.deit.mean.map(Float.init)
  public static let std: [Float] = ImageTransform.deit.std.map(Float.init)

  /// The shorter side before cropping with DeiT's crop_pct 0.875.
  public static func resizeSize(crop: Int) -> Int { ImageTransform.deit.resizeSize(crop: crop) }

  /// torchvision's output size for `Resize(size)`: the shorter side becomes `size`, the longer
  /// `int(size * long / short)`.
  public static func resizedDimensions(width: Int, height: Int, shorter size: Int) -> (width: Int, height: Int) {
    if width <= height {
      return (size, Int(Double(size * height) / Double(width)))
    }
    return (Int(Double(size * width) / Double(height)), size)
  }

  /// CHW float32 `[3, crop, crop]`, normalized, with DeiT's transform.
  public static func deitEvaluation(_ image: RGBImage, crop: Int) -> Tensor {
    evaluation(image, crop: crop, transform: .deit)
  }

  /// CHW float32 `[3, crop, crop]`: `transform` applied to `image`. An image whose shorter side
  /// already has the resize size is not resampled (Pillow returns a copy).
  public static func evaluation(_ image: RGBImage, crop: Int, transform: ImageTransform) -> Tensor {
    let (width, height) = resizedDimensions(
      width: image.width, height: image.height, shorter: transform.resizeSize(crop: crop))
    let cropped = centerCrop(resizeBicubic(image, width: width, height: height), size: crop)
    return normalize(cropped, transform: transform)
  }

  /// The input tensor for `image` of a graph with input `f32[3,S,S]`, by the graph's transform.
  public static func evaluation(_ image: RGBImage, for graph: Graph) -> Tensor {
    evaluation(image, crop: graph.type(of: graph.inputs[0]).dims.last!.bound, transform: graph.imageTransform)
  }

  /// ToTensor and Normalize in float32, as torch computes them.
  public static func normalize(_ image: RGBImage, transform: ImageTransform = .deit) -> Tensor {
    let mean = transform.mean.map(Float.init), std = transform.std.map(Float.init)
    var scalars = [Float](repeating: 0, count: 3 * image.width * image.height)
    for c in 0..<3 {
      for y in 0..<image.height {
        for x in 0..<image.width {
          let v = Float(image.pixels[(y * image.width + x) * 3 + c]) / 255
          scalars[(c * image.height + y) * image.width + x] = (v - mean[c]) / std[c]
        }
      }
    }
    return Tensor(shape: [3, image.height, image.width], scalars: scalars)
  }

  /// torchvision's CenterCrop: offsets `int(round((d - size) / 2.0))`, Python's round (half
  /// to even).
  public static func centerCrop(_ image: RGBImage, size: Int) -> RGBImage {
    func offset(_ d: Int) -> Int { Int((Double(d - size) / 2).rounded(.toNearestOrEven)) }
    let (top, left) = (offset(image.height), offset(image.width))
    var pixels = [UInt8](repeating: 0, count: size * size * 3)
    for y in 0..<size {
      for x in 0..<size {
        for c in 0..<3 {
          let sy = y + top, sx = x + left
          if sy >= 0, sy < image.height, sx >= 0, sx < image.width {
            pixels[(y * size + x) * 3 + c] = image.pixels[(sy * image.width + sx) * 3 + c]
          }
        }
      }
    }
    return RGBImage(width: size, height: size, pixels: pixels)
  }

  static let precisionBits = 32 - 8 - 2

  /// Pillow's bicubic filter (a = −0.5, support 2).
  static func bicubic(_ x: Double) -> Double {
    let a = -0.5
    let x = abs(x)
    if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
    if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
    return 0
  }

  /// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`: for each output pixel
  /// the first input index, the count, and fixed-point weights.
  static func coefficients(inSize: Int, outSize: Int) -> (bounds: [(Int, Int)], weights: [[Int32]]) {
    let scale = Double(inSize) / Double(outSize)
    let filterScale = max(scale, 1)
    let support = 2.0 * filterScale
    var bounds: [(Int, Int)] = []
    var weights: [[Int32]] = []
    for xx in 0..<outSize {
      let center = (Double(xx) + 0.5) * scale
      var total = 0.0
      let inverse = 1 / filterScale
      let xmin = max(Int(center - support + 0.5), 0)  // Int() truncates toward zero, like C
      let xmax = min(Int(center + support + 0.5), inSize) - xmin
      var k = [Double](repeating: 0, count: max(xmax, 0))
      for x in 0..<max(xmax, 0) {
        let w = bicubic((Double(x + xmin) - center + 0.5) * inverse)
        k[x] = w
        total += w
      }
      if total != 0 { for x in k.indices { k[x] /= total } }
      let one = Double(1 << precisionBits)
      weights.append(k.map { $0 < 0 ? Int32(-0.5 + $0 * one) : Int32(0.5 + $0 * one) })
      bounds.append((xmin, max(xmax, 0)))
    }
    return (bounds, weights)
  }

  static func clip8(_ value: Int32) -> UInt8 {
    let shifted = value >> Int32(precisionBits)
    return shifted < 0 ? 0 : shifted > 255 ? 255 : UInt8(shifted)
  }

  /// `Image.resize((width, height), Image.BICUBIC)` of Pillow for an 8-bit RGB image: a
  /// horizontal pass into an 8-bit intermediate over the rows the vertical pass needs, then a
  /// vertical pass; a pass whose size does not change is skipped.
  public static func resizeBicubic(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
    let horizontal = coefficients(inSize: image.width, outSize: width)
    var vertical = coefficients(inSize: image.height, outSize: height)
    var current = image
    if width != image.width {
      let first = vertical.bounds[0].0
      let last = vertical.bounds[height - 1].0 + vertical.bounds[height - 1].1
      for i in 0..<height { vertical.bounds[i].0 -= first }
      let rows = last - first
      var pixels = [UInt8](repeating: 0, count: width * rows * 3)
      for yy in 0..<rows {
        for xx in 0..<width {
          let (xmin, count) = horizontal.bounds[xx]
          let k = horizontal.weights[xx]
          for c in 0..<3 {
            var sum = Int32(1 << (precisionBits - 1))
            for x in 0..<count {
              sum &+= Int32(image.pixels[((yy + first) * image.width + x + xmin) * 3 + c]) &* k[x]
            }
            pixels[(yy * width + xx) * 3 + c] = clip8(sum)
          }
        }
      }
      current = RGBImage(width: width, height: rows, pixels: pixels)
    }
    if height != image.height {
      var pixels = [UInt8](repeating: 0, count: current.width * height * 3)
      for yy in 0..<height {
        let (ymin, count) = vertical.bounds[yy]
        let k = vertical.weights[yy]
        for xx in 0..<current.width {
          for c in 0..<3 {
            var sum = Int32(1 << (precisionBits - 1))
            for y in 0..<count {
              sum &+= Int32(current.pixels[((y + ymin) * current.width + xx) * 3 + c]) &* k[y]
            }
            pixels[(yy * current.width + xx) * 3 + c] = clip8(sum)
          }
        }
      }
      current = RGBImage(width: current.width, height: height, pixels: pixels)
    }
    return current
  }
}

/// Raw model inputs: little-endian float32, no header.
public enum RawInput {
  public static func readF32(path: String, shape: [Int]) throws(InputError) -> Tensor {
    let bytes = try readBytes(path)
    let count = shape.reduce(1, *)
    guard bytes.count == 4 * count else {
      throw .rawInputSize(path: path, expectedBytes: 4 * count, shape: shape, foundBytes: bytes.count)
    }
    var scalars = [Float](repeating: 0, count: count)
    for i in 0..<count {
      let p = 4 * i
      scalars[i] = Float(bitPattern: UInt32(bytes[p]) | UInt32(bytes[p + 1]) << 8 | UInt32(bytes[p + 2]) << 16 | UInt32(bytes[p + 3]) << 24)
    }
    return Tensor(shape: shape, scalars: scalars)
  }
}
