import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR

/// --weights with a PyTorch checkpoint, and weights the graph does not read.
@Suite struct WeightsCommandTests {
  /// The checkpoint made by torch.save from the timm fixture's tensors gives the very trace
  /// (tokens and logits) that the safetensors file gives.
  @Test func checkpointRunsLikeItsSafetensors() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    var traces: [Data] = []
    for weights in ["Tests/Fixtures/checkpoints/timm-tiny.pth", "Tests/Fixtures/timm-tiny/weights.safetensors"] {
      let trace = scratch.appendingPathComponent("\(traces.count).json")
      let outcome = try vitc([
        "run", "samples/tiny.graph", "--weights", weights, "--input", "Tests/Fixtures/timm-tiny/input.f32", "--trace", trace.path,
      ])
      #expect(outcome.status == 0 && outcome.stderr.isEmpty, "\(outcome.output)")
      traces.append(try Data(contentsOf: trace))
    }
    #expect(traces[0] == traces[1])
  }

  /// A graph without qkv bias on weights that have one: the unread tensors are named (a
  /// warning), and --strict refuses them.
  @Test func unreadTensorsAreNamed() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let text = try String(contentsOfFile: repositoryPath("samples/tiny.graph"), encoding: .utf8)
    let noBias = text.replacingOccurrences(of: "    param @blocks.{i}.attn.qkv.bias: f32[192]\n", with: "")
      .replacingOccurrences(of: ", @blocks.{i}.attn.qkv.bias)", with: ")")
    try #require(noBias != text)
    let graph = scratch.appendingPathComponent("no-qkv-bias.graph").path
    try noBias.write(toFile: graph, atomically: true, encoding: .utf8)
    let weights = "Tests/Fixtures/timm-tiny/weights.safetensors"
    let flopsLike = ["compile", graph, "--weights", weights, "-o", scratch.appendingPathComponent("m.c").path]
    let warned = try vitc(flopsLike)
    #expect(warned.status == 0, "\(warned.output)")
    #expect(
      warned.stderr == "\(weights): warning: 12 tensors the graph does not read: 'blocks.0.attn.qkv.bias', 'blocks.1.attn.qkv.bias', 'blocks.10.attn.qkv.bias', 'blocks.11.attn.qkv.bias', 'blocks.2.attn.qkv.bias', …\n")
    let strict = try vitc(flopsLike + ["--strict"])
    #expect(strict.status == 1)
    #expect(strict.stderr.hasPrefix("\(weights): error: 12 tensors the graph does not read: 'blocks.0.attn.qkv.bias'") && strict.stderr.hasSuffix("(--strict)\n"))
  }

  /// `vitc build` from a checkpoint alone (its graph inferred) with a pruning method: the
  /// binary runs, dense logits match timm's, and the notes name what was assumed.
  @Test func buildFromACheckpointAlone() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let checkpoint = "Tests/Fixtures/checkpoints/timm-tiny.pth"
    for spec in ["none", "tome:8"] {
      let binary = scratch.appendingPathComponent("model-\(spec)")
      let built = try vitc(["build", checkpoint, "--heads", "2", "--prune", spec, "-o", binary.path])
      #expect(built.status == 0, "\(built.output)")
      #expect(built.stderr.contains("\(checkpoint): note: assumed LayerNorm eps: 1e-6"), "\(built.stderr)")
      let logits = scratch.appendingPathComponent("\(spec).f32")
      let ran = try run(binary, ["--input", repositoryPath("Tests/Fixtures/timm-tiny/input.f32"), "--out", logits.path])
      #expect(ran.status == 0, "\(ran.output)")
      if spec == "none" {
        let timm = try readF32(URL(fileURLWithPath: repositoryPath("Tests/Fixtures/timm-tiny/logits.f32")))
        let mine = try readF32(logits)
        let scale = max(1, timm.map { abs($0) }.max()!)
        #expect(zip(mine, timm).map { abs($0 - $1) }.max()! <= 1e-4 * scale)
      }
    }
  }

  /// A NaN weight is refused by name and index; --allow-non-finite binds it (and the logits
  /// carry it).
  @Test func nonFiniteWeightsNeedTheFlag() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let file = try SafetensorsFile(path: repositoryPath("Tests/Fixtures/timm-tiny/weights.safetensors"))
    let tensors = try file.names.map { name -> (name: String, tensor: Tensor) in
      var tensor = try file.tensor(name)
      if name == "head.bias" { tensor.scalars[3] = .nan }
      return (name, tensor)
    }
    let weights = scratch.appendingPathComponent("nan.safetensors").path
    try Data(SafetensorsWriter.encode(tensors)).write(to: URL(fileURLWithPath: weights))
    let arguments = ["run", "samples/tiny.graph", "--weights", weights, "--input", "Tests/Fixtures/timm-tiny/input.f32", "--top", "1"]
    let refused = try vitc(arguments)
    #expect(refused.status == 1)
    #expect(refused.stderr == "\(weights): error: tensor 'head.bias' holds nan at index 3 (row-major), the first non-finite value; vitc refuses NaN and infinite weights (--allow-non-finite accepts them)\n")
    let allowed = try vitc(arguments + ["--allow-non-finite"])
    #expect(allowed.status == 0, "\(allowed.output)")
  }
}
