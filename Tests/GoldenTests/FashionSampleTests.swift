import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR
import VitInterpreter
import VitPasses

/// The trained sample model (samples/fashion, tools/train_sample.py) against timm: the compiled
/// dense binary picks timm's class on each of the first 100 shipped canvases with logits within
/// the backend tolerance, and the interpreter agrees with DynamicViT's PyTorch path.
@Suite struct FashionSampleTests {
  static let folder = repositoryRoot.appendingPathComponent("samples/fashion")

  /// The first `count` canvases of test-images.rle (a 0 byte and a count stand for that many
  /// zeros; any other byte for itself), as normalized inputs [3,64,64]: grey copied to 3
  /// channels, pixel/127.5 − 1 in float32 (as torch computes it).
  static func canvases(_ count: Int) throws -> [[Float]] {
    let data = [UInt8](try Data(contentsOf: folder.appendingPathComponent("test-images.rle")))
    var pixels: [UInt8] = []
    pixels.reserveCapacity(count * 4096)
    var i = 0
    while pixels.count < count * 4096 && i < data.count {
      if data[i] != 0 {
        pixels.append(data[i])
        i += 1
      } else {
        pixels += [UInt8](repeating: 0, count: Int(data[i + 1]))
        i += 2
      }
    }
    return (0..<count).map { image in
      let grey = pixels[(image * 4096)..<((image + 1) * 4096)].map { Float($0) / 127.5 - 1 }
      return grey + grey + grey
    }
  }

  static func timmLogits() throws -> [[Float]] {
    let flat = try readF32(folder.appendingPathComponent("logits-dense-100.f32"))
    return (0..<100).map { Array(flat[($0 * 10)..<($0 * 10 + 10)]) }
  }

  static func argmax(_ values: [Float]) -> Int { values.indices.max { values[$0] < values[$1] }! }

  @Test func compiledDenseModelMatchesTimm() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let binary = scratch.appendingPathComponent("fashion")
    let built = try vitc([
      "build", "samples/fashion.graph", "--weights", "samples/fashion/weights.safetensors", "--labels",
      "samples/fashion/classes.txt", "-o", binary.path,
    ])
    try #require(built.status == 0, "\(built.output)")
    let reference = try Self.timmLogits()
    for (index, canvas) in try Self.canvases(100).enumerated() {
      let input = scratch.appendingPathComponent("c\(index).f32"), out = scratch.appendingPathComponent("o\(index).f32")
      try writeF32(canvas, to: input)
      let ran = try run(binary, ["--input", input.path, "--out", out.path, "--threads", "1"])
      try #require(ran.status == 0, "\(ran.output)")
      let logits = try readF32(out)
      let scale = max(1, reference[index].map { abs($0) }.max()!)
      let worst = zip(logits, reference[index]).map { abs($0 - $1) }.max()!
      #expect(worst <= 1e-4 * scale, "canvas \(index): max |Δ| \(worst)")
      #expect(Self.argmax(logits) == Self.argmax(reference[index]), "canvas \(index)")
    }
  }

  /// DynamicViT at 0.7 with the shipped predictors: the interpreter keeps the same patches as
  /// the PyTorch path (as sets: a few near-tied keep scores around −1e-5 order differently) and
  /// gives its logits on the first 20 canvases.
  @Test func interpreterMatchesPyTorchDynamicViT() throws {
    let parsed = try GraphLoader.load(path: repositoryPath("samples/fashion.graph"))
    let schedule = try ScheduleParser.parse("dyvit:0.7", depth: parsed.blocks.count)
    let graph = try Pipeline.run(parsed, through: "pruned", schedule: schedule)
    let weights = try WeightBinding.bind(graph, to: try SafetensorsFile(path: repositoryPath("samples/fashion/weights.safetensors")))
    let interpreter = try Interpreter(graph: graph, weights: weights)
    let flat = try readF32(Self.folder.appendingPathComponent("logits-dyvit0.7-100.f32"))
    let kept = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.folder.appendingPathComponent("kept-dyvit0.7-100.json")))
    for (index, canvas) in try Self.canvases(20).enumerated() {
      let (logits, stages) = try interpreter.runTraced([Tensor(shape: [3, 64, 64], scalars: canvas)])
      let reference = Array(flat[(index * 10)..<(index * 10 + 10)])
      let scale = max(1, reference.map { abs($0) }.max()!)
      #expect(zip(logits.scalars, reference).map { abs($0 - $1) }.max()! <= 1e-4 * scale, "canvas \(index)")
      #expect(stages.map(\.tokens) == [45, 32, 22])
      let expected = try #require(Self.keptSets(kept, canvas: index), "no kept sets for canvas \(index)")
      #expect(stages.map { Set($0.patches.flatMap { $0 }) } == expected, "canvas \(index)")
    }
  }

  /// The PyTorch path's kept patch ids per stage for one canvas, as sets:
  /// `[[{"block": B, "patches": [ids]}, …], …]`, one list per canvas.
  static func keptSets(_ json: Any, canvas: Int) -> [Set<Int>]? {
    guard let canvases = json as? [[[String: Any]]], canvas < canvases.count else { return nil }
    return canvases[canvas].compactMap { ($0["patches"] as? [Int]).map(Set.init) }
  }
}
