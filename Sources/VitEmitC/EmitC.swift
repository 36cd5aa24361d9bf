import VitIR
import VitPasses

/// The GEMM the model's linears run on.
public enum GEMMBackend: String, Sendable, CaseIterable {
  /// The runtime's own microkernels (AVX-512, AVX2+FMA, NEON or scalar) on weights packed at
  /// compile time.
  case builtin
  /// cblas_sgemm from OpenBLAS (-DVIT_BLAS_OPENBLAS, -lopenblas) on weights as stored.
  case openblas
}

/// The files of one compiled model, by file name.
public struct EmittedModel: Sendable {
  /// C identifier of the model (`tiny_vit`): the prefix of every public symbol.
  public var name: String
  /// File name → contents.
  public var files: [String: [UInt8]]
  /// Arena size in bytes, for `vitc compile`'s report.
  public var arenaBytes: Int
  /// All the writable static memory of the model object (the header's
  /// `VIT_<MODEL>_STATIC_BYTES` for a threaded build): arena, scratch, integer maps, profiling.
  public var staticBytes = 0
  /// Weights blob size in bytes.
  public var weightBytes: Int
  /// How the weights reach the binary.
  public var embedding: WeightsEmbedding = .incbin
  /// Whether the binary reads its weights from a file at run time (`WeightsEmbedding.file`).
  public var weightsAtRuntime: Bool { embedding == .file }
  /// Whether the binary loads the user's weights at run time (`WeightsEmbedding.load`).
  public var loadsWeights: Bool { embedding == .load }
  /// Weights built into the binary (0 when it reads or loads them at run time), in bytes.
  public var embeddedWeightBytes: Int { embedding == .incbin || embedding == .hex ? weightBytes : 0 }
}

/// Emits specialized C for a fused, planned graph: one function per stage (stem, each block,
/// head), literal sizes, kernels from Runtime/, one static arena, no malloc, no stdio.
public enum EmitC {
  /// What goes into the provenance header (deterministic: no time, no absolute path).
  public struct Provenance: Sendable {
    public var version: String
    public var graphFile: String
    public var weights: String
    public var schedule: String

    public init(version: String, graphFile: String, weights: String, schedule: String) {
      self.version = version
      self.graphFile = graphFile
      self.weights = weights
      self.schedule = schedule
    }
  }

  /// Every file of the model, named after `stem` (`model` → `model.c`, `model.h`, the weights
  /// as `model_weights.*`, and `model_main.c`, the glue Runtime/main/main.c runs it through),
  /// with their final `#include` and `.incbin` text. C symbols are named after the graph.
  /// `labels` are the class names built into the driver, if known.
  public static func emit(
    _ graph: Graph, weights: [String: Tensor], provenance: Provenance, stem: String, labels: [String]? = nil,
    embedding: WeightsEmbedding = .incbin, gemm: GEMMBackend = .builtin
  ) throws(EmitError) -> EmittedModel {
    precondition(embedding != .load, "a model that loads its weights is emitted by emitLoadingWeights")
    let blob = try WeightBlob.build(graph, weights: weights, packGEMMWeights: gemm == .builtin)
    return try emit(graph, blob: blob, provenance: provenance, stem: stem, labels: labels, embedding: embedding)
  }

  /// Every file of a model compiled without its weights: the binary loads them at run time from
  /// the user's safetensors file (`--weights FILE`), into the layout `gemm` reads, with the
  /// checks and arithmetic vitc uses (WeightsEmbedding.load). With `thresholdsFromWeights`,
  /// AS-ViT's keep thresholds are read from the file too (the schedule's are placeholders).
  public static func emitLoadingWeights(
    _ graph: Graph, provenance: Provenance, stem: String, labels: [String]? = nil, gemm: GEMMBackend = .builtin,
    thresholdsFromWeights: Bool = false
  ) throws(EmitError) -> EmittedModel {
    let blob = WeightBlob.layout(graph, packGEMMWeights: gemm == .builtin)
    // A graph that reads no tensor has nothing to load (and C has no empty arrays).
    let nothingToLoad = graph.parameters.isEmpty && !thresholdsFromWeights
    return try emit(
      graph, blob: nothingToLoad ? try WeightBlob.build(graph, weights: [:]) : blob, provenance: provenance, stem: stem,
      labels: labels, embedding: nothingToLoad ? .incbin : .load, thresholdsFromWeights: thresholdsFromWeights)
  }

  private static func emit(
    _ graph: Graph, blob: WeightBlob, provenance: Provenance, stem: String, labels: [String]?,
    embedding: WeightsEmbedding, thresholdsFromWeights: Bool = false
  ) throws(EmitError) -> EmittedModel {
    precondition(!stem.isEmpty && !stem.contains("/"), "a file stem, not a path: '\(stem)'")
    if embedding == .hex, blob.entries.values.contains(where: \.quantized) { throw .hexNeedsFloatWeights }
    let plan = PlanMemory.plan(graph)
    var emitter = ModelEmitter(
      graph: graph, blob: blob, plan: plan, provenance: provenance, stem: stem, loadsWeights: embedding == .load,
      thresholdsFromWeights: thresholdsFromWeights)
    let source = try emitter.modelSource(embedding: embedding)
    let header = emitter.headerSource(embedding: embedding)
    var files: [String: [UInt8]] = [
      "\(stem).c": Array(source.utf8),
      "\(stem).h": Array(header.utf8),
      "\(stem)_main.c": Array(emitter.driverSource(labels: labels, embedding: embedding).utf8),
    ]
    switch embedding {
    case .incbin:
      files["\(stem)_weights.bin"] = blob.bytes
      files["\(stem)_weights.S"] = Array(emitter.incbinSource().utf8)
    case .hex:
      files["\(stem)_weights.c"] = Array(emitter.hexWeightsSource().utf8)
    case .file:
      files["\(stem)_weights.bin"] = WeightsFile.bytes(blob, model: emitter.model)
    case .load:
      break
    }
    var emitted = EmittedModel(name: emitter.model, files: files, arenaBytes: plan.arenaFloats * 4, weightBytes: blob.size)
    emitted.embedding = embedding
    emitted.staticBytes = emitter.staticMemory.bytes(threads: StaticMemory.threadBounds.threaded) + emitter.loadedWeightsBytes
    return emitted
  }

  /// Whether a file of a compiled model's folder goes on the C compiler's command line: `.c`
  /// and `.S` files, except the shared driver body `main.c`, which each model's
  /// `<stem>_main.c` includes.
  public static func isCompiledSource(_ file: String) -> Bool {
    (file.hasSuffix(".c") || file.hasSuffix(".S")) && file != "main.c"
  }
}
