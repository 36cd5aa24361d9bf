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
      // A square count of patches could be another grid (1024 = 32x32 = 16x64): said, not hidden.
      #expect(built.stderr.contains("\(checkpoint): note: assumed image: 224x224 (a square grid of the 196 patches"), "\(built.stderr)")
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

/// The command as users write it: `vitc compile GRAPH --prune SPEC -o model.c` with no weights.
@Suite struct CompileWithoutWeightsTests {
  /// It writes the model and the loader, no weights file, and prints the build line and how to
  /// run the binary; the printed build line builds it, and the binary asks for --weights.
  @Test func compileWithoutWeightsPrintsTheBuildAndRunLines() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let output = scratch.appendingPathComponent("model.c")
    let outcome = try vitc(["compile", "samples/tiny.graph", "--prune", "dyvit:0.7", "-o", output.path])
    #expect(outcome.status == 0, "\(outcome.output)")
    let files = try FileManager.default.contentsOfDirectory(atPath: scratch.path)
    #expect(files.contains("vit_weights.c") && !files.contains { $0.hasPrefix("model_weights") }, "\(files)")
    let lines = outcome.stdout.split(separator: "\n").map(String.init)
    #expect(lines.contains { $0.contains("the binary loads them at run time)") }, "\(outcome.stdout)")
    #expect(lines.contains { $0.hasPrefix("run with: \(scratch.path)/model --weights WEIGHTS.safetensors IMAGE.ppm") }, "\(outcome.stdout)")
    let build = try #require(lines.first { $0.hasPrefix("build for host with: ") }).dropFirst("build for host with: ".count)
    let built = try run(URL(fileURLWithPath: "/bin/sh"), ["-c", String(build)])
    #expect(built.status == 0, "\(built.output)")
    let ran = try run(scratch.appendingPathComponent("model"), ["samples/images/chelsea.ppm"])
    #expect(ran.status == 2 && ran.stderr.contains("this model was compiled without weights: give --weights F"), "\(ran.output)")
    let header = try String(contentsOf: scratch.appendingPathComponent("model.h"), encoding: .utf8)
    #expect(header.contains("#define VIT_TINY_VIT_LOADS_WEIGHTS 1"))
  }

  /// Ways of carrying weights that need them, without them, get one line; the commands that run
  /// the model here still need weights.
  @Test func optionsThatNeedWeightsSaySo() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let output = scratch.appendingPathComponent("model.c").path
    let hex = try vitc(["compile", "samples/tiny.graph", "--embed-weights", "hex", "-o", output])
    #expect(hex.status == 1 && hex.stderr.contains("--embed-weights hex (or --weights-at-runtime) carries weights given with --weights"), "\(hex.output)")
    let load = try vitc(["compile", "samples/tiny.graph", "--embed-weights", "load", "-o", output])
    #expect(load.status == 64, "\(load.output)")
    let runs = try vitc(["run", "samples/tiny.graph", "--image", "samples/images/chelsea.ppm"])
    #expect(runs.status == 64 && runs.stderr.contains("give exactly one of --weights FILE and --random-weights SEED"), "\(runs.output)")
    #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty)
  }
}

/// `vitc save-weights`: the tensors a graph and schedule read, as safetensors.
@Suite struct SaveWeightsTests {
  /// Random weights saved and read back run exactly as the seed does (AS-ViT's thresholds
  /// included, under the official names); a checkpoint converts to the same tensors.
  @Test func savedWeightsRunAsTheirSource() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let saved = scratch.appendingPathComponent("w.safetensors").path
    let wrote = try vitc(["save-weights", "samples/tiny.graph", "--random-weights", "3", "--prune", "asvit:0.004,0.005,0.006", "-o", saved])
    #expect(wrote.status == 0 && wrote.stdout.hasPrefix("wrote \(saved): "), "\(wrote.output)")
    let file = try SafetensorsFile(path: saved)
    #expect(try file.tensor("score_predictor.1.keep_threshold").scalars == [0.005])
    var traces: [Data] = []
    for source in [["--random-weights", "3", "--prune", "asvit:0.004,0.005,0.006"], ["--weights", saved, "--prune", "asvit"]] {
      let trace = scratch.appendingPathComponent("\(traces.count).json")
      let ran = try vitc(["run", "samples/tiny.graph"] + source + ["--image", "samples/images/chelsea.ppm", "--trace", trace.path])
      #expect(ran.status == 0, "\(ran.output)")
      traces.append(try Data(contentsOf: trace))
    }
    // The same stages and logits (the "method" field spells each spec as given).
    let parsed = try traces.map { try #require(JSONSerialization.jsonObject(with: $0) as? [String: Any]) }
    #expect(parsed.count == 2 && (parsed[0]["stages"] as? NSArray) == (parsed[1]["stages"] as? NSArray))
    #expect(parsed.count == 2 && (parsed[0]["logits"] as? NSArray) == (parsed[1]["logits"] as? NSArray))
    #expect((parsed.first?["stages"] as? NSArray)?.count == 3)

    // A PyTorch checkpoint converted: the same tensors as its safetensors twin, here in BF16.
    let converted = scratch.appendingPathComponent("c.safetensors").path
    let outcome = try vitc(["save-weights", "samples/tiny.graph", "--weights", "Tests/Fixtures/checkpoints/timm-tiny.pth", "--dtype", "BF16", "-o", converted])
    #expect(outcome.status == 0, "\(outcome.output)")
    let twin = try SafetensorsFile(path: repositoryPath("Tests/Fixtures/timm-tiny/weights.safetensors"))
    let bf16 = try SafetensorsFile(path: converted)
    #expect(Set(bf16.names) == Set(twin.names.filter { !$0.hasSuffix("num_batches_tracked") }))
    #expect(bf16.entries["norm.weight"]?.dtype == "BF16")
    // An output naming an input is refused, and nothing is written.
    let clash = try vitc(["save-weights", "samples/tiny.graph", "--weights", saved, "-o", saved])
    #expect(clash.status == 1 && clash.stderr.contains("weights file"), "\(clash.output)")
  }
}
