/// A labelled evaluation set (docs/eval-set.md), as samples/fashion ships one: a directory with
/// `test-labels.u8` (one byte per image, the class index) and `test-images.rle` (the images,
/// grey, `side`×`side` each, row-major, one after another, in a zero-run encoding: a nonzero
/// byte stands for itself, a 0 byte followed by n in 1…255 for n zeros; runs may cross
/// images). Runtime/main/main.c (`--eval`) reads the same files.
public struct EvalSet: Sendable {
  public static let labelsFile = "test-labels.u8"
  public static let imagesFile = "test-images.rle"

  /// Grey images, `side`×`side` bytes each.
  public var images: [[UInt8]]
  public var labels: [Int]
  public var side: Int

  /// The first `limit` images (all if nil) of the set in `directory`, each `side`×`side`.
  public static func load(directory: String, side: Int, limit: Int? = nil) throws(InputError) -> EvalSet {
    let labelsPath = directory + "/" + labelsFile, imagesPath = directory + "/" + imagesFile
    let labelBytes = try readBytes(labelsPath)
    guard !labelBytes.isEmpty else { throw .badEvalSet(path: labelsPath, reason: "no labels") }
    let encoded = try readBytes(imagesPath)
    let pixels = try decode(encoded, path: imagesPath)
    let size = side * side
    guard pixels.count == labelBytes.count * size else {
      throw .badEvalSet(
        path: imagesPath,
        reason: "\(pixels.count) pixels decoded, expected \(labelBytes.count) images (one per label) of \(side)x\(side) = \(labelBytes.count * size)")
    }
    let count = min(limit ?? labelBytes.count, labelBytes.count)
    return EvalSet(
      images: (0..<count).map { Array(pixels[($0 * size)..<(($0 + 1) * size)]) },
      labels: labelBytes.prefix(count).map(Int.init), side: side)
  }

  /// The zero-run decoding.
  public static func decode(_ encoded: [UInt8], path: String) throws(InputError) -> [UInt8] {
    var pixels: [UInt8] = []
    pixels.reserveCapacity(encoded.count * 4)
    var i = 0
    while i < encoded.count {
      if encoded[i] != 0 {
        pixels.append(encoded[i])
        i += 1
        continue
      }
      guard i + 1 < encoded.count, encoded[i + 1] != 0 else {
        throw .badEvalSet(path: path, reason: "byte \(i): a zero-run without a count of 1 to 255")
      }
      pixels.append(contentsOf: repeatElement(0, count: Int(encoded[i + 1])))
      i += 2
    }
    return pixels
  }

  /// Image `index` as RGB, the grey value in all three channels.
  public func rgb(_ index: Int) -> RGBImage {
    var pixels = [UInt8](repeating: 0, count: side * side * 3)
    for (i, grey) in images[index].enumerated() {
      pixels[3 * i] = grey
      pixels[3 * i + 1] = grey
      pixels[3 * i + 2] = grey
    }
    return RGBImage(width: side, height: side, pixels: pixels)
  }
}
