import Foundation
import TestSupport
import Testing
import VitDriver
import VitFrontend
import VitIR
import VitInterpreter

/// Emitted C compiles and runs for every graph the front end accepts, not only classifiers:
/// a single linear layer (its C once failed to build: an unused scratch buffer under -Werror)
/// and outputs of rank 2 (main.c once sized its buffers by the last axis and overflowed them).
@Suite struct SmallGraphTests {
  static let graphs: [(name: String, text: String)] = [
    ("linear", "graph lin(x: f32[4,6]) -> f32[4,3] {\n  param @w: f32[3,6]\n  param @b: f32[3]\n  return linear(x, @w, @b)\n}\n"),
    ("softmax", "graph sm(x: f32[5,7]) -> f32[5,7] {\n  return softmax(x * 3.0)\n}\n"),
    ("norm-gelu", "graph ng(x: f32[3,8]) -> f32[3,8] {\n  param @g, @b: f32[8]\n  return gelu(layernorm(x, @g, @b, eps=1e-5))\n}\n"),
  ]

  @Test(arguments: graphs.map(\.name))
  func buildsAndMatchesTheInterpreter(name: String) throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let path = scratch.appendingPathComponent("\(name).graph")
    try Self.graphs.first { $0.name == name }!.text.write(to: path, atomically: true, encoding: .utf8)
    let session = try CompileSession(graph: path.path, weights: .random(seed: 4))
    var options = BuildOptions()
    options.cache = ObjectCache(directory: testObjectCacheDirectory)
    let binary = scratch.appendingPathComponent("model")
    _ = try session.build(output: binary.path, options: options)

    let loaded = try session.model()
    let shape = loaded.graph.type(of: loaded.graph.inputs[0]).fixedShape!
    var generator = SplitMix64(seed: 9, name: "small-graph")
    let input = (0..<shape.reduce(1, *)).map { _ in Float(generator.nextNormal()) }
    let inputFile = scratch.appendingPathComponent("x.f32")
    try writeF32(input, to: inputFile)
    let outFile = scratch.appendingPathComponent("y.f32")
    let ran = try run(binary, ["--input", inputFile.path, "--out", outFile.path])
    try #require(ran.status == 0, "\(ran.output)")
    let reference = try session.interpret(loaded, input: Tensor(shape: shape, scalars: input)).logits
    if loaded.graph.parameters.isEmpty {
      // Compiled without weights, a graph that reads none needs no --weights either.
      let unweighted = scratch.appendingPathComponent("unweighted")
      _ = try CompileSession(graph: path.path, weights: .none).build(output: unweighted.path, options: options)
      let same = scratch.appendingPathComponent("same.f32")
      let ranAgain = try run(unweighted, ["--input", inputFile.path, "--out", same.path])
      #expect(ranAgain.status == 0, "\(ranAgain.output)")
      #expect(try readF32(same) == (try readF32(outFile)))
    }
    let compiled = try readF32(outFile)
    #expect(compiled.count == reference.count)
    let worst = zip(compiled, reference).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst <= 1e-5 * max(1, reference.map { abs($0) }.max()!), "max |Δ| \(worst)")
  }
}
