import TestSupport
import Testing
import VitFrontend
import VitIR
import VitInterpreter

@testable import VitPasses

/// IR text in, IR text out; and the interpreter gives the same logits before and after.
@Suite struct FusionPassTests {
  let block = """
    graph blk(x: f32[n<=197,8]) -> f32[n<=197,8] {
      param @qkv.weight: f32[24,8]
      param @qkv.bias, @fc.bias: f32[24]
      param @fc.weight: f32[24,8]
      param @proj.weight: f32[8,24]
      param @proj.bias: f32[8]
      block 0 {
        q, k, v = split_heads(linear(x, @qkv.weight, @qkv.bias), heads=2)
        a = softmax(matmul(q, transpose(k)) * 0.5)
        x = x + merge_heads(matmul(a, v))
        h = gelu(linear(x, @fc.weight, @fc.bias))
        x = x + linear(h, @proj.weight, @proj.bias)
      }
      return x
    }
    """

  @Test func attentionAndEpiloguesFuse() throws {
    let graph = try GraphLoader.parse(block, file: "blk.graph")
    let fused = try FuseEpilogues.pass.apply(try FuseAttention.pass.apply(graph))
    let body = Printer.print(fused).split(separator: "\n").filter { $0.contains(" = ") }
    #expect(
      body == [
        "    linear: f32[n<=197,24] = linear(x, @qkv.weight, @qkv.bias)",
        "    merge_heads: f32[n<=197,8] = attention(linear, heads=2, scale=0.5)",
        "    x.1: f32[n<=197,8] = add(x, merge_heads)",
        "    h: f32[n<=197,24] = linear_gelu(x.1, @fc.weight, @fc.bias)",
        "    x.2: f32[n<=197,8] = linear_add(h, @proj.weight, @proj.bias, x.1)",
      ])
    // The fused graph is still a .graph: it parses back.
    _ = try GraphLoader.parse(Printer.print(fused), file: "fused.graph")
  }

  /// A pruning method reading the attention map keeps the primitive ops.
  @Test func attentionWithAnotherUseIsLeftAlone() throws {
    let source = block.replacingOccurrences(of: "return x\n", with: "return x + merge_heads(matmul(a, v))\n")
    let graph = try GraphLoader.parse(source, file: "blk.graph")
    let fused = try FuseAttention.pass.apply(graph)
    #expect(fused.ops.filter { $0.kind == .attention }.count == 0)
    #expect(fused.ops.count == graph.ops.count)
  }

  @Test(arguments: ["tiny.graph", "deit-s.graph"])
  func fusionKeepsTheFlopCount(file: String) throws {
    let graph = try GraphLoader.load(path: repositoryRoot.appendingPathComponent("samples/\(file)").path)
    let fused = try Pipeline.run(graph, through: .fusedEpilogues)
    #expect(fused.ops.filter { $0.kind == .attention }.count == 12)
    #expect(fused.ops.filter { $0.kind == .linearGelu }.count == 12)
    #expect(fused.ops.filter { $0.kind == .linearAdd }.count == 24)
    for convention in FlopConvention.allCases {
      #expect(FlopCounter.report(fused, convention: convention).totalMACs == FlopCounter.report(graph, convention: convention).totalMACs)
    }
  }

  @Test func interpretBeforeEqualsInterpretAfter() throws {
    let graph = try GraphLoader.load(path: repositoryRoot.appendingPathComponent("samples/tiny.graph").path)
    let weights = RandomWeights.generate(for: graph, seed: 4)
    var generator = SplitMix64(seed: 9, name: "input")
    let input = Tensor(shape: [3, 224, 224], scalars: (0..<(3 * 224 * 224)).map { _ in Float(generator.nextNormal()) })
    let before = try Interpreter(graph: graph, weights: weights).run([input])
    for stage in Stage.allCases.dropFirst() {
      let after = try Interpreter(graph: try Pipeline.run(graph, through: stage), weights: weights).run([input])
      // The fused kernels compose the same float steps, so the logits are bitwise equal.
      #expect(after == before, "stage \(stage)")
    }
  }

  /// LayerScale between a linear and its residual add folds with both into linear_scale_add,
  /// with the same float steps (bitwise equal logits) and the same FLOP count.
  @Test func layerScaleFoldsIntoTheResidualEpilogue() throws {
    let source = block
      .replacingOccurrences(of: "param @proj.bias: f32[8]", with: "param @proj.bias, @ls.gamma: f32[8]")
      .replacingOccurrences(of: "x = x + linear(h, @proj.weight, @proj.bias)", with: "x = channel_scale(linear(h, @proj.weight, @proj.bias), @ls.gamma) + x")
    let graph = try GraphLoader.parse(source, file: "blk.graph")
    let fused = try FuseEpilogues.pass.apply(try FuseAttention.pass.apply(graph))
    let body = Printer.print(fused).split(separator: "\n").filter { $0.contains(" = ") }
    #expect(body.last == "    x.2: f32[n<=197,8] = linear_scale_add(h, @proj.weight, @proj.bias, @ls.gamma, x.1)")
    #expect(!fused.ops.contains { $0.kind == .channelScale })
    _ = try GraphLoader.parse(Printer.print(fused), file: "fused.graph")
    for convention in FlopConvention.allCases {
      #expect(FlopCounter.report(fused, convention: convention).totalMACs == FlopCounter.report(graph, convention: convention).totalMACs)
    }
    let weights = RandomWeights.generate(for: graph, seed: 4)
    var generator = SplitMix64(seed: 9, name: "input")
    let input = Tensor(shape: [5, 8], scalars: (0..<40).map { _ in Float(generator.nextNormal()) })
    #expect(try Interpreter(graph: fused, weights: weights).run([input]) == (try Interpreter(graph: graph, weights: weights).run([input])))
  }
}
