import Foundation
import TestSupport
import Testing
import VitIR

@testable import VitFrontend

/// Hostile or corrupt inputs (docs/reliability.md): every reader gives one clear, located line
/// and a typed error, never a trap, a stack overflow, an allocation failure or a hang. Each
/// case here was a crash, a hang or a silent acceptance before; the fuzzers' findings join them.
@Suite struct HostilePPMTests {
  func message(_ bytes: [UInt8]) -> String? {
    do {
      _ = try PPM.decode(bytes, path: "i.ppm")
      return nil
    } catch {
      return error.description
    }
  }

  @Test func binarySampleAboveMaxvalIsRefused() {
    let bytes = Array("P6\n2 1\n100\n".utf8) + [1, 2, 3, 4, 200, 6]
    #expect(message(bytes) == "i.ppm: error: PPM sample 4: 200 is above the maximum 100")
  }

  @Test func hugeHeaderIsRefusedBeforeAllocating() {
    // 10^6 × 10^6 pixels announced, 3 bytes present: the pixel limit, not an allocation.
    #expect(
      message(Array("P6\n1000000 1000000\n255\n".utf8) + [1, 2, 3])
        == "i.ppm: error: image of 1000000x1000000 pixels is too large: vitc reads at most 67108864 pixels")
    // Within the limit but 48 MB short: the byte count is checked before the pixels are allocated.
    #expect(
      message(Array("P6\n4000 4000\n255\n".utf8) + [1, 2, 3])
        == "i.ppm: error: truncated PPM: expected 48000000 bytes of pixels, found 3")
    #expect(
      message(Array("P3\n4000 4000\n255\n1 2 3".utf8))
        == "i.ppm: error: truncated PPM: expected 48000000 bytes of pixels, found 3")
  }

  @Test func extremeAspectRatioIsRefused() {
    // One pixel tall and 100,000 wide: vitc resized the whole strip to 256 × 25,600,000.
    let strip = Array("P6\n100000 1\n255\n".utf8) + [UInt8](repeating: 9, count: 300_000)
    #expect(
      message(strip)
        == "i.ppm: error: image of 100000x1 pixels is too elongated: the longer side may be at most 16 times the shorter")
    // The limit itself is accepted, on either side.
    #expect(message(Array("P6\n16 1\n255\n".utf8) + [UInt8](repeating: 9, count: 48)) == nil)
    #expect(message(Array("P6\n1 16\n255\n".utf8) + [UInt8](repeating: 9, count: 48)) == nil)
    #expect(message(Array("P6\n1 17\n255\n".utf8) + [UInt8](repeating: 9, count: 51))?.contains("too elongated") == true)
  }

  @Test func sixteenBitIsNamed() {
    #expect(
      message(Array("P6\n1 1\n65535\n".utf8) + [0, 0, 0, 0, 0, 0])
        == "i.ppm: error: maximum value 65535 (a 16-bit PPM): only 8-bit PPM is supported (maximum value 1 to 255)")
    #expect(message(Array("P6\n1 1\n0\n".utf8) + [0, 0, 0])?.contains("maximum value 0: only 8-bit") == true)
  }

  /// Paths are escaped, and cut only past 4096 characters (a real path stays whole).
  @Test func pathsInMessagesAreCleaned() {
    let path = "a\u{1B}[31m" + String(repeating: "x", count: 300)
    let text = (#expect(throws: InputError.self) { try PPM.decode([1, 2], path: path) })?.description ?? ""
    #expect(text.hasPrefix("a\\u{1B}[31mxxx"))
    #expect(text.hasSuffix("x: error: not a PPM image (expected the magic number P6 or P3)"))
    let endless = String(repeating: "d/", count: 3000)
    let cut = (#expect(throws: InputError.self) { try PPM.decode([1, 2], path: endless) })?.description ?? ""
    #expect(cut.hasSuffix("d/…(6000 characters): error: not a PPM image (expected the magic number P6 or P3)"))
    #expect(!text.contains("\u{1B}"))
  }
}

@Suite struct HostileGraphTests {
  let header = "graph g(x: f32[4]) -> f32[4] {\n"

  @Test func aDimensionNearTwoToTheSixtyTwoIsRefused() {
    #expect(
      parseError("graph g(x: f32[4611686018427387904,4]) -> f32[4] {\n  return x\n}\n")
        == "t.graph:1:12: error: the type f32[4611686018427387904,4] is too large: vitc allows at most 1073741824 bytes (1 GiB) per tensor")
    // Two dims whose product overflows Int.
    #expect(parseError("graph g(x: f32[4294967296,4294967296]) -> f32[4] {\n  return x\n}\n")?.contains("is too large") == true)
    // A reshape to a shape whose element count overflows (it trapped in ShapeInference).
    #expect(
      parseError(header + "  y = reshape(x, shape=[4611686018427387904,4611686018427387904])\n  return x\n}\n")?
        .hasPrefix("t.graph:2:7: error: attribute 'shape' of 'reshape' is [4611686018427387904,4611686018427387904], expected positive dims with 4 elements") == true)
    // A count attribute that would make a huge result, and one that made 3 * heads overflow.
    #expect(
      parseError(header + "  p = patch_owner(patches=4611686018427387904)\n  return x\n}\n")
        == "t.graph:2:7: error: attribute 'patches' of 'patch_owner' is 4611686018427387904, expected a positive integer up to 1073741824")
    #expect(
      parseError("graph g(x: f32[4,12]) -> f32[4] {\n  y = attention(x, heads=4611686018427387904, scale=1)\n  return x\n}\n")?
        .contains("expected a positive integer up to 1073741824") == true)
    // A block number at Int.max made its range trap.
    #expect(
      parseError(header + "  block 9223372036854775807 {\n  }\n  return x\n}\n")
        == "t.graph:2:3: error: block range 9223372036854775807..<9223372036854775807 is empty or negative")
  }

  @Test func deepNestingIsALocatedErrorNotAStackOverflow() {
    let parens = String(repeating: "(", count: 20_000) + "x" + String(repeating: ")", count: 20_000)
    #expect(
      parseError(header + "  return " + parens + "\n}\n")
        == "t.graph:2:110: error: expression nested more than 100 deep (parentheses, calls, '+' and '*'); split it into statements")
    let calls = String(repeating: "gelu(", count: 10_000) + "x" + String(repeating: ")", count: 10_000)
    #expect(parseError(header + "  return " + calls + "\n}\n")?.contains("error: expression nested more than 100 deep") == true)
    let sum = "x" + String(repeating: " + x", count: 20_000)
    #expect(parseError(header + "  return " + sum + "\n}\n") == "t.graph:2:408: error: expression nested more than 100 deep (parentheses, calls, '+' and '*'); split it into statements")
    let scaled = "x" + String(repeating: " * 2", count: 20_000)
    #expect(parseError(header + "  return " + scaled + "\n}\n")?.contains("nested more than 100 deep") == true)
    // Nested parentheses on the left of a '+' chain count too: the tree's height is what matters.
    let mixed = String(repeating: "(", count: 60) + "x" + String(repeating: " + x)", count: 60) + String(repeating: " + x", count: 60)
    #expect(parseError(header + "  return " + mixed + "\n}\n")?.contains("nested more than 100 deep") == true)
    // Just inside the limit parses.
    #expect(parseError(header + "  return x" + String(repeating: " + x", count: 99) + "\n}\n") == nil)
  }

  @Test func hugeBlockLoopsAreRefusedAndLargeOnesAreLinear() throws {
    #expect(
      parseError(header + "  block i in 0..<1000000000 {\n    x = gelu(x)\n  }\n  return x\n}\n")
        == "t.graph:2:3: error: the graph unrolls to 1000000000 statements; vitc allows at most 200000")
    #expect(
      parseError(header + "  block i in 0..<9223372036854775807 {\n    x = gelu(x)\n    x = gelu(x)\n  }\n  return x\n}\n")
        == "t.graph:2:3: error: the graph unrolls to more than 9223372036854775807 statements; vitc allows at most 200000")
    // 10,000 unrolled statements, each naming 'x' again: naming was quadratic in them.
    let start = Date()
    let graph = try GraphLoader.parse(header + "  block i in 0..<10000 {\n    x = gelu(x)\n  }\n  return x\n}\n", file: "t.graph")
    #expect(graph.ops.count == 10_000)
    #expect(graph[graph.output!].name == "x.10000")
    #expect(Date().timeIntervalSince(start) < 10, "elaborating 10,000 statements took \(Date().timeIntervalSince(start)) s")
  }

  @Test func nonFiniteAndOutOfDomainRealsAreRefused() {
    let layernorm = "graph g(x: f32[4]) -> f32[4] {\n  param @w, @b: f32[4]\n  return layernorm(x, @w, @b, eps=EPS)\n}\n"
    #expect(
      parseError(layernorm.replacingOccurrences(of: "EPS", with: "1e400"))
        == "t.graph:3:35: error: expected a finite number, found '1e400'")
    #expect(
      parseError(layernorm.replacingOccurrences(of: "EPS", with: "1e300"))
        == "t.graph:3:10: error: attribute 'eps' of 'layernorm' is 1e+300, which is not a finite float32 number")
    #expect(
      parseError(layernorm.replacingOccurrences(of: "EPS", with: "1e-50"))
        == "t.graph:3:10: error: attribute 'eps' of 'layernorm' is 1e-50, expected a positive number (as float32)")
    #expect(parseError(header + "  return x * 1e39\n}\n") == "t.graph:2:12: error: attribute 'factor' of 'scale' is 1e+39, which is not a finite float32 number")
    #expect(parseError(header + "  preprocess std=1e39\n  return x\n}\n") == "t.graph:2:18: error: std must be positive and finite as float32, found 1e+39")
    #expect(parseError(header + "  preprocess mean=[0,1e39,0]\n  return x\n}\n") == "t.graph:2:19: error: mean must be finite as float32, found 1e+39")
  }

  @Test func cropFractionIsBounded() {
    // A tiny crop_pct divided to infinity (a trap) or asked for a resize of hundreds of GB.
    for value in ["1e-300", "0.001", "0.2", "1.5"] {
      #expect(
        parseError(header + "  preprocess crop_pct=\(value)\n  return x\n}\n")?
          .hasPrefix("t.graph:2:23: error: crop_pct must be one number in [0.25, 1] (the resize is then at most 4× the crop)") == true)
    }
    #expect(parseError(header + "  preprocess crop_pct=0.25\n  return x\n}\n") == nil)
    // A large input with a small crop_pct: the resize of a 16:1 image would pass 1 GiB.
    #expect(
      parseError("graph g(image: f32[3,2048,2048]) -> f32[4] {\n  preprocess crop_pct=0.25\n  return image\n}\n")
        == "t.graph:1:9: error: an image for input 'image' is resized to 8192 pixels on its shorter side (floor(2048 / crop_pct 0.25)); vitc allows at most 4096")
    #expect(
      parseError("graph g(image: f32[3,1024,1024]) -> f32[3,1024,1024] {\n  preprocess crop_pct=0.25\n  return image\n}\n") == nil)
  }

  @Test func longAndControlNamesAreShortenedAndEscaped() {
    let long = String(repeating: "a", count: 1_000_000)
    let text = parseError(header + "  return \(long)\n}\n")
    #expect(text?.hasPrefix("t.graph:2:10: error: '" + String(repeating: "a", count: 200) + "…(1000000 characters)' is used before") == true)
    #expect((text?.count ?? .max) < 400)
    let op = parseError(header + "  return zz\u{7F}zz(x)\n}\n")
    #expect(op == "t.graph:2:12: error: unexpected character '\\u{7F}'")
    // A type of 100,000 dims (one element) is within the size bound; its message is cut.
    let rank = parseError("graph g(x: f32[" + String(repeating: "1,", count: 100_000) + "1]) -> f32[4] {\n  return x\n}\n")
    #expect(rank?.hasPrefix("t.graph:2:3: error: the graph returns f32[1,1,1,") == true)
    #expect((rank?.count ?? .max) < 600)
    let weird = parseError("graph g(x: f32[4]) -> f32[4] {\n  return \u{202E}x\n}\n")
    #expect(weird == "t.graph:2:10: error: unexpected character '\\u{202E}'")
  }
}

@Suite struct HostileSafetensorsTests {
  func file(_ header: String, data: [UInt8]) -> [UInt8] {
    let json = Array(header.utf8)
    var length = UInt64(json.count)
    var bytes: [UInt8] = []
    for _ in 0..<8 {
      bytes.append(UInt8(length & 0xff))
      length >>= 8
    }
    return bytes + json + data
  }

  func error(_ bytes: [UInt8]) -> String? {
    do {
      _ = try SafetensorsFile(bytes: bytes, path: "w.safetensors")
      return nil
    } catch {
      return error.description
    }
  }

  let eight = [UInt8](repeating: 0, count: 8)

  @Test func overlappingTensorsAreRefused() {
    let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
    #expect(
      error(file(header, data: eight))
        == "w.safetensors: error: corrupt safetensors: tensors 'a' (bytes 0..<8) and 'b' (bytes 4..<8) overlap")
    let same = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
    #expect(error(file(same, data: eight))?.contains("overlap") == true)
  }

  @Test func uncoveredBytesAreRefused() {
    let hole = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
    #expect(error(file(hole, data: eight)) == "w.safetensors: error: corrupt safetensors: bytes 0..<4 of the data section belong to no tensor")
    let tail = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
    #expect(error(file(tail, data: eight)) == "w.safetensors: error: corrupt safetensors: bytes 4..<8 of the data section belong to no tensor")
  }

  @Test func duplicateNamesAreNamedAsDuplicates() {
    let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
    #expect(error(file(header, data: eight)) == "w.safetensors: error: corrupt safetensors header: tensor 'a' is named twice")
    let inner = #"{"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}"#
    #expect(
      error(file(inner, data: eight))
        == "w.safetensors: error: corrupt safetensors header: the header is not valid JSON: duplicate key 'dtype' at byte 28")
  }

  @Test func headerThatIsNotJSONIsSaidToBeSo() {
    // A JSON (or git-lfs pointer) file given as weights: its first bytes are text.
    #expect(
      error(Array(#"{"a": 1, "b": [1, 2, 3]}"#.utf8))
        == "w.safetensors: error: corrupt safetensors header: the file starts with text ('{\"a\": 1,'), not the 8-byte little-endian header length (not a safetensors file?)")
    #expect(
      error(file("{\"a\": nan}", data: []))
        == "w.safetensors: error: corrupt safetensors header: the header is not valid JSON: expected 'null' at byte 15")
    #expect(error(file("{\"a\":" + String(repeating: "[", count: 100_000), data: []))?.contains("nested more than 64 deep") == true)
    // Offsets must be exact integers: 1e30 or 4.5 are not offsets.
    #expect(
      error(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1e30]}}"#, data: []))
        == "w.safetensors: error: corrupt safetensors header: entry 'a' has no 'data_offsets' [begin, end]")
    #expect(error(file(#"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#, data: []))?.contains("do not hold F32") == true)
  }

  @Test func nonFiniteWeightsAreRefusedByNameAndIndex() throws {
    let bytes = SafetensorsWriter.encode([
      ("fine", Tensor(shape: [2], scalars: [1, 2])),
      ("bad", Tensor(shape: [2, 2], scalars: [1, 2, .nan, .infinity])),
    ])
    let weights = try SafetensorsFile(bytes: bytes, path: "w.safetensors")
    #expect(try weights.tensor("fine").scalars == [1, 2])
    let text = (#expect(throws: InputError.self) { try weights.tensor("bad") })?.description
    #expect(
      text == "w.safetensors: error: tensor 'bad' holds nan at index 2 (row-major), the first non-finite value; vitc refuses NaN and infinite weights (--allow-non-finite accepts them)")
    #expect(try weights.tensor("bad", allowNonFinite: true).scalars[3] == .infinity)
    // F16 infinity, through the binding of a graph.
    let half = SafetensorsWriter.encode([("w", Tensor(shape: [4], scalars: [0, 1, 70000, 0]))], dtype: "F16")
    let graph = try GraphLoader.parse("graph g(x: f32[4]) -> f32[4] {\n  param @w: f32[4]\n  return x + @w\n}\n", file: "t.graph")
    let bound = #expect(throws: BindingError.self) {
      try WeightBinding.bind(graph, to: try SafetensorsFile(bytes: half, path: "h.safetensors"))
    }
    #expect(bound?.description == "h.safetensors: error: tensor 'w' holds inf at index 2 (row-major), the first non-finite value; vitc refuses NaN and infinite weights (--allow-non-finite accepts them)")
    #expect(try WeightBinding.bind(graph, to: try SafetensorsFile(bytes: half, path: "h.safetensors"), allowNonFinite: true)["w"]?.scalars[2] == .infinity)
  }

  @Test func controlCharactersInTensorNamesAreEscaped() {
    let header = #"{"a\u001b[2J":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#
    let bytes = file(header, data: eight)
    let file = try? SafetensorsFile(bytes: bytes, path: "w.safetensors")
    let text = (#expect(throws: InputError.self) { try file?.tensor("a\u{1B}[2J") })?.description
    #expect(text == "w.safetensors: error: tensor 'a\\u{1B}[2J' has dtype I64; vitc reads F32, F16 and BF16")
  }
}

@Suite struct HostileEvalSetTests {
  func error(labels: [UInt8], images: [UInt8], side: Int = 2, classes: Int? = nil) -> String? {
    do {
      _ = try EvalSet.decode(labels: labels, images: images, side: side, classes: classes, labelsPath: "d/l", imagesPath: "d/i")
      return nil
    } catch {
      return error.description
    }
  }

  @Test func countsOfImagesAndLabelsMustAgree() throws {
    #expect(try EvalSet.decode(labels: [1, 2], images: [0, 8], side: 2, labelsPath: "d/l", imagesPath: "d/i").images.count == 2)
    #expect(
      error(labels: [1, 2, 3], images: [0, 9])
        == "d/i: error: not an evaluation set (docs/eval-set.md): 9 pixels decoded, expected 3 images (one per label) of 2x2 = 12: image 2 is cut short after 1 of its pixels")
    #expect(
      error(labels: [1], images: [0, 255, 0, 255])
        == "d/i: error: not an evaluation set (docs/eval-set.md): byte 1: the data holds more than the 4 pixels of the images the labels announce")
    #expect(error(labels: [], images: []) == "d/l: error: not an evaluation set (docs/eval-set.md): no labels")
  }

  @Test func labelsAreCheckedAgainstTheClasses() {
    #expect(
      error(labels: [1, 9, 10], images: [0, 12], classes: 10)
        == "d/l: error: not an evaluation set (docs/eval-set.md): image 2 has label 10, but the model has 10 classes (0…9)")
  }

  @Test func aZeroRunBombStopsEarly() {
    // 1 MB of runs would be 127 MB of pixels; decoding stops after the first image's worth.
    let bomb = [UInt8]((0..<500_000).flatMap { _ in [0, 255] as [UInt8] })
    #expect(error(labels: [0], images: bomb, side: 64)?.contains("byte 33: the data holds more than the 4096 pixels") == true)
    #expect(error(labels: [0], images: [], side: 0) == "d/i: error: not an evaluation set (docs/eval-set.md): image side 0 is not in 1…4096")
  }
}
