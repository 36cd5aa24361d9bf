import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR
import VitPasses

@testable import VitInterpreter

/// LV-ViT (SEMANTICS-LVVIT.md) in the interpreter: its kernels by hand, and the tiny LV-ViT
/// (Tests/Fixtures/lvvit/tiny.graph) dense and with each method against the independent PyTorch
/// implementation of tools/lvvit_reference.py (Tests/Fixtures/lvvit/reference.json), which
/// regenerates vitc's `--random-weights 1` and the tests' seeded input bit for bit.
@Suite struct LVViTTests {
  static var reference: [String: Any] {
    let url = repositoryRoot.appendingPathComponent("Tests/Fixtures/lvvit/reference.json")
    return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
  }
  static let cases: [String] = (reference["cases"] as! [String: Any]).keys.sorted()

  /// SEMANTICS-LVVIT §L9.6: two classes, cls logits [1, −2], aux rows [0.5, 3], [2, −1], [−4, 0]:
  /// the per-class max [2, 3] comes from different tokens, the logits are [2, −0.5].
  @Test func headRuleByHand() {
    // Row 0 (the cls token) is left out of the max even though it is the largest.
    let x = Tensor(shape: [4, 2], scalars: [9, 9, 0.5, 3, 2, -1, -4, 0])
    let identity = Tensor(shape: [2, 2], scalars: [1, 0, 0, 1])
    let aux = LVViTKernels.auxHeadMax(x, weight: identity, bias: Tensor(zeros: [2]))
    #expect(aux.scalars == [2, 3])
    #expect(zip([1, -2] as [Float], aux.scalars).map { $0 + 0.5 * $1 } == [2, -0.5])
    // No patch token left (AS-ViT may drop them all): the aux term is 0, the cls head alone.
    #expect(LVViTKernels.auxHeadMax(Tensor(shape: [1, 2], scalars: [9, 9]), weight: identity, bias: Tensor(zeros: [2])).scalars == [0, 0])
  }

  /// Stride 2 and padding 1 on a 3×3 map of 1…9 with a summing 3×3 kernel: each output is the
  /// sum of the in-map taps of its window (zeros outside).
  @Test func conv2dPadsWithZerosAndStrides() {
    let x = Tensor(shape: [1, 3, 3], scalars: (1...9).map(Float.init))
    let w = Tensor(shape: [2, 1, 3, 3], scalars: Array(repeating: 1, count: 9) + [0, 0, 0, 0, 1, 0, 0, 0, 0])
    let y = LVViTKernels.conv2d(x, weight: w, bias: Tensor(shape: [2], scalars: [0, 0.5]), stride: 2, pad: 1)
    #expect(y.shape == [2, 2, 2])
    // Channel 0 sums the window; channel 1 reads its centre (+ 0.5): pixels (0,0), (0,2), (2,0), (2,2).
    #expect(y.scalars == [12, 16, 24, 28, 1.5, 3.5, 7.5, 9.5])
  }

  @Test func batchnormUsesTheRunningStatistics() {
    let x = Tensor(shape: [2, 1, 2], scalars: [1, 3, -1, 0])
    let y = LVViTKernels.batchnorm(
      x, weight: Tensor(shape: [2], scalars: [2, 1]), bias: Tensor(shape: [2], scalars: [0.5, 0]),
      mean: Tensor(shape: [2], scalars: [1, -1]), variance: Tensor(shape: [2], scalars: [4 - 1e-5, 1 - 1e-5]), eps: 1e-5)
    // (x − mean)/√(var + eps)·w + b: channel 0 (x − 1)/2·2 + 0.5, channel 1 (x + 1)/1.
    let expected: [Float] = [0.5, 2.5, 0, 1]
    #expect(zip(y.scalars, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(y.scalars)")
  }

  /// The reference regenerates vitc's random weights and the seeded input; if its generator
  /// drifted, every comparison below would fail for that reason alone, so say so first.
  @Test func referenceRegeneratesTheSameWeightsAndInput() throws {
    let graph = try GraphLoader.load(path: repositoryPath("Tests/Fixtures/lvvit/tiny.graph"))
    let pruned = try Pipeline.run(graph, through: .pruned, schedule: try ScheduleParser.parse("dyvit:0.7", depth: 8, backbone: .lvvit))
    let weights = RandomWeights.generate(for: pruned, seed: 1)
    for (name, values) in Self.reference["weights_head"] as! [String: [Double]] {
      #expect(Array(weights[name]!.scalars.prefix(2)) == values.map { Float($0) }, "\(name)")
    }
    let input = seededTensor([3, 128, 128], seed: 7)
    #expect(Array(input.scalars.prefix(4)) == (Self.reference["input_head"] as! [Double]).map { Float($0) })
  }

  /// Kept patches in order at every stage equal PyTorch's (the fixture's margins, printed by
  /// the script, are ≥ 2e-5 absolute on scores of about 1e-2: far above float noise, so no flip
  /// is excused), logits within 1e-4 · max(1, max|logit|).
  @Test(arguments: cases)
  func interpreterMatchesPyTorch(spec: String) throws {
    let expected = (Self.reference["cases"] as! [String: Any])[spec] as! [String: Any]
    let parsed = try GraphLoader.load(path: repositoryPath("Tests/Fixtures/lvvit/tiny.graph"))
    #expect(parsed.backbone == .lvvit)
    let schedule = try ScheduleParser.parse(spec, depth: parsed.blocks.count, backbone: parsed.backbone)
    let graph = try Pipeline.run(parsed, through: .pruned, schedule: schedule)
    let weights = RandomWeights.generate(for: graph, seed: 1)
    let (logits, stages) = try Interpreter(graph: graph, weights: weights).runTraced([seededTensor([3, 128, 128], seed: 7)])

    let expectedStages = expected["stages"] as! [[String: Any]]
    #expect(stages.count == expectedStages.count)
    for (stage, reference) in zip(stages, expectedStages) {
      #expect(stage.block == reference["block"] as! Int)
      #expect(stage.tokens == reference["tokens"] as! Int, "block \(stage.block)")
      #expect(stage.patches == reference["patches"] as! [[Int]], "block \(stage.block): margin \(reference["margin"]!)")
    }
    let reference = (expected["logits"] as! [Double]).map { Float($0) }
    #expect(logits.scalars.count == reference.count)
    let scale = max(1, reference.map { abs($0) }.max()!)
    let worst = zip(logits.scalars, reference).map { abs($0 - $1) }.max()!
    #expect(worst <= 1e-4 * scale, "max |Δ| \(worst), max |ref| \(scale)")
  }
}
