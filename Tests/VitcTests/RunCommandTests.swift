import Foundation
import TestSupport
import Testing

@testable import VitFrontend
import VitIR

@Suite struct RunCommandTests {
  @Test func runsTheTinyModelOnASampleImageAndWritesATrace() throws {
    let directory = try scratchDirectory()
    let trace = directory.appendingPathComponent("trace.json")
    let outcome = try vitc([
      "run", "samples/tiny.graph", "--random-weights", "1", "--image", "samples/images/chelsea.ppm", "--trace", trace.path,
    ])
    #expect(outcome.status == 0, "\(outcome.stderr)")
    let lines = outcome.stdout.split(separator: "\n")
    #expect(lines.first?.hasPrefix("tiny_vit on samples/images/chelsea.ppm: interpreter, ") == true)
    #expect(lines.count == 6)
    #expect(lines[1].hasPrefix(" 1. "))
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: trace)) as! [String: Any]
    #expect(json["method"] as? String == "none")
    #expect((json["stages"] as? [Any])?.isEmpty == true)
    let logits = json["logits"] as! [Double]
    #expect(logits.count == 1000)
    // The printed best class is the trace's argmax.
    let best = logits.indices.max { logits[$0] < logits[$1] }!
    #expect(lines[1].contains(" \(best) "))
  }

  @Test func runWithTimmWeightsPrintsLabels() throws {
    let outcome = try vitc([
      "run", "samples/tiny.graph", "--weights", "Tests/Fixtures/timm-tiny/weights.safetensors", "--input",
      "Tests/Fixtures/timm-tiny/input.f32", "--top", "2",
    ])
    #expect(outcome.status == 0, "\(outcome.stderr)")
    #expect(outcome.stdout.contains("  954  ") && outcome.stdout.contains("banana"))
  }

  /// Every bad input: exit status 1, one line naming the file (and place), no trace left.
  @Test(arguments: BadInput.allCases)
  func badInputGetsOneLineAndNoOutputFile(_ bad: BadInput) throws {
    let directory = try scratchDirectory()
    let (arguments, expected) = try bad.make(in: directory)
    let trace = directory.appendingPathComponent("trace.json")
    let outcome = try vitc(["run"] + arguments + ["--trace", trace.path])
    #expect(outcome.status == 1)
    #expect(outcome.stdout.isEmpty)
    #expect(outcome.stderr.split(separator: "\n").count == 1, "\(outcome.stderr)")
    #expect(outcome.stderr.hasPrefix(expected), "\(outcome.stderr)")
    #expect(!outcome.stderr.contains("Fatal error"))
    #expect(!FileManager.default.fileExists(atPath: trace.path))
  }
}

enum BadInput: String, CaseIterable, Sendable {
  case syntaxError, unknownOp, shapeMismatch, missingParameter, wrongShape, wrongDType, truncatedWeights
  case corruptHeader, missingWeightsFile, missingGraph, truncatedImage, notAnImage, wrongInputSize

  static let tinyGraph = "graph t(image: f32[3,224,224]) -> f32[4] {\n  param @w: f32[4,3]\n  x = linear(row(reshape(image, shape=[50176,3]), index=0), @w)\n  return x\n}\n"

  /// Writes the files of the case; returns vitc's arguments and the start of the expected message.
  func make(in directory: URL) throws -> ([String], String) {
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
      let url = directory.appendingPathComponent(name)
      try Data(bytes).write(to: url)
      return url.path
    }
    let image = ["--image", "samples/images/astronaut.ppm"]
    let graph = try write("t.graph", Array(Self.tinyGraph.utf8))
    let good = SafetensorsWriter.encode([("w", Tensor(zeros: [4, 3]))])
    switch self {
    case .syntaxError:
      let path = try write("s.graph", Array("graph t(image: f32[3,224,224]) -> f32[4] {\n  x = (image\n}\n".utf8))
      return ([path, "--random-weights", "1"] + image, "\(path):3:1: error: expected ')' to close the parenthesis, found '}'")
    case .unknownOp:
      let path = try write("u.graph", Array(Self.tinyGraph.replacingOccurrences(of: "linear(", with: "lineer(").utf8))
      return ([path, "--random-weights", "1"] + image, "\(path):3:7: error: unknown op 'lineer'; did you mean 'linear'?")
    case .shapeMismatch:
      let path = try write("m.graph", Array(Self.tinyGraph.replacingOccurrences(of: "f32[4,3]", with: "f32[4,2]").utf8))
      return ([path, "--random-weights", "1"] + image, "\(path):3:7: error: 'linear' operand 'weight' has type f32[4,2], expected f32[out,3]")
    case .missingParameter:
      let weights = try write("w.safetensors", SafetensorsWriter.encode([("v", Tensor(zeros: [4, 3]))]))
      return ([graph, "--weights", weights] + image, "\(weights): error: no tensor 'w', which the graph at \(graph):2:9 declares")
    case .wrongShape:
      let weights = try write("w.safetensors", SafetensorsWriter.encode([("w", Tensor(zeros: [3, 4]))]))
      return ([graph, "--weights", weights] + image, "\(weights): error: tensor 'w' has shape [3,4], but the graph at \(graph):2:9 declares f32[4,3]")
    case .wrongDType:
      let header = Array(#"{"w":{"dtype":"I64","shape":[4,3],"data_offsets":[0,96]}}"#.utf8)
      let bytes = [UInt8(header.count), 0, 0, 0, 0, 0, 0, 0] + header + [UInt8](repeating: 0, count: 96)
      let weights = try write("w.safetensors", bytes)
      return ([graph, "--weights", weights] + image, "\(weights): error: tensor 'w' has dtype I64; vitc reads F32, F16 and BF16")
    case .truncatedWeights:
      let weights = try write("w.safetensors", Array(good.dropLast(10)))
      return ([graph, "--weights", weights] + image, "\(weights): error: tensor 'w': data_offsets")
    case .corruptHeader:
      var bytes = good
      bytes[9] = UInt8(ascii: "!")
      let weights = try write("w.safetensors", bytes)
      return ([graph, "--weights", weights] + image, "\(weights): error: corrupt safetensors header: the header is not valid JSON")
    case .missingWeightsFile:
      return ([graph, "--weights", "nowhere.safetensors"] + image, "nowhere.safetensors: error: no such file")
    case .missingGraph:
      return (["nowhere.graph", "--random-weights", "1"] + image, "nowhere.graph: error: cannot read the graph: no such file")
    case .truncatedImage:
      let bytes = Array(try Data(contentsOf: repositoryRoot.appendingPathComponent("samples/images/astronaut.ppm")).prefix(1000))
      let path = try write("cut.ppm", bytes)
      return ([graph, "--random-weights", "1", "--image", path], "\(path): error: truncated PPM: expected 196608 bytes of pixels, found 985")
    case .notAnImage:
      return ([graph, "--random-weights", "1", "--image", graph], "\(graph): error: not a PPM image")
    case .wrongInputSize:
      let path = try write("x.f32", [UInt8](repeating: 0, count: 400))
      return ([graph, "--random-weights", "1", "--input", path], "\(path): error: expected 602112 bytes (float32 [3,224,224]), found 400")
    }
  }
}
