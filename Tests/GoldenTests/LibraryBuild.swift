import Foundation
import VitIR
import TestSupport
import VitDriver
import VitEmitC

/// Builds a model's binary through the compile session (the library `vitc build` calls), with
/// this test run's object cache: the runtime is compiled once per configuration, not per test.
func buildBinary(
  graph: String, weights: WeightsSource = .random(seed: 1), prune: String = "none", compiler: String? = nil,
  embedding: WeightsEmbedding = .incbin, gemm: GEMMBackend = .builtin, precision: Precision = .f32, output: URL
) throws -> BuildReport {
  var options = BuildOptions()
  options.compiler = compiler
  options.cache = ObjectCache(directory: testObjectCacheDirectory)
  var emit = EmitOptions()
  emit.embedding = embedding
  emit.gemm = gemm
  var session = try CompileSession(graph: graph, weights: weights, prune: prune)
  session.precision = precision
  return try session.build(output: output.path, options: options, emit: emit)
}
