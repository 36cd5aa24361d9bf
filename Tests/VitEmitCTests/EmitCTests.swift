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
    let a = expected.split(separator: "\n", omittingEmptySubsequences: false)
    let b = text.split(separator: "\n", omittingEmptySubsequences: false)
    let first = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    Issue.record(
      "snapshot \(name) differs at line \(first + 1):\n- \(first < a.count ? a[first] : "<end>")\n+ \(first < b.count ? b[first] : "<end>")",
      sourceLocation: sourceLocation)
  }
}

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

  /// The emitted C of the tiny model, held as a snapshot (re-record on purpose only).
  @Test func tinyModelSnapshot() throws {
    // Parsed from its text under its repository-relative name, so that locations in the
    // emitted comments do not depend on where the repository is checked out.
    let source = try String(contentsOf: repositoryRoot.appendingPathComponent("samples/tiny.graph"), encoding: .utf8)
    let graph = try Pipeline.run(try GraphLoader.parse(source, file: "samples/tiny.graph"), through: Pipeline.stages.last!)
    let emitted = try EmitC.emit(
      graph, weights: RandomWeights.generate(for: graph, seed: 1),
      provenance: .init(version: "test", graphFile: "samples/tiny.graph", weights: "--random-weights 1", schedule: "none"),
      stem: "tiny_vit")
    #expect(Set(emitted.files.keys) == ["tiny_vit.c", "tiny_vit.h", "tiny_vit_main.c", "tiny_vit_weights.S", "tiny_vit_weights.bin"])
    try assertSnapshot(String(decoding: emitted.files["tiny_vit.c"]!, as: UTF8.self), named: "tiny_vit.c")
    try assertSnapshot(String(decoding: emitted.files["tiny_vit.h"]!, as: UTF8.self), named: "tiny_vit.h")
  }

  /// Run-time counts come from pruning (AS-ViT's threshold_keep); a dynamic graph input has
  /// no count the entry point could take.
  @Test func dynamicInputsAreRefusedClearly() throws {
    let graph = try GraphLoader.parse(
      "graph g(x: f32[n<=4,4]) -> f32[n<=4,4] {\n  y = gelu(x)\n  return y\n}\n", file: "g.graph")
    #expect(throws: EmitError.dynamicInput("x", TensorType([.dynamic(symbol: "n", bound: 4), .fixed(4)]), at: SourceLocation(file: "g.graph", line: 1, column: 9))) {
      try EmitC.emit(graph, weights: [:], provenance: .init(version: "t", graphFile: "g", weights: "w", schedule: "none"), stem: "g")
    }
  }
}
