import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR

@testable import VitInterpreter


func loadSample(_ name: String) throws -> Graph {
  try GraphLoader.load(path: repositoryRoot.appendingPathComponent("samples/\(name)").path)
}

/// A seeded pseudo-random tensor (not constant: a constant image makes tokens equal).
func seededTensor(_ shape: [Int], seed: UInt64) -> Tensor {
  var generator = SplitMix64(seed: seed, name: "input")
  return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) })
}

@Suite struct KernelTests {
  @Test func layerNormUsesTheBiasedVariance() {
    let x = Tensor(shape: [1, 4], scalars: [1, 2, 3, 4])
    let y = Kernels.layerNorm(
      x, weight: Tensor(shape: [4], scalars: [1, 1, 1, 2]), bias: Tensor(shape: [4], scalars: [0, 0, 0, 1]), eps: 0)
    // mean 2.5, biased variance 1.25
    let s = 1.25.squareRoot()
    #expect(y.scalars == [Float(-1.5 / s), Float(-0.5 / s), Float(0.5 / s), Float(2 * 1.5 / s + 1)])
  }

  @Test func softmaxIsStableForLargeLogits() {
    let y = Kernels.softmax(Tensor(shape: [2, 3], scalars: [1000, 1000, 1000, 0, 0, Float(log(2.0))]))
    #expect(y.scalars[0...2].allSatisfy { abs($0 - 1 / 3) < 1e-7 })
    #expect(abs(y.scalars[5] - 0.5) < 1e-7)
  }

  @Test func geluIsTheErfForm() {
    #expect(Kernels.gelu(1) == Float(0.8413447460685429))
    #expect(Kernels.gelu(-3) == Float(-0.004049694094890309))
  }

  @Test func splitAndMergeHeadsFollowTimmIndexing() {
    // [n=2, 3 parts × C=4] with 2 heads of d=2: element j of head h of part s is column s*4 + h*2 + j.
    let qkv = Tensor(shape: [2, 12], scalars: (0..<24).map(Float.init))
    let parts = Kernels.splitHeads(qkv, heads: 2, parts: 3)
    #expect(parts[1].shape == [2, 2, 2])
    #expect(parts[1].scalars == [4, 5, 16, 17, 6, 7, 18, 19])
    #expect(Kernels.mergeHeads(parts[2]).scalars == [8, 9, 10, 11, 20, 21, 22, 23])
  }

  @Test func patchEmbedTakesPatchesRowMajor() {
    // One channel-summing filter per output: patch p's embedding = sum of its pixels.
    let image = Tensor(shape: [3, 4, 6], scalars: (0..<72).map(Float.init))
    let weight = Tensor(shape: [1, 3, 2, 2], scalars: Array(repeating: 1, count: 12))
    let y = Kernels.patchEmbed(image, weight: weight, bias: Tensor(shape: [1], scalars: [0.5]), patch: 2)
    #expect(y.shape == [6, 1])
    func pixelSum(_ r: Int, _ s: Int) -> Float {
      var sum: Float = 0.5
      for ch in 0..<3 { for ky in 0..<2 { for kx in 0..<2 { sum += Float(ch * 24 + (2 * r + ky) * 6 + 2 * s + kx) } } }
      return sum
    }
    #expect(y.scalars == [pixelSum(0, 0), pixelSum(0, 1), pixelSum(0, 2), pixelSum(1, 0), pixelSum(1, 1), pixelSum(1, 2)])
  }

  @Test func matmulAndLinearAgreeWithHandResults() {
    let a = Tensor(shape: [1, 2, 3], scalars: [1, 2, 3, 4, 5, 6])
    let b = Tensor(shape: [1, 3, 2], scalars: [1, 0, 0, 1, 1, 1])
    #expect(Kernels.matmul(a, b).scalars == [4, 5, 10, 11])
    let w = Tensor(shape: [2, 3], scalars: [1, 0, 1, 0, 1, 0])
    #expect(Kernels.linear(a, weight: w, bias: Tensor(shape: [2], scalars: [10, 20])).scalars == [14, 22, 20, 25])
  }
}

@Suite struct InterpreterTests {
  @Test func randomWeightsAreDeterministicAndRunTheTinyModel() throws {
    let graph = try loadSample("tiny.graph")
    let weights = RandomWeights.generate(for: graph, seed: 1)
    #expect(weights == RandomWeights.generate(for: graph, seed: 1))
    #expect(weights["head.bias"] != RandomWeights.generate(for: graph, seed: 2)["head.bias"])
    let interpreter = try Interpreter(graph: graph, weights: weights)
    let logits = try interpreter.run([seededTensor([3, 224, 224], seed: 7)])
    #expect(logits.shape == [1000])
    #expect(logits.scalars.allSatisfy { $0.isFinite })
    let spread = logits.scalars.max()! - logits.scalars.min()!
    #expect(spread > 1, "logits of a random model should not be flat")
  }

  /// `--random-weights` must give attention far from uniform, or pruning tests mean nothing:
  /// the cls row's largest attention weight averages many times the uniform 1/197.
  @Test func randomWeightsGivePeakedAttention() throws {
    let graph = try loadSample("tiny.graph")
    let interpreter = try Interpreter(graph: graph, weights: RandomWeights.generate(for: graph, seed: 1))
    var clsMaxima: [Float] = []
    var entropies: [Double] = []
    _ = try interpreter.run([seededTensor([3, 224, 224], seed: 3)]) { id, tensor in
      guard case .result(let op, _) = graph[id].origin, graph.ops[op].kind == .softmax else { return }
      let (heads, n) = (tensor.shape[0], tensor.shape[1])
      for h in 0..<heads {
        let clsRow = tensor.scalars[(h * n * n)..<(h * n * n + n)]
        clsMaxima.append(clsRow.max()!)
        entropies.append(clsRow.reduce(0.0) { $0 - ($1 > 0 ? Double($1) * log(Double($1)) : 0) })
      }
    }
    #expect(clsMaxima.count == 12 * 2)
    let meanMax = clsMaxima.reduce(0, +) / Float(clsMaxima.count)
    let meanEntropy = entropies.reduce(0, +) / Double(entropies.count)
    #expect(meanMax > 10.0 / 197, "mean cls max attention \(meanMax)")
    #expect(meanEntropy < 0.8 * log(197.0), "mean cls-row entropy \(meanEntropy) vs uniform \(log(197.0))")
  }

  /// The same block on a run-time token count gives what the static graph gives.
  @Test func dynamicTokenCountRunsLikeTheStaticGraph() throws {
    func block(_ tokens: String) -> String {
      """
      graph blk(x: f32[\(tokens),8]) -> f32[\(tokens),8] {
        param @ln.weight, @ln.bias: f32[8]
        param @qkv.weight: f32[24,8]
        block 0 {
          q, k, v = split_heads(linear(layernorm(x, @ln.weight, @ln.bias, eps=1e-6), @qkv.weight), heads=2)
          y = x + merge_heads(matmul(softmax(matmul(q, transpose(k)) * 0.5), v))
        }
        return y
      }
      """
    }
    let dynamic = try GraphLoader.parse(block("n<=16"), file: "d.graph")
    let weights = RandomWeights.generate(for: dynamic, seed: 5)
    for tokens in [1, 5, 16] {
      let input = seededTensor([tokens, 8], seed: UInt64(tokens))
      let fixed = try GraphLoader.parse(block("\(tokens)"), file: "s.graph")
      let expected = try Interpreter(graph: fixed, weights: weights).run([input])
      #expect(try Interpreter(graph: dynamic, weights: weights).run([input]) == expected)
    }
    #expect(throws: InterpreterError.self) {
      try Interpreter(graph: dynamic, weights: weights).run([seededTensor([17, 8], seed: 1)])
    }
  }

  @Test func bindingChecksNamesAndShapes() throws {
    let graph = try loadSample("tiny.graph")
    var weights = RandomWeights.generate(for: graph, seed: 1)
    weights["norm.bias"] = Tensor(zeros: [65])
    #expect(throws: InterpreterError.self) { try Interpreter(graph: graph, weights: weights) }
    weights["norm.bias"] = nil
    #expect(throws: InterpreterError.unboundParameter("norm.bias")) { try Interpreter(graph: graph, weights: weights) }
  }
}
