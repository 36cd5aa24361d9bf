import Foundation
import TestSupport
import Testing
import VitEmitC
import VitFrontend
import VitIR
import VitPasses

/// The emitted C of the tiny LV-ViT (Tests/Fixtures/lvvit/tiny.graph), dense and with
/// DynamicViT at its LV-ViT default locations, held as snapshots (re-record on purpose only,
/// with VITC_RECORD_SNAPSHOTS=1): the stem's vit_conv2d_f32 calls, BatchNorm and ReLU loops,
/// the branch scaling and the aux head's max.
@Suite struct LVViTEmitTests {
  @Test(arguments: [("none", ""), ("dyvit:0.7", "-dyvit")])
  func tinyLVViTSnapshot(prune: String, suffix: String) throws {
    let path = "Tests/Fixtures/lvvit/tiny.graph"
    let source = try String(contentsOf: repositoryRoot.appendingPathComponent(path), encoding: .utf8)
    let parsed = try GraphLoader.parse(source, file: path)
    let schedule = try ScheduleParser.parse(prune, depth: parsed.blocks.count, backbone: parsed.backbone)
    let graph = try Pipeline.run(parsed, through: .planned, schedule: schedule)
    let emitted = try EmitC.emit(
      graph, weights: RandomWeights.generate(for: graph, seed: 1),
      provenance: .init(version: "test", graphFile: path, weights: "--random-weights 1", schedule: prune),
      stem: "lvvit_tiny", embedding: .incbin)
    let c = String(decoding: emitted.files["lvvit_tiny.c"]!, as: UTF8.self)
    #expect(c.components(separatedBy: "vit_conv2d_f32(").count - 1 == 3)
    #expect(c.contains("batchnorm (eval)"))
    try assertSnapshot(c, named: "lvvit_tiny\(suffix).c")
    try assertSnapshot(String(decoding: emitted.files["lvvit_tiny.h"]!, as: UTF8.self), named: "lvvit_tiny\(suffix).h")
  }
}
