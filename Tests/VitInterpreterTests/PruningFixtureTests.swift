import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR
import VitPasses

@testable import VitInterpreter

/// The interpreter's pruning against an independent PyTorch implementation of each method
/// written from SEMANTICS.md (Tests/Fixtures/prune-tiny, made by tools/make_prune_fixtures.py):
/// timm-tiny's backbone plus seeded DynamicViT predictors and AS-ViT thresholds.
@Suite struct PruningFixtureTests {
  static let folder = repositoryRoot.appendingPathComponent("Tests/Fixtures/prune-tiny")

  /// The kept patches, in order, must be PyTorch's at every stage; the fixtures' margins (the
  /// score gap at each cut, README there) are at least 1e-4 relative, far above float noise,
  /// so no flip is excused. Logits within the backend tolerance, 1e-4 · max(1, max|logit|).
  @Test(arguments: ["none", "dyvit-0.7", "evit-0.7", "evit-0.7-nofuse", "asvit", "bat-0.7", "tome-8"])
  func interpreterMatchesPyTorch(fixture: String) throws {
    let json = try JSONSerialization.jsonObject(
      with: Data(contentsOf: Self.folder.appendingPathComponent("\(fixture).json"))) as! [String: Any]
    let spec = json["method"] as! String
    let parsed = try loadSample("tiny.graph")
    let schedule = try ScheduleParser.parse(spec, depth: parsed.blocks.count)
    let graph = try Pipeline.run(parsed, through: .pruned, schedule: schedule)

    let backbone = try SafetensorsFile(path: repositoryPath("Tests/Fixtures/timm-tiny/weights.safetensors"))
    let predictors = try SafetensorsFile(path: Self.folder.appendingPathComponent("predictors.safetensors").path)
    var weights: [String: Tensor] = [:]
    for parameter in graph.parameters {
      let name = graph[parameter].name
      weights[name] = try backbone.entries[name] != nil ? backbone.tensor(name) : predictors.tensor(name)
    }
    let input = try RawInput.readF32(path: repositoryPath("Tests/Fixtures/timm-tiny/input.f32"), shape: [3, 224, 224])
    let (logits, stages) = try Interpreter(graph: graph, weights: weights).runTraced([input])

    let expectedStages = json["stages"] as! [[String: Any]]
    #expect(stages.count == expectedStages.count)
    for (stage, expected) in zip(stages, expectedStages) {
      #expect(stage.block == expected["block"] as! Int)
      #expect(stage.tokens == expected["tokens"] as! Int, "block \(stage.block)")
      #expect(stage.patches == expected["patches"] as! [[Int]], "block \(stage.block): margin \(expected["margin"]!)")
    }
    let reference = (json["logits"] as! [Double]).map { Float($0) }
    let scale = max(1, reference.map { abs($0) }.max()!)
    let worst = zip(logits.scalars, reference).map { abs($0 - $1) }.max()!
    #expect(worst <= 1e-4 * scale, "max |Δ| \(worst)")
  }
}
