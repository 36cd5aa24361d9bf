import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR

@testable import VitInterpreter

/// The interpreter against timm itself (Tests/Fixtures/timm-tiny, made by
/// tools/make_fixtures.py): timm's safetensors bound to samples/tiny.graph unchanged.
@Suite struct TimmFixtureTests {
  @Test func interpreterMatchesTimm() throws {
    let folder = repositoryRoot.appendingPathComponent("Tests/Fixtures/timm-tiny")
    let graph = try loadSample("tiny.graph")
    let weights = try WeightBinding.bind(graph, to: try SafetensorsFile(path: folder.appendingPathComponent("weights.safetensors").path))
    let input = try RawInput.readF32(path: folder.appendingPathComponent("input.f32").path, shape: [3, 224, 224])
    let expected = try RawInput.readF32(path: folder.appendingPathComponent("logits.f32").path, shape: [1000]).scalars
    let logits = try Interpreter(graph: graph, weights: weights).run([input]).scalars
    let scale = max(1, expected.map { abs($0) }.max()!)
    let worst = zip(logits, expected).map { abs($0 - $1) }.max()!
    // SEMANTICS §8: float32 GEMMs differ from PyTorch's in the last bits; 1e-4 relative.
    #expect(worst <= 1e-4 * scale, "max |Δ| = \(worst)")
    let top = { (values: [Float]) in values.indices.sorted { values[$0] > values[$1] }.prefix(5) }
    #expect(Array(top(logits)) == Array(top(expected)))
  }
}
