import Foundation
import TestSupport
import Testing

/// `--prune` on the command line: the errors a user meets, `flops` with AS-ViT's run-time
/// counts, `calibrate`, and the trace `vitc run` writes.
@Suite struct PruningCommandTests {
  /// A predictor the weights lack is named, with the file; exit 1 and no output file.
  @Test func missingPredictorTensorIsNamed() throws {
    let directory = try scratchDirectory()
    let trace = directory.appendingPathComponent("trace.json").path
    let outcome = try vitc([
      "run", "samples/tiny.graph", "--weights", "Tests/Fixtures/timm-tiny/weights.safetensors", "--prune", "dyvit:0.7",
      "--input", "Tests/Fixtures/timm-tiny/input.f32", "--trace", trace,
    ])
    #expect(outcome.status == 1)
    #expect(
      outcome.stderr
        == "Tests/Fixtures/timm-tiny/weights.safetensors: error: dyvit needs the tensor 'score_predictor.0.in_conv.0.weight', which the weights do not have\n")
    #expect(!FileManager.default.fileExists(atPath: trace))
    let thresholds = try vitc([
      "run", "samples/tiny.graph", "--weights", "Tests/Fixtures/timm-tiny/weights.safetensors", "--prune", "asvit",
      "--input", "Tests/Fixtures/timm-tiny/input.f32",
    ])
    #expect(thresholds.status == 1)
    #expect(thresholds.stderr.contains("asvit needs the tensor 'score_predictor.0.keep_threshold'"))
  }

  @Test func badScheduleIsOneLine() throws {
    let outcome = try vitc(["flops", "samples/deit-s.graph", "--prune", "dyvit:1.5"])
    #expect(outcome.status == 1)
    #expect(outcome.stderr == "--prune 'dyvit:1.5':7: error: keep ratio 1.5 is outside (0, 1]\n")
  }

  /// `vitc run --prune` writes the method's stages into the trace (docs/trace-format.md).
  @Test func runWritesTheStagesOfTheSchedule() throws {
    let directory = try scratchDirectory()
    let trace = directory.appendingPathComponent("trace.json")
    let outcome = try vitc([
      "run", "samples/tiny.graph", "--random-weights", "1", "--prune", "evit:0.7", "--image", "samples/images/coffee.ppm",
      "--trace", trace.path,
    ])
    #expect(outcome.status == 0, "\(outcome.output)")
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: trace)) as! [String: Any]
    #expect(json["method"] as? String == "evit:0.7")
    let stages = json["stages"] as! [[String: Any]]
    #expect(stages.map { $0["block"] as! Int } == [3, 6, 9])
    #expect(stages.map { $0["tokens"] as! Int } == [140, 100, 72])
    // The fused token is last and stands for every dropped patch of the first stage.
    let first = stages[0]["patches"] as! [[Int]]
    #expect(first.count == 139 && first.last!.count == 196 - 138)
    #expect(Set(first.flatMap { $0 }) == Set(0..<196))
  }

  /// AS-ViT's counts depend on the image: `flops --image` averages the runs' counts, and with
  /// two images the total is the mean of the single-image totals.
  @Test func flopsAveragesAsvitOverImages() throws {
    func total(_ images: [String]) throws -> Int {
      let outcome = try vitc(
        ["flops", "samples/tiny.graph", "--prune", "asvit:0.004,0.005,0.006", "--random-weights", "1"]
          + images.flatMap { ["--image", "samples/images/\($0).ppm"] })
      #expect(outcome.status == 0, "\(outcome.output)")
      let line = outcome.stdout.split(separator: "\n").first { $0.hasPrefix("total") }!
      return Int(line.split(separator: " ")[1].replacingOccurrences(of: ",", with: ""))!
    }
    let (a, b, both) = (try total(["chelsea"]), try total(["coffee"]), try total(["chelsea", "coffee"]))
    let dense = try vitc(["flops", "samples/tiny.graph"]).stdout.split(separator: "\n").first { $0.hasPrefix("total") }!
    #expect(a < Int(dense.split(separator: " ")[1].replacingOccurrences(of: ",", with: ""))!)
    #expect(a != b)
    #expect(abs(both - (a + b) / 2) <= 1)
  }

  /// calibrate prints a ready spec whose thresholds keep AS-ViT's 1 : 2 : 3 ratio, and the
  /// MACs fraction it reached.
  @Test func calibratePrintsASpec() throws {
    let directory = try scratchDirectory()
    try FileManager.default.copyItem(atPath: repositoryPath("samples/images/chelsea.ppm"), toPath: directory.appendingPathComponent("a.ppm").path)
    let outcome = try vitc([
      "calibrate", "samples/tiny.graph", "--random-weights", "1", "--budget", "0.7", "--images", directory.path, "--steps", "5",
    ])
    #expect(outcome.status == 0, "\(outcome.output)")
    let spec = outcome.stdout.split(separator: "\n").first { $0.hasPrefix("--prune asvit:") }.map { String($0.dropFirst("--prune asvit:".count)) }
    let thresholds = try #require(spec).split(separator: ",").map { Double($0)! }
    #expect(thresholds.count == 3)
    #expect(abs(thresholds[1] / thresholds[0] - 2) < 1e-3 && abs(thresholds[2] / thresholds[0] - 3) < 1e-3)
    #expect(outcome.stdout.contains("average MACs 0."))
    #expect(outcome.stderr.contains("step 5/5"))
    let empty = try scratchDirectory()
    let none = try vitc(["calibrate", "samples/tiny.graph", "--random-weights", "1", "--budget", "0.7", "--images", empty.path])
    #expect(none.status == 1 && none.stderr.contains("no .ppm images"))
  }
}
