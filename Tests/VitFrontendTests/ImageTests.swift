import Foundation
import TestSupport
import Testing
import VitIR

@testable import VitFrontend

struct PreprocessFixture: Decodable {
  var source: String
  var resized: [Int]
  var sum: Double
  var indices: [Int]
  var values: [Float]
}

@Suite struct ImageTests {
  let fixtures = repositoryRoot.appendingPathComponent("Tests/Fixtures/preprocess")

  @Test func decodesP6AndP3WithComments() throws {
    let p6 = Array("P6\n# a comment\n2 1\n255\n".utf8) + [1, 2, 3, 250, 251, 252]
    #expect(try PPM.decode(p6, path: "a.ppm") == RGBImage(width: 2, height: 1, pixels: [1, 2, 3, 250, 251, 252]))
    let p3 = Array("P3 2 1 15 # maxval 15\n0 1 2\n15 14 #c\n 13\n".utf8)
    // maxval 15 scales to 0...255 as (v * 255 + 7) / 15.
    #expect(try PPM.decode(p3, path: "a.ppm").pixels == [0, 17, 34, 255, 238, 221])
    let image = RGBImage(width: 3, height: 2, pixels: (0..<18).map(UInt8.init))
    #expect(try PPM.decode(PPM.encodeP6(image), path: "r.ppm") == image)
  }

  @Test func badImagesGetOneClearLine() {
    func message(_ bytes: [UInt8]) -> String? {
      do {
        _ = try PPM.decode(bytes, path: "i.ppm")
        return nil
      } catch {
        return error.description
      }
    }
    #expect(message(Array("GIF89a".utf8)) == "i.ppm: error: not a PPM image (expected the magic number P6 or P3)")
    #expect(message(Array("P6\n4 4\n255\n".utf8) + [1, 2, 3]) == "i.ppm: error: truncated PPM: expected 48 bytes of pixels, found 3")
    #expect(message(Array("P6\n4 4\n65535\n".utf8)) == "i.ppm: error: maximum value 65535 (a 16-bit PPM): only 8-bit PPM is supported (maximum value 1 to 255)")
    #expect(message(Array("P6\n4 x\n255\n".utf8)) == "i.ppm: error: bad PPM header: expected the height")
    #expect(message(Array("P3\n1 1\n255\n1 2\n".utf8)) == "i.ppm: error: PPM sample 2: missing or not a number (truncated P3 data?)")
    #expect(message(Array("P3\n1 1\n9\n1 2 10\n".utf8)) == "i.ppm: error: PPM sample 2: 10 is above the maximum 9")
    #expect(throws: InputError.fileNotFound(path: "none.ppm")) { try PPM.read(path: "none.ppm") }
  }

  /// Resize + center crop equal torchvision on Pillow byte for byte, and the normalized tensor
  /// equals torch's float32 values exactly.
  @Test(arguments: ["chelsea", "coffee", "astronaut", "small"])
  func matchesTorchvisionExactly(name: String) throws {
    let fixture = try JSONDecoder().decode(
      PreprocessFixture.self, from: Data(contentsOf: fixtures.appendingPathComponent("\(name).json")))
    let image = try PPM.read(path: repositoryRoot.appendingPathComponent(fixture.source).path)
    let (width, height) = Preprocessing.resizedDimensions(width: image.width, height: image.height, shorter: 256)
    #expect([width, height] == fixture.resized)
    let cropped = Preprocessing.centerCrop(Preprocessing.resizeBicubic(image, width: width, height: height), size: 224)
    let expected = try PPM.read(path: fixtures.appendingPathComponent("\(name).crop224.ppm").path)
    let differing = zip(cropped.pixels, expected.pixels).filter { $0 != $1 }.count
    #expect(differing == 0, "\(differing) of \(expected.pixels.count) bytes differ from Pillow")
    let tensor = Preprocessing.deitEvaluation(image, crop: 224)
    #expect(tensor.shape == [3, 224, 224])
    #expect(fixture.indices.map { tensor.scalars[$0] } == fixture.values)
    let sum = tensor.scalars.reduce(0.0) { $0 + Double($1) }
    #expect(abs(sum - fixture.sum) < 1e-3)
  }

  @Test func rawInputMustHaveTheExactSize() throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("vitc-raw-\(UUID().uuidString).f32")
    defer { try? FileManager.default.removeItem(at: url) }
    try Data([0, 0, 128, 63, 0, 0, 0, 64]).write(to: url)
    #expect(try RawInput.readF32(path: url.path, shape: [2]).scalars == [1, 2])
    #expect(throws: InputError.rawInputSize(path: url.path, expectedBytes: 12, shape: [3], foundBytes: 8)) {
      try RawInput.readF32(path: url.path, shape: [3])
    }
  }

  /// The zero-run encoding of evaluation sets, and the set's checks.
  @Test func evalSetDecodesAndChecksItsFiles() throws {
    #expect(try EvalSet.decode([7, 0, 3, 9, 0, 255, 0, 1], path: "x") == [7, 0, 0, 0, 9] + [UInt8](repeating: 0, count: 256))
    #expect(throws: InputError.badEvalSet(path: "x", reason: "byte 1: a zero-run without a count of 1 to 255")) {
      try EvalSet.decode([7, 0], path: "x")
    }
    #expect(throws: InputError.badEvalSet(path: "x", reason: "byte 0: a zero-run without a count of 1 to 255")) {
      try EvalSet.decode([0, 0, 4], path: "x")
    }
    let folder = repositoryPath("samples/fashion")
    let set = try EvalSet.load(directory: folder, side: 64, limit: 3)
    #expect(set.images.count == 3 && set.labels.count == 3 && set.images.allSatisfy { $0.count == 4096 })
    #expect(set.rgb(1).pixels.count == 64 * 64 * 3)
    // Decoding stops as soon as the data holds more than the labels announce.
    let tooSmall = #expect(throws: InputError.self) { try EvalSet.load(directory: folder, side: 32) }
    #expect(
      tooSmall?.description.hasPrefix(folder + "/test-images.rle: error: not an evaluation set (docs/eval-set.md): byte ") == true)
    #expect(
      tooSmall?.description.hasSuffix("the data holds more than the 2048000 pixels of the images the labels announce") == true)
    #expect(throws: InputError.fileNotFound(path: "no/such/test-labels.u8")) {
      try EvalSet.load(directory: "no/such", side: 64)
    }
  }

  /// A graph's transform: the fashion sample's (x/255 − 0.5)/0.5 with crop_pct 1 leaves a
  /// 64×64 image unresampled and gives exactly pixel/127.5 − 1, as the training script does.
  @Test func graphTransformNormalizesAsTheGraphSays() throws {
    let graph = try GraphLoader.load(path: repositoryPath("samples/fashion.graph"))
    let set = try EvalSet.load(directory: repositoryPath("samples/fashion"), side: 64, limit: 2)
    let tensor = Preprocessing.evaluation(set.rgb(1), for: graph)
    #expect(tensor.shape == [3, 64, 64])
    // float32 arithmetic, as torch does it: x / 127.5 - 1 is (x / 255 - 0.5) / 0.5 exactly
    let expected = set.images[1].map { Float($0) / 127.5 - 1 }
    #expect(Array(tensor.scalars[0..<4096]) == expected, "not pixel/127.5 - 1 in float32")
    #expect(Array(tensor.scalars[8192..<12288]) == expected, "channel 2 differs")
    // A larger image is resized by floor(64 / 1.0) = 64 on its shorter side, then cropped.
    let wide = RGBImage(width: 96, height: 80, pixels: [UInt8](repeating: 200, count: 96 * 80 * 3))
    #expect(Preprocessing.evaluation(wide, for: graph).shape == [3, 64, 64])
  }
}
