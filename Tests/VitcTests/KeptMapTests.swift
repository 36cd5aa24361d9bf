import Foundation
import TestSupport
import Testing

@testable import VitFrontend
import VitIR

/// The kept-token map (docs/kept-map.md): the Swift picture pixel by pixel for a hand-made
/// trace, and `vitc run --kept-map` byte-identical to the compiled binary's `--kept-map`.
@Suite struct KeptMapTests {
  /// A normalized [3,8,8] input whose de-normalised pixel (y, x) is (10y + x, 100 + 10y + x,
  /// 200 + y + x), made exactly as the preprocessing makes one.
  static func input() -> (tensor: Tensor, pixel: (Int, Int) -> [Int]) {
    func pixel(_ y: Int, _ x: Int) -> [Int] { [10 * y + x, 100 + 10 * y + x, 200 + y + x] }
    var pixels: [UInt8] = []
    for y in 0..<8 { for x in 0..<8 { pixels += pixel(y, x).map { UInt8($0) } } }
    let tensor = Preprocessing.normalize(RGBImage(width: 8, height: 8, pixels: pixels))
    return (tensor, pixel)
  }

  @Test func pixelsOfAHandMadeTrace() throws {
    let (tensor, pixel) = Self.input()
    // A 2x2 grid of 4x4 patches (outline 1 pixel wide). Stage 0: token 0 = patches 0 and 1 (the
    // top row), token 1 = patch 3, patch 2 dropped. Stage 1: token 0 = patch 3, token 1 =
    // patches 1 and 2 (diagonal, smallest id 1), patch 0 dropped.
    let stages = [
      Trace.Stage(block: 3, tokens: 3, patches: [[0, 1], [3]]),
      Trace.Stage(block: 6, tokens: 3, patches: [[3], [1, 2]]),
    ]
    let bytes = try KeptMap.render(input: tensor, stages: stages, patches: 4)
    let header = Array("P6\n32 8\n255\n".utf8)  // 3 panels of 8 and 2 gaps of 4
    try #require(bytes.count == header.count + 32 * 8 * 3)
    #expect(Array(bytes.prefix(header.count)) == header)
    func at(_ panel: Int, _ y: Int, _ x: Int) -> [Int] {
      let offset = header.count + (y * 32 + panel * 12 + x) * 3
      return bytes[offset..<offset + 3].map(Int.init)
    }
    let washed = { (y: Int, x: Int) in pixel(y, x).map { ($0 + 765) / 4 } }
    let red = [230, 25, 75], green = [60, 180, 75]

    // Panel 0: the input itself, every pixel; the gaps white.
    for y in 0..<8 {
      for x in 0..<8 { #expect(at(0, y, x) == pixel(y, x), "(\(y), \(x))") }
      for x in 8..<12 { #expect(at(0, y, x) == [255, 255, 255]) }
    }
    // Stage 0. The dropped patch 2 is washed out towards white.
    for y in 4..<8 { for x in 0..<4 { #expect(at(1, y, x) == washed(y, x)) } }
    // The kept patch 3 (one patch) is unchanged, also at its edge.
    for y in 4..<8 { for x in 4..<8 { #expect(at(1, y, x) == pixel(y, x)) } }
    // Token 0 (smallest id 0: red) outlined along the image edge and where it meets patches 2
    // and 3; not between its own patches 0 and 1 and not inside.
    for x in 0..<8 {
      #expect(at(1, 0, x) == red)  // the image's top edge
      #expect(at(1, 3, x) == red)  // above patches 2 and 3
    }
    for y in 0..<4 {
      #expect(at(1, y, 0) == red)
      #expect(at(1, y, 7) == red)
    }
    for y in 1..<3 { for x in 1..<7 { #expect(at(1, y, x) == pixel(y, x), "(\(y), \(x))") } }

    // Stage 1. Patch 0 dropped; token 1 (patches 1 and 2, smallest id 1: green) outlined all
    // round each of its patches, which only touch at a corner.
    for y in 0..<4 { for x in 0..<4 { #expect(at(2, y, x) == washed(y, x)) } }
    for (top, left) in [(0, 4), (4, 0)] {
      for i in 0..<4 {
        #expect(at(2, top, left + i) == green)
        #expect(at(2, top + 3, left + i) == green)
        #expect(at(2, top + i, left) == green)
        #expect(at(2, top + i, left + 3) == green)
      }
      #expect(at(2, top + 1, left + 1) == pixel(top + 1, left + 1))
      #expect(at(2, top + 2, left + 2) == pixel(top + 2, left + 2))
    }
    for y in 4..<8 { for x in 4..<8 { #expect(at(2, y, x) == pixel(y, x)) } }
  }

  /// De-normalising an input the preprocessing made gives back every 8-bit value; values
  /// outside the range clamp, NaN gives 0.
  @Test func denormalisationInvertsThePreprocessing() {
    for c in 0..<3 {
      for q in 0...255 {
        let x = (Float(q) / 255 - Preprocessing.mean[c]) / Preprocessing.std[c]
        #expect(KeptMap.sample(x, channel: c) == UInt8(q))
      }
      #expect(KeptMap.sample(-100, channel: c) == 0)
      #expect(KeptMap.sample(100, channel: c) == 255)
      #expect(KeptMap.sample(.nan, channel: c) == 0)
      #expect(KeptMap.sample(.infinity, channel: c) == 255)
    }
  }

  @Test func aGridThatIsNotSquareIsAnError() {
    #expect(throws: KeptMapError.notSquare(patches: 6)) {
      try KeptMap.render(input: Tensor(zeros: [3, 8, 8]), stages: [], patches: 6)
    }
    #expect(throws: KeptMapError.notDividing(side: 3, height: 8, width: 8)) {
      try KeptMap.render(input: Tensor(zeros: [3, 8, 8]), stages: [], patches: 9)
    }
    #expect(throws: KeptMapError.patchOutOfRange(stage: 0, token: 0, id: 4, patches: 4)) {
      try KeptMap.render(input: Tensor(zeros: [3, 8, 8]), stages: [Trace.Stage(block: 0, tokens: 2, patches: [[4]])], patches: 4)
    }
  }

  /// The interpreter's picture and the compiled binary's, on a sample image and (EViT) on a raw
  /// input with values far outside the image range: the same bytes.
  @Test(arguments: ["evit:0.7", "tome:8"])
  func interpreterAndBinaryDrawTheSameBytes(spec: String) throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let binary = scratch.appendingPathComponent("model")
    let built = try vitc(["build", "samples/tiny.graph", "--random-weights", "1", "--prune", spec, "-o", binary.path])
    try #require(built.status == 0, "vitc build failed:\n\(built.output)")

    var inputs = [["--image", "samples/images/chelsea.ppm"]]
    if spec.hasPrefix("evit") {
      var state: UInt64 = 12345
      let values = (0..<(3 * 224 * 224)).map { _ -> Float in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24) * 6 - 3
      }
      let raw = scratch.appendingPathComponent("input.f32")
      try writeF32(values, to: raw)
      inputs.append(["--input", raw.path])
    }
    for (index, input) in inputs.enumerated() {
      let fromBinary = scratch.appendingPathComponent("binary-\(index).ppm")
      let fromRun = scratch.appendingPathComponent("run-\(index).ppm")
      let ran = try run(binary, input + ["--kept-map", fromBinary.path])
      try #require(ran.status == 0, "binary failed:\n\(ran.output)")
      let interpreted = try vitc(
        ["run", "samples/tiny.graph", "--random-weights", "1", "--prune", spec, "--kept-map", fromRun.path] + input)
      try #require(interpreted.status == 0, "vitc run failed:\n\(interpreted.output)")
      let (a, b) = (try Data(contentsOf: fromBinary), try Data(contentsOf: fromRun))
      let stages = interpreted.stdout.split(separator: "\n").filter { $0.hasPrefix("  block ") }.count
      #expect(stages == (spec.hasPrefix("evit") ? 3 : 12))
      let width = (stages + 1) * 224 + stages * KeptMap.gap
      #expect(b.count == "P6\n\(width) 224\n255\n".utf8.count + width * 224 * 3)
      #expect(a == b, "\(input): the binary's kept map differs from vitc run's")
    }
  }
}
