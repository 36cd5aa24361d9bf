import Foundation
import TestSupport
import Testing
import VitIR

@testable import VitFrontend

func samplePath(_ name: String) -> String { repositoryPath("samples/\(name)") }

/// Parses `source` and returns the error message, or nil if it parsed.
func parseError(_ source: String) -> String? {
  do {
    _ = try GraphLoader.parse(source, file: "t.graph")
    return nil
  } catch {
    return error.description
  }
}

/// A small valid graph: one block with every op kind the samples use, width 8, 2 heads.
let smallGraph = """
  graph small(image: f32[3,8,8]) -> f32[5] {
    param @cls_token: f32[1,1,8]
    param @pos_embed: f32[1,5,8]
    param @pe.weight: f32[8,3,4,4]
    param @pe.bias: f32[8]
    x = concat(reshape(@cls_token, shape=[1,8]), patch_embed(image, @pe.weight, @pe.bias, patch=4))
    x = x + reshape(@pos_embed, shape=[5,8])
    block i in 0..<2 {
      param @b.{i}.ln.weight, @b.{i}.ln.bias: f32[8]
      param @b.{i}.qkv.weight: f32[24,8]
      param @b.{i}.qkv.bias: f32[24]
      h = layernorm(x, @b.{i}.ln.weight, @b.{i}.ln.bias, eps=1e-6)
      q, k, v = split_heads(linear(h, @b.{i}.qkv.weight, @b.{i}.qkv.bias), heads=2)
      a: f32[2,5,5] = softmax(matmul(q, transpose(k)) * 0.5)
      x = x + gelu(merge_heads(matmul(a, v)))
    }
    param @head.weight: f32[5,8]
    logits = linear(row(x, index=0), @head.weight)
    return logits
  }
  """

@Suite struct GraphParserTests {
  @Test func parsesTheSmallGraph() throws {
    let graph = try GraphLoader.parse(smallGraph, file: "small.graph")
    #expect(graph.name == "small")
    #expect(graph.blocks == [0, 1])
    #expect(graph.parameters.count == 4 + 2 * 4 + 1)
    #expect(graph.parameter(named: "b.1.qkv.weight") != nil)
    #expect(graph.type(of: graph.output!) == TensorType(fixed: [5]))
    // Ops inside the loop carry their block; the stem and head carry none.
    #expect(graph.ops.first!.block == nil)
    #expect(graph.ops.last!.block == nil)
    #expect(graph.ops.filter { $0.block == 1 }.count == graph.ops.filter { $0.block == 0 }.count)
    // A location points at the op in the source.
    let softmax = graph.ops.first { $0.kind == .softmax }!
    #expect(softmax.location == SourceLocation(file: "small.graph", line: 14, column: 21))
  }

  @Test(arguments: [
    ("tiny.graph", 726_824), ("deit-t.graph", 5_717_416), ("deit-s.graph", 22_050_664),
    ("deit-b.graph", 86_567_656),
  ])
  func samplesHaveTimmParameterCounts(file: String, parameters: Int) throws {
    let graph = try GraphLoader.load(path: samplePath(file))
    #expect(graph.parameterCount == parameters)
    #expect(graph.blocks == Array(0..<12))
    #expect(graph.parameter(named: "blocks.11.mlp.fc2.bias") != nil)
    #expect(graph.parameter(named: "pos_embed").map { graph.type(of: $0).rank } == 3)
  }

  /// `vitc dump --stage parsed` output parses back to the same graph, and prints the same.
  @Test(arguments: ["tiny.graph", "deit-s.graph", "deit-b.graph", "fashion.graph"])
  func printedIRRoundTrips(file: String) throws {
    let graph = try GraphLoader.load(path: samplePath(file))
    let printed = Printer.print(graph, header: "round trip")
    let reparsed = try GraphLoader.parse(printed, file: "dump.graph")
    #expect(Printer.print(reparsed, header: "round trip") == printed)
    #expect(reparsed.imageTransform == graph.imageTransform)
    #expect(reparsed.ops.map(\.kind) == graph.ops.map(\.kind))
    #expect(reparsed.ops.map(\.block) == graph.ops.map(\.block))
    #expect(reparsed.ops.map(\.attributes) == graph.ops.map(\.attributes))
    // Roles are not printed: the reader marks the pruning kinds.
    #expect(reparsed.ops.map(\.role) == graph.ops.map { $0.kind.isTokenPruning ? .pruningSelection : nil })
    let results = { (g: Graph) in g.ops.flatMap(\.results).map { "\(g[$0].name): \(g[$0].type)" } }
    #expect(results(reparsed) == results(graph))
    #expect(reparsed.parameters.map { reparsed[$0] } == graph.parameters.map { graph[$0] }.map {
      var value = $0
      value.location = reparsed[reparsed.parameter(named: $0.name)!].location
      return value
    })
  }

  @Test func dynamicTokenDimensionsParseAndPropagate() throws {
    let source = """
      graph blk(x: f32[n<=197,8]) -> f32[n<=197,8] {
        param @qkv.weight: f32[24,8]
        block 4 {
          q, k, v = split_heads(linear(x, @qkv.weight), heads=2)
          a: f32[2,n<=197,n<=197] = softmax(matmul(q, transpose(k)) * 0.5)
          y = x + merge_heads(matmul(a, v))
        }
        return y
      }
      """
    let graph = try GraphLoader.parse(source, file: "blk.graph")
    #expect(graph.blocks == [4])
    #expect(graph.type(of: graph.output!).dims == [.dynamic(symbol: .named("n"), bound: 197), .fixed(8)])
    // The dump keeps the dynamic dims and parses back.
    let printed = Printer.print(graph)
    #expect(printed.contains("f32[2,n<=197,n<=197]"))
    #expect(Printer.print(try GraphLoader.parse(printed, file: "d.graph")) == printed)
  }

  // MARK: - bad input: one line, file:line:col, what was found and what was expected

  @Test func syntaxErrorNamesThePlace() {
    let message = parseError("graph g(x: f32[4]) -> f32[4] {\n  y = gelu(x\n  return y\n}\n")
    #expect(message == "t.graph:3:3: error: expected ',' or ')' between the arguments of 'gelu', found 'return'")
  }

  @Test func unknownOpSuggestsTheNearestOne() {
    let message = parseError("graph g(x: f32[4]) -> f32[4] {\n  y = gleu(x)\n  return y\n}\n")
    #expect(message?.hasPrefix("t.graph:2:7: error: unknown op 'gleu'; did you mean 'gelu'?") == true)
  }

  @Test func linearWithTheWrongWeightWidthIsAShapeError() {
    let source = """
      graph g(x: f32[197,384]) -> f32[197,1152] {
        param @qkv.weight: f32[1152,383]
        y = linear(x, @qkv.weight)
        return y
      }
      """
    #expect(
      parseError(source)
        == "t.graph:3:7: error: 'linear' operand 'weight' has type f32[1152,383], expected f32[out,384], as 'x' has width 384"
    )
  }

  @Test(arguments: [
    // (source body, expected message)
    ("  y = gelu(z)\n  return y", "t.graph:2:12: error: 'z' is used before it is assigned"),
    (
      "  y = linear(x, @w)\n  return y",
      "t.graph:2:17: error: parameter '@w' is not declared (add 'param @w: f32[...]')"
    ),
    (
      "  param @a.{j}: f32[4]\n  return x",
      "t.graph:2:9: error: '{j}' in '@a.{j}' names no enclosing block variable"
    ),
    ("  y = gelu(x)", "t.graph:3:1: error: the graph has no 'return' statement"),
    ("  return x\n  y = gelu(x)", "t.graph:2:3: error: 'return' must be the last statement of the graph"),
    (
      "  param @p: f32[4]\n  param @p: f32[4]\n  return x",
      "t.graph:3:9: error: parameter '@p' is declared twice (first declared at t.graph:2:9)"
    ),
    (
      "  y: f32[5] = gelu(x)\n  return y",
      "t.graph:2:3: error: 'y' is declared as f32[5] but its value has type f32[4]"
    ),
    ("  y = gelu(x, eps=1)\n  return y", "t.graph:2:7: error: 'gelu' has no attribute 'eps' (it takes none)"),
    ("  y = layernorm(x)\n  return y", "t.graph:2:7: error: 'layernorm' takes 3 operands (x, weight, bias), found 1"),
    ("  y = x * x\n  return y", "t.graph:2:11: error: expected a number after '*' (only scaling by a constant is written with '*'), found 'x'"),
    ("  y = row(x, index=9)\n  return y", "t.graph:2:7: error: 'row' operand 'x' has type f32[4], expected a rank-2 tensor"),
    ("  block 2 {\n    block 3 {\n    }\n  }\n  return x", "t.graph:3:5: error: a block cannot contain another block"),
    ("  y = gelu(x) $\n  return y", "t.graph:2:15: error: unexpected character '$'"),
    ("  return gelu(reshape(x, shape=[2,2]))", "t.graph:2:3: error: the graph returns f32[2,2], but its signature declares f32[4]"),
  ])
  func badGraphsGetOneClearLine(body: String, expected: String) {
    let message = parseError("graph g(x: f32[4]) -> f32[4] {\n\(body)\n}\n")
    #expect(message == expected)
    #expect(message?.contains("\n") == false)
  }

  /// `preprocess` sets the image transform; a graph without one gets DeiT's; the printer
  /// writes it only when it is not DeiT's.
  @Test func preprocessSetsTheImageTransform() throws {
    let fashion = try GraphLoader.load(path: samplePath("fashion.graph"))
    #expect(fashion.imageTransform == ImageTransform(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], cropFraction: 1))
    #expect(Printer.print(fashion).contains("\n  preprocess mean=0.5, std=0.5, crop_pct=1.0\n"))
    let deit = try GraphLoader.load(path: samplePath("deit-s.graph"))
    #expect(deit.imageTransform == .deit)
    #expect(!Printer.print(deit).contains("preprocess"))
    let source = "graph g(x: f32[4]) -> f32[4] {\n  preprocess std=[0.25,0.5,1], crop_pct=0.9\n  return x\n}\n"
    let graph = try GraphLoader.parse(source, file: "t.graph")
    #expect(graph.imageTransform == ImageTransform(mean: ImageTransform.deit.mean, std: [0.25, 0.5, 1], cropFraction: 0.9))
    #expect(graph.imageTransform.statement == "preprocess mean=[0.485,0.456,0.406], std=[0.25,0.5,1.0], crop_pct=0.9")
    // Every pass keeps it.
    var rewriter = GraphRewriter(fashion)
    for op in fashion.ops { try rewriter.copy(op) }
    #expect(rewriter.result.imageTransform == fashion.imageTransform)
  }

  @Test(arguments: [
    ("  preprocess mean=0.5, gamma=2\n  return x", "t.graph:2:24: error: unknown preprocessing setting 'gamma' (settings: mean, std, crop_pct)"),
    ("  preprocess crop_pct=0\n  return x", "t.graph:2:23: error: crop_pct must be one number in [0.25, 1] (the resize is then at most 4× the crop), found [\"0.0\"]"),
    ("  preprocess std=[0.5,0.5,0]\n  return x", "t.graph:2:18: error: std must be positive and finite as float32, found 0.0"),
    ("  preprocess mean=[0.5,0.5]\n  return x", "t.graph:2:19: error: mean takes one number or three (R, G, B), found 2"),
    ("  preprocess mean=0.5, mean=0.4\n  return x", "t.graph:2:24: error: attribute 'mean' is given twice"),
    ("  y = gelu(x)\n  preprocess mean=0.5\n  return y", "t.graph:3:3: error: 'preprocess' must be the first statement of the graph's body"),
    ("  preprocess mean=x\n  return x", "t.graph:2:19: error: expected a number or a list of three after 'mean=', found 'x'"),
  ])
  func badPreprocessGetsOneClearLine(body: String, expected: String) {
    #expect(parseError("graph g(x: f32[4]) -> f32[4] {\n\(body)\n}\n") == expected)
  }

  @Test func missingFileIsAnError() {
    #expect(throws: GraphError.unreadable(path: "no/such.graph", reason: "no such file")) {
      try GraphLoader.load(path: "no/such.graph")
    }
  }
}
