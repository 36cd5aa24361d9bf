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
    let graph = try Pipeline.run(parsed, through: .pruned, schedule: schedule)
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

  /// Builds the fashion sample with `prune` into `scratch`.
  static func build(_ prune: String, into scratch: URL) throws -> URL {
    let binary = scratch.appendingPathComponent("fashion-" + prune.replacingOccurrences(of: ":", with: "-").replacingOccurrences(of: ",", with: "_"))
    let built = try vitc([
      "build", "samples/fashion.graph", "--weights", "samples/fashion/weights.safetensors", "--labels",
      "samples/fashion/classes.txt", "--prune", prune, "-o", binary.path,
    ])
    try #require(built.status == 0, "\(built.output)")
    return binary
  }

  /// The top-1 percentage a `--eval` or `vitc eval` printed.
  static func topOne(_ output: String) -> Double? {
    guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("top-1: ") }) else { return nil }
    return Double(line.dropFirst(7).prefix { $0 != "%" })
  }

  /// The AS-ViT spec calibrated for the shipped weights (tools/train_sample.py, stage calibrate).
  static func asvitSpec() throws -> String {
    try String(contentsOf: folder.appendingPathComponent("asvit-0.65.txt"), encoding: .utf8)
      .trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// The issue's accuracy bar, on the whole shipped subset (2000 canvases), with the compiled
  /// binaries: dense at least 74 %, EViT and DynamicViT at 0.7 within 4 points of it. A wrong
  /// kernel or a wrong kept set shows up here.
  @Test func compiledAccuracyOnTheShippedSubset() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    var accuracy: [String: Double] = [:]
    for prune in ["none", "dyvit:0.7", "evit:0.7"] {
      let binary = try Self.build(prune, into: scratch)
      let ran = try run(binary, ["--eval", "samples/fashion", "--threads", "1"])
      try #require(ran.status == 0, "\(ran.output)")
      #expect(ran.stdout.contains(": 2000 images\n"), "\(ran.stdout)")
      let top: Double = try #require(Self.topOne(ran.stdout), "\(ran.stdout)")
      accuracy[prune] = top
    }
    let dense = accuracy["none"]!
    #expect(dense >= 74, "dense top-1 \(dense) %")
    #expect(accuracy["dyvit:0.7"]! >= dense - 4, "dyvit:0.7 \(accuracy["dyvit:0.7"]!) % against dense \(dense) %")
    #expect(accuracy["evit:0.7"]! >= dense - 4, "evit:0.7 \(accuracy["evit:0.7"]!) % against dense \(dense) %")
  }

  /// `--eval` of the binary and `vitc eval` (the interpreter) print the same accuracy, mean
  /// tokens kept and mean MACs on a slice, for AS-ViT (run-time token counts: the emitted MACs
  /// polynomial is read from each run's trace) and ToMe.
  @Test(arguments: ["asvit", "tome:4"])
  func binaryEvalMatchesTheInterpreter(method: String) throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let prune = method == "asvit" ? try Self.asvitSpec() : method
    let binary = try Self.build(prune, into: scratch)
    let compiled = try run(binary, ["--eval", "samples/fashion", "--limit", "40"])
    try #require(compiled.status == 0, "\(compiled.output)")
    let interpreted = try vitc([
      "eval", "samples/fashion.graph", "--weights", "samples/fashion/weights.safetensors", "--prune", prune, "--data",
      "samples/fashion", "--limit", "40",
    ])
    try #require(interpreted.status == 0, "\(interpreted.output)")
    func lines(_ text: String) -> [String] {
      text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("latency:") }
        .map { $0.replacingOccurrences(of: ", compiled, ", with: ", ").replacingOccurrences(of: ", interpreter, ", with: ", ") }
    }
    #expect(lines(compiled.stdout) == lines(interpreted.stdout))
    #expect(compiled.stdout.contains(": 40 images\n") && compiled.stdout.contains("tokens kept (mean, cls included): block "))
  }

  /// The README's main job: the shipped PPM goes through the graph's `preprocess` line in the
  /// binary (exactly pixel/127.5 − 1, no resampling) and DynamicViT at 0.7 names its class.
  @Test func shippedImageIsPreprocessedByTheGraphAndClassified() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let binary = try Self.build("dyvit:0.7", into: scratch)
    let dumped = scratch.appendingPathComponent("input.f32"), map = scratch.appendingPathComponent("kept.ppm")
    // README.md's main job runs samples/fashion/ankle-boot.ppm (canvas 0, an ankle boot).
    let ran = try run(binary, ["samples/fashion/ankle-boot.ppm", "--dump-input", dumped.path, "--kept-map", map.path, "--top", "1"])
    try #require(ran.status == 0, "\(ran.output)")
    #expect(try readF32(dumped) == (try Self.canvases(1))[0], "--image is not pixel/127.5 - 1")
    #expect(ran.stdout.contains(" 1.     9 "), "\(ran.stdout)")
    #expect(ran.stdout.contains("Ankle boot"), "\(ran.stdout)")
    // The kept-token map: the input, then three stages, 64 px each with 4-px gaps.
    let header = try String(decoding: Data(contentsOf: map).prefix(15), as: UTF8.self)
    #expect(header.hasPrefix("P6\n268 64\n255\n"), "\(header)")
  }

  /// What a user sees for a bad evaluation directory: one line, exit status 2.
  @Test func badEvalDirectoryIsOneLine() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let binary = try Self.build("none", into: scratch)
    let missing = try run(binary, ["--eval", scratch.path])
    #expect(missing.status == 2)
    #expect(missing.stderr == "\(scratch.path)/test-labels.u8: error: no such file\n")
    try Data([1, 2, 3]).write(to: scratch.appendingPathComponent("test-labels.u8"))
    try Data([0, 255, 0, 255]).write(to: scratch.appendingPathComponent("test-images.rle"))
    let short = try run(binary, ["--eval", scratch.path])
    #expect(short.status == 2)
    #expect(short.stderr.contains("test-images.rle: error: not an evaluation set (docs/eval-set.md): fewer pixels decoded, expected 3 images (one per label) of 64x64"), "\(short.stderr)")
    let limitAlone = try run(binary, ["--limit", "3", "samples/fashion/bag.ppm"])
    #expect(limitAlone.status == 2 && limitAlone.stderr == "error: --limit goes with --eval DIR\n")
    let interpreter = try vitc(["eval", "samples/fashion.graph", "--random-weights", "1", "--data", scratch.path])
    #expect(interpreter.status != 0)
    #expect(interpreter.stderr.contains("test-images.rle: error: not an evaluation set (docs/eval-set.md): 510 pixels decoded, expected 3 images"), "\(interpreter.stderr)")
    // Three black 64x64 images (48 runs of 255 zeros and one of 48), one label past the classes.
    try Data((0..<48).flatMap { _ in [0, 255] as [UInt8] } + [0, 48])
      .write(to: scratch.appendingPathComponent("test-images.rle"))
    try Data([1, 2, 30]).write(to: scratch.appendingPathComponent("test-labels.u8"))
    let label = try run(binary, ["--eval", scratch.path])
    #expect(label.status == 2)
    #expect(label.stderr == "\(scratch.path)/test-labels.u8: error: not an evaluation set (docs/eval-set.md): label 30, the model has 10 classes\n")
    let labelInterpreted = try vitc(["eval", "samples/fashion.graph", "--random-weights", "1", "--data", scratch.path])
    #expect(labelInterpreted.stderr.contains("test-labels.u8: error: not an evaluation set (docs/eval-set.md): image 2 has label 30, but the model has 10 classes"), "\(labelInterpreted.stderr)")
    try Data([1, 2, 3]).write(to: scratch.appendingPathComponent("test-labels.u8"))
    let fine = try run(binary, ["--eval", scratch.path, "--limit", "2"])
    #expect(fine.status == 0 && fine.stdout.contains(": 2 images\n"), "\(fine.output)")
  }

  /// `vitc calibrate --data` takes an evaluation set as its images (the training script's
  /// calibrate stage uses it on training-split canvases).
  @Test func calibrateReadsAnEvaluationSet() throws {
    let ran = try vitc([
      "calibrate", "samples/fashion.graph", "--weights", "samples/fashion/weights.safetensors", "--budget", "0.65",
      "--data", "samples/fashion", "--max-images", "4", "--steps", "3",
    ])
    try #require(ran.status == 0, "\(ran.output)")
    #expect(ran.stdout.contains("calibrated on 4 images from samples/fashion: average MACs "), "\(ran.stdout)")
    #expect(ran.stdout.split(separator: "\n").last?.hasPrefix("--prune asvit:") == true, "\(ran.stdout)")
    let both = try vitc([
      "calibrate", "samples/fashion.graph", "--random-weights", "1", "--budget", "0.65", "--data", "samples/fashion",
      "--images", "samples/images",
    ])
    #expect(both.status != 0 && both.stderr.contains("give exactly one of --images DIR and --data DIR"), "\(both.output)")
  }
}
