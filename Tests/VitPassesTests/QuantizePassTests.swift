import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR
import VitInterpreter

@testable import VitPasses

/// The Quantize pass: which linears become int8, the text form, and what the interpreter makes
/// of them (Int8Quantization's arithmetic).
@Suite struct QuantizePassTests {
  func tiny(_ spec: String = "none", precision: Precision) throws -> Graph {
    let parsed = try GraphLoader.load(path: repositoryPath("samples/tiny.graph"))
    let schedule = try ScheduleParser.parse(spec, depth: parsed.blocks.count)
    return try Pipeline.run(parsed, through: .quantized, schedule: schedule, precision: precision)
  }

  /// Dense: qkv, proj, fc1 and fc2 of every block become int8; the patch embedding and the
  /// head stay f32. f32 leaves the graph as it was.
  @Test func denseBlocksLinearsBecomeInt8() throws {
    let graph = try tiny(precision: .int8)
    let int8 = graph.ops.filter { $0.attributes.precision == .int8 }
    #expect(int8.count == 4 * graph.blocks.count)
    #expect(int8.allSatisfy { $0.kind.isLinear && $0.block != nil })
    let weights = Set(int8.map { graph[$0.operands[1]].name })
    for block in graph.blocks {
      for name in ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"] {
        #expect(weights.contains("blocks.\(block).\(name).weight"))
      }
    }
    #expect(graph.ops.filter { $0.kind.isLinear && $0.block == nil }.allSatisfy { $0.attributes.precision == .f32 })
    let f32 = try tiny(precision: .f32)
    let parsed = try GraphLoader.load(path: repositoryPath("samples/tiny.graph"))
    #expect(Printer.print(f32) == Printer.print(try Pipeline.run(parsed, through: .fusedEpilogues)))
    #expect(!f32.ops.contains { $0.attributes.precision != .f32 })
  }

  /// bf16 converts the same ops as int8.
  @Test func bf16ConvertsTheSameLinears() throws {
    let int8 = try tiny("dyvit:0.7", precision: .int8), bf16 = try tiny("dyvit:0.7", precision: .bf16)
    #expect(int8.ops.map { $0.attributes.precision == .int8 } == bf16.ops.map { $0.attributes.precision == .bf16 })
    #expect(Printer.print(bf16).contains("precision=bf16"))
  }

  /// bf16 rounding by hand: to nearest, ties to even, NaN kept, overflow to infinity.
  @Test func bf16RoundingByHand() {
    #expect(BFloat16.bits(1) == 0x3f80)
    #expect(BFloat16.bits(Float(bitPattern: 0x3f80_8000)) == 0x3f80)  // a tie, to the even 0x3f80
    #expect(BFloat16.bits(Float(bitPattern: 0x3f81_8000)) == 0x3f82)  // a tie, to the even 0x3f82
    #expect(BFloat16.bits(Float(bitPattern: 0x3f80_8001)) == 0x3f81)  // above the tie
    #expect(BFloat16.round(.nan).isNaN && BFloat16.round(-.infinity) == -.infinity)
    #expect(BFloat16.round(.greatestFiniteMagnitude) == .infinity)
    #expect(BFloat16.round(-0.0).sign == .minus)
  }

  /// DynamicViT's predictor MLP selects tokens: it stays f32, the blocks' linears do not.
  @Test func tokenSelectionStaysF32() throws {
    let graph = try tiny("dyvit:0.7", precision: .int8)
    let predictor = graph.ops.filter { $0.kind.isLinear && graph[$0.operands[1]].name.hasPrefix("score_predictor.") }
    #expect(!predictor.isEmpty)
    #expect(predictor.allSatisfy { $0.attributes.precision == .f32 })
    #expect(graph.ops.filter { $0.attributes.precision == .int8 }.count == 4 * graph.blocks.count)
  }

  /// A weight that an f32 op also reads (tied to the head here) is stored once, as floats: the
  /// linear reading it stays f32, the others of its block do not.
  @Test func tiedWeightStaysF32() throws {
    let source = """
      graph g(x: f32[4,8]) -> f32[4,8] {
        param @w, @v: f32[8,8]
        block 0 {
          h = linear(x, @w)
          h = linear(h, @v)
        }
        return linear(h, @w)
      }
      """
    let graph = try Pipeline.run(try GraphLoader.parse(source, file: "g.graph"), through: .quantized, precision: .int8)
    let linears = graph.ops.filter { $0.kind == .linear }
    #expect(linears.map(\.attributes.precision) == [.f32, .int8, .f32])
  }

  /// The dump is a .graph: `precision=int8` reads back as the same ops.
  @Test func dumpReadsBack() throws {
    let graph = try tiny("dyvit:0.7", precision: .int8)
    let text = Printer.print(graph)
    #expect(text.contains("precision=int8"))
    let reread = try GraphLoader.parse(text, file: "quantized.graph")
    #expect(reread.ops.map(\.attributes) == graph.ops.map(\.attributes))
  }

  @Test func badPrecisionIsRefusedWithItsPlace() throws {
    let source = """
      graph g(x: f32[4,8]) -> f32[4,2] {
        param @w: f32[2,8]
        return linear(x, @w, precision=int9)
      }
      """
    #expect { try GraphLoader.parse(source, file: "g.graph") } throws: { error in
      "\(error)".contains("g.graph:3:") && "\(error)".contains("precision") && "\(error)".contains("f32, bf16, int8")
    }
    let onAdd = source.replacingOccurrences(of: "linear(x, @w, precision=int9)", with: "add(x, x, precision=int8)")
    #expect { try GraphLoader.parse(onAdd, file: "g.graph") } throws: { "\($0)".contains("precision") }
  }

  /// One product worked by hand: x = [1, −0.5], W = [[0.25, 1]], b = 0.125.
  /// x: amax 1, q = [127, rint(−63.5) = −64], scale 1/127; W: q = [rint(31.75) = 32, 127],
  /// scale 1/127; acc = 127·32 − 64·127 = −4064; y = −4064·(1/127·1/127) + 0.125.
  @Test func int8ProductByHand() throws {
    let (qx, sx) = Int8Quantization.quantize([1, -0.5] as [Float])
    #expect(qx == [127, -64])
    let (qw, sw) = Int8Quantization.quantize([0.25, 1] as [Float])
    #expect(qw == [32, 127])
    #expect(sx == 1 / Float(127) && sw == 1 / Float(127))
    let acc = qx.withUnsafeBufferPointer { a in qw.withUnsafeBufferPointer { Int8Quantization.dot(a, $0) } }
    #expect(acc == -4064)
    let scale = sx * sw
    let expected = Float(-4064) * scale + 0.125
    #expect(Int8Quantization.dequantize(acc, rowScale: sx, columnScale: sw, bias: 0.125) == expected)
    // A zero row, and a row holding a NaN.
    #expect(Int8Quantization.quantize([0, 0, 0] as [Float]) == ([0, 0, 0], 0))
    #expect(Int8Quantization.quantize([1, .nan] as [Float]).scale.isNaN)
    // A row so small that 127/amax is +inf: the nonzero values clamp, zero (0·inf = NaN) is 0.
    let tiny = Int8Quantization.quantize([1e-38, 0, -2e-38] as [Float])
    #expect(tiny.q == [127, 0, -127] && tiny.scale == Float(2e-38) / 127)
  }

  /// The int8 graph computes what the f32 one does, within what quantizing both operands can
  /// move a dot product: per linear, |Δy| ≤ Σ_k (|x|·sw/2 + |w|·sx/2 + sx·sw/4); through the
  /// twelve blocks of tiny that compounds, so the check is on the logits' relative error, far
  /// from 0 (they differ) and far below 1 (they agree).
  @Test func int8InterpreterStaysCloseToF32() throws {
    let f32 = try tiny(precision: .f32)
    let int8 = try tiny(precision: .int8)
    let weights = RandomWeights.generate(for: f32, seed: 4)
    var generator = SplitMix64(seed: 9, name: "input")
    let input = Tensor(shape: [3, 224, 224], scalars: (0..<(3 * 224 * 224)).map { _ in Float(generator.nextNormal()) })
    let a = try Interpreter(graph: f32, weights: weights).run([input]).scalars
    let b = try Interpreter(graph: int8, weights: weights).run([input]).scalars
    let scale = a.map { abs($0) }.max()!
    let worst = zip(a, b).map { abs($0 - $1) }.max()!
    #expect(worst > 0, "int8 gave exactly the f32 logits: the pass did nothing")
    #expect(worst <= 0.05 * scale, "max |Δ| \(worst), max |logit| \(scale)")
  }
}
