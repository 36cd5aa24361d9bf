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

  /// The largest image side an evaluation set may have.
  public static let maxSide = 4096

  /// The first `limit` images (all if nil) of the set in `directory`, each `side`×`side`;
  /// with `classes`, every label must be below it.
  public static func load(directory: String, side: Int, limit: Int? = nil, classes: Int? = nil) throws(InputError) -> EvalSet {
    let labelsPath = directory + "/" + labelsFile, imagesPath = directory + "/" + imagesFile
    let labelBytes = try readBytes(labelsPath)
    let encoded = try readBytes(imagesPath)
    return try decode(
      labels: labelBytes, images: encoded, side: side, limit: limit, classes: classes,
      labelsPath: labelsPath, imagesPath: imagesPath)
  }

  /// The set from the contents of its two files (paths for messages): one label per image,
  /// every label a class, exactly as many pixels as images; an image that is cut short or a
  /// label out of range is named by its index.
  public static func decode(
    labels labelBytes: [UInt8], images encoded: [UInt8], side: Int, limit: Int? = nil, classes: Int? = nil,
    labelsPath: String, imagesPath: String
  ) throws(InputError) -> EvalSet {
    guard side > 0, side <= maxSide else {
      throw .badEvalSet(path: imagesPath, reason: "image side \(side) is not in 1…\(maxSide)")
    }
    guard !labelBytes.isEmpty else { throw .badEvalSet(path: labelsPath, reason: "no labels") }
    if let classes, let bad = labelBytes.firstIndex(where: { Int($0) >= classes }) {
      throw .badEvalSet(
        path: labelsPath, reason: "image \(bad) has label \(labelBytes[bad]), but the model has \(classes) classes (0…\(classes - 1))")
    }
    let size = side * side
    let expected = labelBytes.count * size
    let pixels = try decode(encoded, path: imagesPath, expected: expected)
    guard pixels.count == expected else {
      let image = pixels.count / size
      throw .badEvalSet(
        path: imagesPath,
        reason: "\(pixels.count) pixels decoded, expected \(labelBytes.count) images (one per label) of \(side)x\(side) = \(expected): image \(image) is cut short after \(pixels.count % size) of its pixels")
    }
    let count = max(0, min(limit ?? labelBytes.count, labelBytes.count))
    return EvalSet(
      images: (0..<count).map { Array(pixels[($0 * size)..<(($0 + 1) * size)]) },
      labels: labelBytes.prefix(count).map(Int.init), side: side)
  }

  /// The zero-run decoding; more than `expected` pixels (the images the labels announce) is
  /// an error found before they are all expanded.
  public static func decode(_ encoded: [UInt8], path: String, expected: Int = Int.max) throws(InputError) -> [UInt8] {
    var pixels: [UInt8] = []
    pixels.reserveCapacity(min(expected, encoded.count * 4))
    var i = 0
    while i < encoded.count {
      if encoded[i] != 0 {
        pixels.append(encoded[i])
        i += 1
      } else {
        guard i + 1 < encoded.count, encoded[i + 1] != 0 else {
          throw .badEvalSet(path: path, reason: "byte \(i): a zero-run without a count of 1 to 255")
        }
        pixels.append(contentsOf: repeatElement(0, count: Int(encoded[i + 1])))
        i += 2
      }
      if pixels.count > expected {
        throw .badEvalSet(
          path: path, reason: "byte \(i - 1): the data holds more than the \(expected) pixels of the images the labels announce")
      }
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
