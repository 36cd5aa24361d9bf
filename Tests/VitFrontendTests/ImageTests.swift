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
    #expect(message(Array("P6\n4 4\n65535\n".utf8)) == "i.ppm: error: maximum value 65535: only 8-bit PPM is supported (1 to 255)")
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
}
