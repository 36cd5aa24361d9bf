import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR
import VitPasses

@testable import VitEmitC

let snapshots = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots")

/// Compares `text` with the snapshot file; `VITC_RECORD_SNAPSHOTS=1` rewrites it and fails, so
/// a recording never passes silently.
func assertSnapshot(_ text: String, named name: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
  let url = snapshots.appendingPathComponent(name)
  if ProcessInfo.processInfo.environment["VITC_RECORD_SNAPSHOTS"] == "1" {
    try text.write(to: url, atomically: true, encoding: .utf8)
    Issue.record("recorded snapshot \(name); run again without VITC_RECORD_SNAPSHOTS", sourceLocation: sourceLocation)
    return
  }
  let expected = try String(contentsOf: url, encoding: .utf8)
  if expected != text {
    Issue.record("snapshot \(name) differs (- recorded, + emitted):\n\(try unifiedDiff(expected, text, name: name))", sourceLocation: sourceLocation)
  }
}

/// `diff -u` of two texts, through temporary files.
func unifiedDiff(_ expected: String, _ actual: String, name: String) throws -> String {
  let directory = try scratchDirectory()
  defer { try? FileManager.default.removeItem(at: directory) }
  let (a, b) = (directory.appendingPathComponent("recorded-" + name), directory.appendingPathComponent("emitted-" + name))
  try expected.write(to: a, atomically: true, encoding: .utf8)
  try actual.write(to: b, atomically: true, encoding: .utf8)
  return try run(URL(fileURLWithPath: "/usr/bin/diff"), ["-u", a.path, b.path]).stdout
}

/// samples/tiny.graph through the whole pipeline with `prune`, parsed from its text under its
/// repository-relative name so that locations in the emitted comments do not depend on where
/// the repository is checked out; AS-ViT with its initial thresholds, as `vitc` without weights.
func tinyGraph(prune: String) throws -> Graph {
  let source = try String(contentsOf: repositoryRoot.appendingPathComponent("samples/tiny.graph"), encoding: .utf8)
  let parsed = try GraphLoader.parse(source, file: "samples/tiny.graph")
  let schedule = try ScheduleParser.parse(prune, depth: parsed.blocks.count)
  return try Pipeline.run(parsed, through: .planned, schedule: schedule)
}

/// The tiny model with random weights 1, emitted under `stem`.
func emitTiny(prune: String, stem: String, embedding: WeightsEmbedding = .incbin) throws -> EmittedModel {
  let graph = try tinyGraph(prune: prune)
  return try EmitC.emit(
    graph, weights: RandomWeights.generate(for: graph, seed: 1),
    provenance: .init(version: "test", graphFile: "samples/tiny.graph", weights: "--random-weights 1", schedule: prune),
    stem: stem, embedding: embedding)
}

/// The pruning methods the snapshots and memory checks cover, with the file-name-safe label.
let methods = [("none", "none"), ("dyvit:0.7", "dyvit"), ("evit:0.7", "evit"), ("asvit", "asvit"), ("bat:0.7", "bat"), ("tome:8", "tome")]

@Suite struct EmitCTests {
  @Test func packingPutsSixteenOutputsPerPanel() {
    // W [n=17][k=2]: W[o][kk] = 10*o + kk.
    let w = (0..<17).flatMap { o in [Float(10 * o), Float(10 * o + 1)] }
    let packed = WeightBlob.pack(w, n: 17, k: 2)
    #expect(packed.count == 2 * 2 * 16)
    #expect(packed[0] == 0 && packed[1] == 10 && packed[15] == 150)  // panel 0, kk 0
    #expect(packed[16] == 1 && packed[17] == 11)  // panel 0, kk 1
    #expect(packed[32] == 160 && packed[33] == 0)  // panel 1: output 16, then padding
    #expect(packed[48] == 161)
  }

  @Test func blobEntriesAreAlignedAndHashed() throws {
    let graph = try GraphLoader.load(path: repositoryRoot.appendingPathComponent("samples/tiny.graph").path)
    let weights = RandomWeights.generate(for: graph, seed: 1)
    let blob = try WeightBlob.build(graph, weights: weights)
    #expect(blob.entries.values.allSatisfy { $0.offset % WeightBlob.alignment == 0 })
    #expect(blob.entries[graph.parameter(named: "blocks.0.attn.qkv.weight")!]?.packed?.n == 192)
    #expect(blob.entries[graph.parameter(named: "patch_embed.proj.weight")!]?.packed?.k == 768)
    #expect(blob.entries[graph.parameter(named: "pos_embed")!]?.packed == nil)
    #expect(blob.hash == (try WeightBlob.build(graph, weights: weights)).hash)
    #expect(blob.hash != (try WeightBlob.build(graph, weights: RandomWeights.generate(for: graph, seed: 2))).hash)
  }

  @Test func namesAreValidAndUnique() {
    #expect(Naming.identifier("blocks.0.attn.qkv.weight") == "blocks_0_attn_qkv_weight")
    #expect(Naming.identifier("3x") == "v_3x")
    var naming = Naming()
    let a = naming.name(ValueID(0), "x.1", prefix: "V_")
    let b = naming.name(ValueID(1), "x_1", prefix: "V_")
    #expect(a == "V_x_1" && b == "V_x_1_2")
    #expect(naming.name(ValueID(0), "ignored", prefix: "V_") == "V_x_1")
  }

  /// The emitted C of the tiny model with each pruning method, held as snapshots (re-record on
  /// purpose only, with VITC_RECORD_SNAPSHOTS=1).
  @Test(arguments: methods) func tinyModelSnapshot(prune: String, label: String) throws {
    let emitted = try emitTiny(prune: prune, stem: "tiny_vit")
    #expect(Set(emitted.files.keys) == ["tiny_vit.c", "tiny_vit.h", "tiny_vit_main.c", "tiny_vit_weights.S", "tiny_vit_weights.bin"])
    let suffix = prune == "none" ? "" : "-" + label
    try assertSnapshot(String(decoding: emitted.files["tiny_vit.c"]!, as: UTF8.self), named: "tiny_vit\(suffix).c")
    try assertSnapshot(String(decoding: emitted.files["tiny_vit.h"]!, as: UTF8.self), named: "tiny_vit\(suffix).h")
  }

  /// Files are named after the stem, and the C that names other files names them by the stem.
  @Test func filesAreNamedAfterTheStem() throws {
    let emitted = try emitTiny(prune: "dyvit:0.7", stem: "board-a")
    #expect(Set(emitted.files.keys) == ["board-a.c", "board-a.h", "board-a_main.c", "board-a_weights.S", "board-a_weights.bin"])
    let text = { (file: String) in String(decoding: emitted.files[file]!, as: UTF8.self) }
    #expect(text("board-a.c").contains("#include \"board-a.h\"") && text("board-a.c").contains("board-a_weights.S"))
    #expect(text("board-a_weights.S").contains(".incbin \"board-a_weights.bin\""))
    #expect(text("board-a_main.c").contains("#define VIT_MODEL_HEADER \"board-a.h\""))
    #expect(text("board-a_main.c").hasSuffix("#include \"main.c\"\n"))
    #expect(!text("board-a.c").contains("tiny_vit.h") && !text("board-a_weights.S").contains(".incbin \"tiny_vit"))
    #expect(EmitC.isCompiledSource("board-a_main.c") && !EmitC.isCompiledSource("main.c") && !EmitC.isCompiledSource("board-a.h"))
  }

  /// The header's VIT_<MODEL>_STATIC_BYTES is every writable static byte of the model object:
  /// the sizes of the objects `nm` finds in .bss and .data add up to it, with threads and
  /// without (-DVIT_NO_THREADS sizes the scratch for one thread), and the object's sections
  /// hold nothing more than alignment between them.
  @Test(arguments: [("dyvit:0.7", "dyvit"), ("tome:8", "tome"), ("none", "none")]) func staticMemoryIsWhatTheHeaderStates(prune: String, label: String) throws {
    try Self.checkStaticMemory(try emitTiny(prune: prune, stem: "model"), loadsWeights: false)
  }

  /// The same for models compiled without weights: the weights they load (and AS-ViT's
  /// thresholds, read from the file when the spec gives none) are static memory too.
  @Test(arguments: ["asvit", "dyvit:0.7"]) func loadedWeightsAreStaticMemoryTheHeaderStates(prune: String) throws {
    let graph = try tinyGraph(prune: prune)
    let emitted = try EmitC.emitLoadingWeights(
      graph, provenance: .init(version: "test", graphFile: "samples/tiny.graph", weights: "none", schedule: prune),
      stem: "model", thresholdsFromWeights: prune == "asvit")
    try Self.checkStaticMemory(emitted, loadsWeights: true)
    let source = String(decoding: emitted.files["model.c"]!, as: UTF8.self)
    #expect(source.contains("vit_thresholds[0] /* score_predictor.0.keep_threshold */") == (prune == "asvit"))
    #expect(source.contains("{\"score_predictor.2.keep_threshold\", -1,") == (prune == "asvit"))
    #expect(emitted.files.keys.allSatisfy { !$0.contains("_weights") }, "\(emitted.files.keys.sorted())")
  }

  /// The C of tiny compiled without weights, with AS-ViT reading its thresholds from the file:
  /// the loader's table, the thresholds' static memory and the header's account of it.
  @Test func loadingModelSnapshot() throws {
    let graph = try tinyGraph(prune: "asvit")
    let emitted = try EmitC.emitLoadingWeights(
      graph, provenance: .init(version: "test", graphFile: "samples/tiny.graph", weights: "none", schedule: "asvit"),
      stem: "tiny_vit", thresholdsFromWeights: true)
    try assertSnapshot(String(decoding: emitted.files["tiny_vit.c"]!, as: UTF8.self), named: "tiny_vit-asvit-load.c")
    try assertSnapshot(String(decoding: emitted.files["tiny_vit.h"]!, as: UTF8.self), named: "tiny_vit-asvit-load.h")
  }

  static func checkStaticMemory(_ emitted: EmittedModel, loadsWeights: Bool) throws {
    let directory = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    for (name, contents) in emitted.files { try Data(contents).write(to: directory.appendingPathComponent(name)) }
    let header = String(decoding: emitted.files["model.h"]!, as: UTF8.self)
    func figure(_ name: String, serial: Bool) throws -> Int {
      // The #ifdef VIT_NO_THREADS branch comes first, then #else.
      let branches = header.components(separatedBy: "#ifdef VIT_NO_THREADS")[1].components(separatedBy: "#else")
      let branch = serial ? branches[0] : branches[1]
      let line = try #require(branch.split(separator: "\n").first { $0.hasPrefix("#define VIT_TINY_VIT_\(name) ") })
      return try #require(Int(line.split(separator: " ")[2]))
    }
    var threadedBytes = 0
    for serial in [false, true] {
      let object = directory.appendingPathComponent(serial ? "serial.o" : "threaded.o").path
      let compiled = try run(
        URL(fileURLWithPath: "/usr/bin/cc"),
        ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I", repositoryPath("Runtime/include"), "-c", directory.appendingPathComponent("model.c").path, "-o", object]
          + (serial ? ["-DVIT_NO_THREADS"] : []))
      try #require(compiled.status == 0, "\(compiled.output)")
      let symbols = try run(URL(fileURLWithPath: "/usr/bin/nm"), ["-S", "--format=sysv", object]).stdout
      var objects = 0, bytes = 0
      for line in symbols.split(separator: "\n") {
        let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard fields.count == 7, [".bss", ".data"].contains(fields[6]), fields[3] == "OBJECT" else { continue }
        if loadsWeights {
          if fields[0].contains("weights") { #expect(Int(fields[4], radix: 16) == emitted.weightBytes) }
        } else {
          #expect(!fields[0].contains("weights"), "\(fields[0]): the weights are not static memory of the model object")
        }
        objects += 1
        bytes += Int(fields[4], radix: 16) ?? -1
      }
      let stated = try figure("STATIC_BYTES", serial: serial)
      #expect(bytes == stated, "\(serial ? "serial" : "threaded"): nm finds \(bytes) bytes in \(objects) objects, the header states \(stated)")
      let sections = try run(URL(fileURLWithPath: "/usr/bin/size"), ["-A", object]).stdout.split(separator: "\n")
        .filter { [".bss", ".data"].contains($0.split(separator: " ").first ?? "") }
        .reduce(0) { $0 + (Int($1.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0) }
      #expect(sections >= stated && sections < stated + 64 * objects, "size -A: \(sections) bytes in .bss/.data")
      if serial { #expect(stated < threadedBytes) } else { threadedBytes = stated }
      if !serial { #expect(emitted.staticBytes == stated) }
      #expect(try figure("MAX_THREADS", serial: serial) == (serial ? 1 : 64))
    }
  }

  /// Run-time counts come from pruning (AS-ViT's threshold_keep); a dynamic graph input has
  /// no count the entry point could take.
  @Test func dynamicInputsAreRefusedClearly() throws {
    let graph = try GraphLoader.parse(
      "graph g(x: f32[n<=4,4]) -> f32[n<=4,4] {\n  y = gelu(x)\n  return y\n}\n", file: "g.graph")
    #expect(throws: EmitError.dynamicInput("x", TensorType([.dynamic(symbol: .named("n"), bound: 4), .fixed(4)]), at: SourceLocation(file: "g.graph", line: 1, column: 9))) {
      try EmitC.emit(graph, weights: [:], provenance: .init(version: "t", graphFile: "g", weights: "w", schedule: "none"), stem: "g")
    }
  }

  /// Stage naming follows the selection mark, not the op kind: a linear marked for selection
  /// gets a `_prune` stage, with the op that only feeds it; unmarked, neither does.
  @Test func selectionStagesFollowTheMark() throws {
    for role in [OpRole.pruningSelection, nil] {
      var graph = Graph(name: "g", outputType: TensorType(fixed: [4]))
      let x = graph.addInput(name: "x", type: TensorType(fixed: [4]))
      let w = try graph.addParameter(name: "w", type: TensorType(fixed: [4, 4]))
      let g = try graph.append(.gelu, [x], resultNames: ["g"], block: 0)[0]
      let scores = try graph.append(.linear, [g, w], resultNames: ["s"], block: 0, role: role)[0]
      let y = try graph.append(.add, [x, x], resultNames: ["y"], block: 0)[0]
      _ = scores
      graph.output = y
      #expect(ModelEmitter.selectionOps(graph) == (role == nil ? [] : [0, 1]))
    }
  }
}

/// samples/tiny.graph in another token layout (docs/graph-format.md, "Token layout"):
/// `noclass`: no class token, LayerScale on both residual branches, the head on the mean of the
/// patch tokens; `distilled`: class and distillation tokens, the mean of two heads.
func tinyVariantSource(_ layout: String) throws -> String {
  var text = try String(contentsOf: repositoryRoot.appendingPathComponent("samples/tiny.graph"), encoding: .utf8)
  func replace(_ old: String, _ new: String) throws {
    try #require(text.contains(old), "tiny.graph no longer has \(old)")
    text = text.replacingOccurrences(of: old, with: new)
  }
  switch layout {
  case "noclass":
    try replace("  param @cls_token: f32[1,1,64]\n", "")
    try replace("x: f32[197,64] = concat(reshape(@cls_token, shape=[1,64]), patches)", "x: f32[196,64] = patches")
    try replace("197", "196")
    try replace("    param @blocks.{i}.norm2.weight", "    param @blocks.{i}.ls1.gamma, @blocks.{i}.ls2.gamma: f32[64]\n    param @blocks.{i}.norm2.weight")
    try replace("x = x + linear(context, @blocks.{i}.attn.proj.weight, @blocks.{i}.attn.proj.bias)",
                "x = x + channel_scale(linear(context, @blocks.{i}.attn.proj.weight, @blocks.{i}.attn.proj.bias), @blocks.{i}.ls1.gamma)")
    try replace("x = x + linear(h, @blocks.{i}.mlp.fc2.weight, @blocks.{i}.mlp.fc2.bias)",
                "x = x + channel_scale(linear(h, @blocks.{i}.mlp.fc2.weight, @blocks.{i}.mlp.fc2.bias), @blocks.{i}.ls2.gamma)")
    try replace("cls: f32[64] = row(layernorm(x, @norm.weight, @norm.bias, eps=1e-6), index=0)",
                "cls: f32[64] = mean_tokens(layernorm(x, @norm.weight, @norm.bias, eps=1e-6), prefix=0)")
  default:
    try replace("  param @cls_token: f32[1,1,64]\n", "  param @cls_token, @dist_token: f32[1,1,64]\n  param @head_dist.weight: f32[1000,64]\n  param @head_dist.bias: f32[1000]\n")
    try replace("x: f32[197,64] = concat(reshape(@cls_token, shape=[1,64]), patches)",
                "x: f32[198,64] = concat(concat(reshape(@cls_token, shape=[1,64]), reshape(@dist_token, shape=[1,64])), patches)")
    try replace("197", "198")
    try replace("cls: f32[64] = row(layernorm(x, @norm.weight, @norm.bias, eps=1e-6), index=0)\n  logits = linear(cls, @head.weight, @head.bias)",
                "x = layernorm(x, @norm.weight, @norm.bias, eps=1e-6)\n  logits = (linear(row(x, index=0), @head.weight, @head.bias) + linear(row(x, index=1), @head_dist.weight, @head_dist.bias)) * 0.5")
  }
  return text
}

@Suite struct TokenLayoutEmitTests {
  /// The C of the other layouts, held as snapshots: the runtime's _np kernels with the prefix
  /// count, LayerScale and the mean of the patch tokens, and the driver's prefix macro.
  @Test(arguments: [("noclass", "tome:8"), ("noclass", "dyvit:0.7"), ("distilled", "evit:0.7"), ("distilled", "tome:8")])
  func variantSnapshot(layout: String, prune: String) throws {
    let name = "tiny_vit_\(layout)"
    let parsed = try GraphLoader.parse(try tinyVariantSource(layout), file: "samples/\(name).graph")
    #expect(TokenLayout(of: parsed)?.prefix == (layout == "noclass" ? 0 : 2))
    let graph = try Pipeline.run(parsed, through: .planned, schedule: try ScheduleParser.parse(prune, depth: 12))
    let emitted = try EmitC.emit(
      graph, weights: RandomWeights.generate(for: graph, seed: 1),
      provenance: .init(version: "test", graphFile: "samples/\(name).graph", weights: "--random-weights 1", schedule: prune),
      stem: name)
    let source = String(decoding: emitted.files["\(name).c"]!, as: UTF8.self)
    let label = String(prune.prefix { $0 != ":" })
    try assertSnapshot(source, named: "\(name)-\(label).c")
    // One prefix token's plain kernels never appear; the driver knows where trace groups start.
    #expect(!source.contains("vit_trace_stage(") && source.contains("vit_trace_stage_np("))
    let driver = String(decoding: emitted.files["\(name)_main.c"]!, as: UTF8.self)
    #expect(driver.contains("#define VIT_MODEL_PREFIX_TOKENS \(layout == "noclass" ? 0 : 2)"))
    if layout == "noclass" { #expect(source.contains("LayerScale") && source.contains("mean of rows 0 .. n-1")) }
  }
}
