import Foundation
import VitIR
import VitPasses

/// How the weights blob reaches the binary.
public enum WeightsEmbedding: String, Sendable, CaseIterable {
  /// `<model>_weights.bin` pulled in by `.incbin` from `<model>_weights.S` (any size, fast).
  case incbin
  /// `<model>_weights.c`, a hex-float array: exact, diffable, for tiny models only.
  case hex
  /// Not in the binary: `<model>_weights.bin` is a vitc weights file (docs/weights-file.md)
  /// that the binary maps at run time (`--weights FILE`), for boards that keep models on
  /// storage.
  case file
}

/// The vitc weights file: a 64-byte header, then the blob (docs/weights-file.md).
public enum WeightsFile {
  public static let magic: [UInt8] = Array("VITCWTS".utf8) + [0]
  public static let version: UInt32 = 1
  public static let headerBytes = 64

  /// The file for `blob` of model `name` (a C identifier of at most 31 bytes).
  static func bytes(_ blob: WeightBlob, model name: String) -> [UInt8] {
    var header = magic
    func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { header += $0 } }
    append(version)
    append(UInt32(headerBytes))
    append(UInt64(blob.bytes.count))
    append(blob.hash)
    let nameBytes = Array(name.utf8.prefix(31))
    header += nameBytes + [UInt8](repeating: 0, count: 32 - nameBytes.count)
    precondition(header.count == headerBytes)
    return header + blob.bytes
  }
}

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
  /// Weights blob size in bytes.
  public var weightBytes: Int
  /// Whether the binary reads its weights from a file at run time (`WeightsEmbedding.file`).
  public var weightsAtRuntime = false
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
    precondition(!stem.isEmpty && !stem.contains("/"), "a file stem, not a path: '\(stem)'")
    let blob = try WeightBlob.build(graph, weights: weights, packGEMMWeights: gemm == .builtin)
    let plan = PlanMemory.plan(graph)
    var emitter = ModelEmitter(graph: graph, blob: blob, plan: plan, provenance: provenance, stem: stem)
    let source = try emitter.modelSource(embedding: embedding)
    let header = emitter.headerSource(weightsAtRuntime: embedding == .file)
    var files: [String: [UInt8]] = [
      "\(stem).c": Array(source.utf8),
      "\(stem).h": Array(header.utf8),
      "\(stem)_main.c": Array(emitter.driverSource(labels: labels, weightsAtRuntime: embedding == .file).utf8),
    ]
    switch embedding {
    case .incbin:
      files["\(stem)_weights.bin"] = blob.bytes
      files["\(stem)_weights.S"] = Array(emitter.incbinSource().utf8)
    case .hex:
      files["\(stem)_weights.c"] = Array(emitter.hexWeightsSource().utf8)
    case .file:
      files["\(stem)_weights.bin"] = WeightsFile.bytes(blob, model: emitter.model)
    }
    var emitted = EmittedModel(name: emitter.model, files: files, arenaBytes: plan.arenaFloats * 4, weightBytes: blob.bytes.count)
    emitted.weightsAtRuntime = embedding == .file
    return emitted
  }

  /// Whether a file of a compiled model's folder goes on the C compiler's command line: `.c`
  /// and `.S` files, except the shared driver body `main.c`, which each model's
  /// `<stem>_main.c` includes.
  public static func isCompiledSource(_ file: String) -> Bool {
    (file.hasSuffix(".c") || file.hasSuffix(".S")) && file != "main.c"
  }
}

struct ModelEmitter {
  let graph: Graph
  let blob: WeightBlob
  let plan: MemoryPlan
  let provenance: EmitC.Provenance
  /// The file stem every file is named after (`model` → `model.c`, `model_weights.S`).
  let stem: String
  let model: String
  var naming = Naming()
  /// C expressions for the floats of scratch each op needs (im2col of the patch embedding,
  /// the attention kernel's packed keys, values and score tiles); the buffer holds the largest.
  var scratchNeeds: [String] = []
  /// The same for the integer scratch of the pruning kernels.
  var intScratchNeeds: [String] = []
  /// Trace stages emitted so far (the index of the next `trace_stage`).
  var traceStages = 0
  /// The largest token count an attention with ToMe's sizes runs on (0: none).
  var keyBiasFloats = 0
  /// The run-time token counts (`vit_k{s}`) that `threshold_keep` ops set.
  var dynamicCounts: [String] = []

  init(graph: Graph, blob: WeightBlob, plan: MemoryPlan, provenance: EmitC.Provenance, stem: String) {
    self.graph = graph
    self.blob = blob
    self.plan = plan
    self.provenance = provenance
    self.stem = stem
    self.model = Naming.identifier(graph.name)
  }

  var upper: String { model.uppercased() }

  /// The model's stage functions: runs of ops with the same block (the stem and the head have
  /// none). A pruning method's scoring and selection ops get stages of their own (`_prune`),
  /// so that --bench's per-stage times show what they cost.
  func stageGroups() -> [(name: String, ops: [Op])] {
    let selection = Self.selectionOps(graph)
    var stages: [(name: String, ops: [Op])] = []
    var seenBlock = false
    for (index, op) in graph.ops.enumerated() {
      var name: String
      if let block = op.block {
        name = String(format: "block%02d", block)
        seenBlock = true
      } else {
        name = seenBlock ? "head" : "stem"
      }
      if selection.contains(index) { name += "_prune" }
      if stages.last?.name == name { stages[stages.count - 1].ops.append(op) } else { stages.append((name, [op])) }
    }
    return stages
  }

  /// Patches of the owner maps (the pruning ops' `patches`).
  var patchCount: Int {
    graph.ops.first { $0.kind == .patchOwner }.map { $0.int("patches") } ?? 0
  }

  func provenanceLines(_ what: String) -> [String] {
    [
      "\(what) for model '\(graph.name)'. Generated by vitc \(provenance.version); do not edit.",
      "graph:    \(provenance.graphFile)",
      "weights:  \(provenance.weights) (blob fnv1a64 \(String(format: "%016llx", blob.hash)), \(blob.bytes.count) bytes)",
      "schedule: \(provenance.schedule)",
    ]
  }

  var inputShape: [Int] { graph.type(of: graph.inputs[0]).fixedShape ?? [] }
  var classes: Int { graph.outputType.dims.last?.bound ?? 0 }
  var patches: Int {
    graph.ops.first { $0.kind == .patchEmbed }.map { graph.type(of: $0.results[0]).dims[0].bound } ?? 0
  }

  func headerSource(weightsAtRuntime: Bool = false) -> String {
    var w = CWriter()
    w.comment(provenanceLines("Public interface"))
    w.line("#ifndef VIT_\(upper)_H")
    w.line("#define VIT_\(upper)_H")
    w.line()
    w.line("#include <stddef.h>")
    w.line("#include <stdint.h>")
    w.line()
    w.line("#define VIT_\(upper)_INPUT_FLOATS \(inputShape.reduce(1, *)) /* input f32\(formatShape(inputShape)), normalized */")
    w.line("#define VIT_\(upper)_INPUT_CHANNELS \(inputShape.first ?? 0)")
    w.line("#define VIT_\(upper)_INPUT_SIZE \(inputShape.last ?? 0)")
    w.line("#define VIT_\(upper)_CLASSES \(classes)")
    w.line("#define VIT_\(upper)_PATCHES \(patches)")
    w.line("#define VIT_\(upper)_ARENA_BYTES \(plan.arenaFloats * 4)")
    w.line("#define VIT_\(upper)_WEIGHT_BYTES \(blob.bytes.count)")
    let stages = graph.ops.filter { $0.kind == .traceStage }.count
    w.line("#define VIT_\(upper)_MAX_STAGES \(max(stages, 1)) /* pruning stages: \(stages) (the array needs at least 1) */")
    w.line()
    w.comment([
      "What the model did with its tokens (docs/trace-format.md). Stage s keeps",
      "tokens[s] tokens (cls included); non-cls token t stands for the patch ids",
      "members[s][first[s][t] .. first[s][t+1]).",
    ])
    w.block("struct vit_\(model)_trace", closing: "};") { w in
      w.line("int n_stages;")
      w.line("int block[VIT_\(upper)_MAX_STAGES];")
      w.line("int tokens[VIT_\(upper)_MAX_STAGES];")
      w.line("int16_t first[VIT_\(upper)_MAX_STAGES][VIT_\(upper)_PATCHES + 1];")
      w.line("int16_t members[VIT_\(upper)_MAX_STAGES][VIT_\(upper)_PATCHES];")
    }
    w.line()
    w.comment([
      "Runs the model on one normalized input f32\(formatShape(inputShape)) and writes",
      "\(classes) logits. trace may be NULL. Not reentrant: one static arena. Returns 0.",
    ])
    w.line("int vit_\(model)_run(const float *input, float *logits, struct vit_\(model)_trace *trace);")
    w.line()
    w.comment([
      "Multiply-adds of the run that filled trace, in fvcore's convention (SEMANTICS.md §7, what",
      "`vitc flops` prints first); the same for every run unless a method keeps a number of",
      "tokens that depends on the image (AS-ViT).",
    ])
    w.line("long long vit_\(model)_macs(const struct vit_\(model)_trace *trace);")
    w.line()
    if weightsAtRuntime {
      w.comment([
        "The weights are not in the binary: bind a vitc weights file first (docs/weights-file.md).",
        "file is the whole file in memory (mapped), 64-byte aligned; returns VIT_WEIGHTS_OK or the",
        "reason the file is refused. vit_\(model)_run returns -1 until weights are bound.",
      ])
      w.line("#define VIT_\(upper)_WEIGHTS_AT_RUNTIME 1")
      w.line("enum vit_\(model)_weights_status {")
      w.line("  VIT_\(upper)_WEIGHTS_OK = 0,")
      w.line("  VIT_\(upper)_WEIGHTS_NOT_VITC,    /* no vitc weights header */")
      w.line("  VIT_\(upper)_WEIGHTS_VERSION,     /* a format version this binary does not read */")
      w.line("  VIT_\(upper)_WEIGHTS_OTHER_MODEL, /* the header names another model */")
      w.line("  VIT_\(upper)_WEIGHTS_TRUNCATED,   /* shorter than its header says */")
      w.line("  VIT_\(upper)_WEIGHTS_SIZE,        /* a blob of another size than this model's */")
      w.line("  VIT_\(upper)_WEIGHTS_CORRUPT,     /* the blob's checksum differs from the header's */")
      w.line("  VIT_\(upper)_WEIGHTS_MISMATCH,    /* intact, but not the weights this binary was built with */")
      w.line("  VIT_\(upper)_WEIGHTS_ALIGNMENT    /* the blob is not 64-byte aligned in memory */")
      w.line("};")
      w.line("int vit_\(model)_bind_weights(const void *file, size_t bytes);")
      w.line()
    }
    w.comment([
      "Profiling: while vit_\(model)_profile is non-zero, each run adds the wall time of every",
      "stage function to vit_\(model)_stage_seconds (names in vit_\(model)_stage_names).",
    ])
    w.line("#define VIT_\(upper)_N_STAGE_FUNCTIONS \(stageGroups().count)")
    w.line("extern int vit_\(model)_profile;")
    w.line("extern double vit_\(model)_stage_seconds[VIT_\(upper)_N_STAGE_FUNCTIONS];")
    w.line("extern const char *const vit_\(model)_stage_names[VIT_\(upper)_N_STAGE_FUNCTIONS];")
    w.line()
    w.line("#endif")
    return w.text
  }

  func incbinSource() -> String {
    """
    /* Weights blob for model '\(graph.name)', \(blob.bytes.count) bytes. Generated by vitc; do not edit.
       Assemble with -Wa,-I<this directory> so that .incbin finds the .bin file. */
        .section .rodata
        .balign \(WeightBlob.alignment)
        .globl vit_\(model)_weights
        .type vit_\(model)_weights, %object
    vit_\(model)_weights:
        .incbin "\(stem)_weights.bin"
        .size vit_\(model)_weights, . - vit_\(model)_weights
        .section .note.GNU-stack,"",%progbits

    """
  }

  func hexWeightsSource() -> String {
    var w = CWriter()
    w.comment(provenanceLines("Weights blob as hex floats"))
    w.line()
    w.line("#include <stdint.h>")
    w.line()
    w.line("_Alignas(\(WeightBlob.alignment)) const float vit_\(model)_weights[\(blob.bytes.count / 4)] = {")
    let ordered = blob.entries.values.sorted { $0.offset < $1.offset }
    var position = 0
    func float(at index: Int) -> String {
      let b = blob.bytes
      let bits = UInt32(b[4 * index]) | UInt32(b[4 * index + 1]) << 8 | UInt32(b[4 * index + 2]) << 16 | UInt32(b[4 * index + 3]) << 24
      let value = Float(bitPattern: bits)
      return value == 0 && value.sign == .plus ? "0" : String(format: "%af", Double(value))
    }
    for entry in ordered {
      if position < entry.offset / 4 {
        w.line("  " + (position..<(entry.offset / 4)).map { _ in "0" }.joined(separator: ", ") + ",")
        position = entry.offset / 4
      }
      w.line("  /* \(entry.name)\(entry.packed.map { " (packed [\($0.n)][\($0.k)])" } ?? "") */")
      var index = 0
      while index < entry.floats {
        let end = min(index + 8, entry.floats)
        w.line("  " + (index..<end).map { float(at: position + $0) }.joined(separator: ", ") + ",")
        index = end
      }
      position += entry.floats
    }
    if position < blob.bytes.count / 4 {
      w.line("  " + (position..<(blob.bytes.count / 4)).map { _ in "0" }.joined(separator: ", ") + ",")
    }
    w.line("};")
    return w.text
  }

  // MARK: - the model

  /// The C expression of a value's memory.
  mutating func pointer(_ id: ValueID) -> String {
    let (root, offset) = plan.root(of: id)
    let base: String
    switch plan.placements[root] {
    case .input?: base = "vit_input"
    case .parameter?: base = naming.name(root, graph[root].name, prefix: "P_")
    case .intArena?: base = naming.name(root, graph[root].name, prefix: "I_")
    default: base = naming.name(root, graph[root].name, prefix: "V_")
    }
    return offset == 0 ? base : "(\(base) + \(offset))"
  }

  /// Rows of a value seen as a matrix whose width is its last dim.
  /// The C expression of a dimension: a literal, or the run-time count AS-ViT's
  /// `threshold_keep` of stage s stored in `vit_k{s}` (rows `n{s}` = that count + 1).
  func dim(_ dim: Dim) -> String {
    switch dim {
    case .fixed(let value): "\(value)"
    case .dynamic(let symbol, _): symbol.hasPrefix("k") ? "vit_\(symbol)" : "(vit_k\(symbol.dropFirst()) + 1)"
    }
  }

  /// The product of dims as C: a literal when all are static.
  func product(_ dims: some Collection<Dim>) -> String {
    if dims.allSatisfy({ !$0.isDynamic }) { return "\(dims.reduce(1) { $0 * $1.bound })" }
    let fixed = dims.compactMap(\.fixedValue).reduce(1, *)
    let dynamic = dims.filter(\.isDynamic).map(dim)
    return ((fixed == 1 ? [] : ["\(fixed)"]) + dynamic).joined(separator: " * ")
  }

  /// Elements of a value (C expression).
  func count(_ id: ValueID) -> String { product(graph.type(of: id).dims) }

  /// Rows of a value seen as a matrix whose width is its last dim (C expression).
  func rows(_ id: ValueID) -> String { product(graph.type(of: id).dims.dropLast()) }

  func width(_ id: ValueID) -> Int { graph.type(of: id).dims.last!.bound }

  func real(_ value: Double) -> String {
    let f = Float(value)
    return "\(String(format: "%af", Double(f))) /* \(f) */"
  }

  mutating func modelSource(embedding: WeightsEmbedding) throws(EmitError) -> String {
    for input in graph.inputs where graph.type(of: input).isDynamic {
      throw .dynamicInput(graph[input].name, graph.type(of: input), at: graph[input].location)
    }
    let primitive: Set<OpKind> = [.softmax, .splitHeads, .mergeHeads, .transpose, .matmul, .concat, .patchEmbed, .batMerge, .bipartiteMerge]
    for op in graph.ops where primitive.contains(op.kind) && op.operands.contains(where: { graph.type(of: $0).isDynamic }) {
      throw .unsupported(op.kind, reason: "this op is emitted for static token counts only", at: op.location)
    }
    let stages = stageGroups()
    var bodies: [String] = []
    for (index, stage) in stages.enumerated() {
      var w = CWriter()
      try emitStage(String(format: "stage%02d_%@", index, stage.name), stage.ops, into: &w)
      bodies.append(w.text)
    }

    var w = CWriter()
    w.comment(provenanceLines("Model code"))
    w.line("#include \"\(stem).h\"")
    w.line()
    w.line("#include <math.h>")
    w.line("#include <string.h>")
    w.line("#include <time.h>")
    w.line()
    w.line("#include \"vit_runtime.h\"")
    if graph.ops.contains(where: { $0.kind == .patchOwner }) { w.line("#include \"vit_prune.h\"") }
    w.line()
    let packed = graph.parameters.contains { blob.entries[$0]?.packed != nil }
    if !packed && !WeightBlob.packedShapes(graph).isEmpty {
      w.line("#ifndef VIT_BLAS_OPENBLAS")
      w.line("#error \"compiled with --blas openblas: the GEMM weights are not packed; build with -DVIT_BLAS_OPENBLAS\"")
      w.line("#endif")
    } else if packed {
      w.line("#ifdef VIT_BLAS_OPENBLAS")
      w.line("#error \"the GEMM weights are packed for vitc's kernels; compile with --blas openblas for OpenBLAS\"")
      w.line("#endif")
    }
    w.line()
    switch embedding {
    case .incbin, .hex:
      w.comment(["The weights blob (\(blob.bytes.count) bytes): \(embedding == .incbin ? "\(stem)_weights.S" : "\(stem)_weights.c")."])
      w.line("extern const float vit_\(model)_weights[];")
    case .file:
      w.comment(["The weights blob (\(blob.bytes.count) bytes), bound at run time by vit_\(model)_bind_weights."])
      w.line("static const float *vit_\(model)_weights;")
    }
    for parameter in graph.parameters {
      let entry = blob.entries[parameter]!
      let name = naming.name(parameter, graph[parameter].name, prefix: "P_")
      let layout = entry.packed.map { "packed for GEMM: n=\($0.n), k=\($0.k)" } ?? "as stored"
      w.line("#define \(name) (vit_\(model)_weights + \(entry.offset / 4)) /* \(graph[parameter].name) \(graph.type(of: parameter)), \(layout) */")
    }
    w.line()
    w.comment([
      "One static arena for every intermediate value, \(plan.arenaFloats * 4) bytes, planned by",
      "liveness (values alive at the same time never share memory).",
    ])
    w.line("static _Alignas(64) float vit_arena[\(plan.arenaFloats)];")
    let activations = plan.placements.compactMap { id, placement -> (ValueID, Int, Int)? in
      if case .arena(let offset, let floats) = placement { return (id, offset, floats) }
      return nil
    }.sorted { $0.0 < $1.0 }
    for (id, offset, _) in activations {
      let name = naming.name(id, graph[id].name, prefix: "V_")
      w.line("#define \(name) (vit_arena + \(offset)) /* \(graph[id].name) \(graph.type(of: id)) */")
    }
    let intValues = plan.placements.compactMap { id, placement -> (ValueID, Int)? in
      if case .intArena(let offset, _) = placement { return (id, offset) }
      return nil
    }.sorted { $0.0 < $1.0 }
    if !intValues.isEmpty {
      w.line()
      w.comment(["Token indices and patch-owner maps of the pruning stages, \(plan.intArenaInts * 4) bytes."])
      w.line("static int vit_iarena[\(plan.intArenaInts)];")
      for (id, offset) in intValues {
        let name = naming.name(id, graph[id].name, prefix: "I_")
        w.line("#define \(name) (vit_iarena + \(offset)) /* \(graph[id].name) \(graph.type(of: id)) */")
      }
    }
    w.line()
    w.comment(["Scratch for the im2col of the patch embedding, the attention kernel and the pruning kernels (the largest need)."])
    var needs = Array(Set(scratchNeeds)).sorted()
    if needs.isEmpty { needs = ["16"] }
    // A running maximum as enum constants: each is evaluated once (nested macros would expand
    // exponentially), and every need is a constant expression well below INT_MAX.
    func runningMaximum(_ name: String, _ needs: [String]) {
      w.line("enum {")
      w.line("  \(name)_0 = (int)(\(needs[0])),")
      for (index, need) in needs.enumerated().dropFirst() {
        w.line("  \(name)_\(index) = \(name)_\(index - 1) > (int)(\(need)) ? \(name)_\(index - 1) : (int)(\(need)),")
      }
      w.line("  \(name) = \(name)_\(needs.count - 1)")
      w.line("};")
    }
    runningMaximum("VIT_SCRATCH_FLOATS", needs)
    w.line("static _Alignas(64) float vit_scratch[VIT_SCRATCH_FLOATS];")
    let intNeeds = Array(Set(intScratchNeeds)).sorted()
    if !intNeeds.isEmpty {
      runningMaximum("VIT_ISCRATCH_INTS", intNeeds)
      w.line("static int vit_iscratch[VIT_ISCRATCH_INTS];")
    }
    if keyBiasFloats > 0 {
      w.line("static float vit_key_bias[\(keyBiasFloats)]; /* log(size) of each key, ToMe's proportional attention */")
    }
    if traceStages > 0 {
      w.line("static struct vit_\(model)_trace *vit_trace; /* where trace_stage records, or NULL */")
    }
    for symbol in dynamicCounts {
      w.line("static int \(symbol); /* patch tokens kept by a threshold_keep, known at run time */")
    }
    w.line("static const float *vit_input; /* \(graph[graph.inputs[0]].name) \(graph.type(of: graph.inputs[0])) */")
    w.line()
    for body in bodies {
      w.line(body.trimmingCharacters(in: .newlines))
      w.line()
    }
    w.comment(["Per-stage wall time, accumulated over runs while vit_\(model)_profile is set (--bench)."])
    w.line("int vit_\(model)_profile;")
    w.line("double vit_\(model)_stage_seconds[\(stages.count)];")
    w.line("const char *const vit_\(model)_stage_names[\(stages.count)] = {")
    for (index, stage) in stages.enumerated() {
      w.line("  \"" + String(format: "stage%02d_%@", index, stage.name) + "\",")
    }
    w.line("};")
    w.line()
    w.block("static double vit_seconds(void)") { w in
      w.line("struct timespec t;")
      w.line("timespec_get(&t, TIME_UTC);")
      w.line("return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;")
    }
    w.line()
    if embedding == .file { weightsBinder(into: &w) }
    w.block("int vit_\(model)_run(const float *input, float *logits, struct vit_\(model)_trace *trace)") { w in
      if embedding == .file { w.line("if (!vit_\(model)_weights) return -1;") }
      w.line("vit_input = input;")
      if traceStages > 0 { w.line("vit_trace = trace;") }
      w.line("double t = vit_\(model)_profile ? vit_seconds() : 0.0;")
      for (index, stage) in stages.enumerated() {
        w.line(String(format: "stage%02d_%@();", index, stage.name))
        w.block("if (vit_\(model)_profile)") { w in
          w.line("const double now = vit_seconds();")
          w.line("vit_\(model)_stage_seconds[\(index)] += now - t;")
          w.line("t = now;")
        }
      }
      let output = graph.output!
      w.line("memcpy(logits, \(pointer(output)), \(graph.type(of: output).boundCount) * sizeof(float));")
      w.line("if (trace) trace->n_stages = \(traceStages);")
      w.line("return 0;")
    }
    w.line()
    macsFunction(into: &w)
    return w.text
  }

  /// `vit_<model>_macs`: FlopCounter's polynomial for the graph, its symbols read from the trace.
  func macsFunction(into w: inout CWriter) {
    let polynomial = FlopCounter.polynomial(of: graph, convention: .fvcore)
    let places = FlopCounter.traceSymbols(of: graph)
    var bounds: [String: Int] = [:]
    for value in graph.values {
      for case .dynamic(let symbol, let bound) in value.type.dims { bounds[symbol] = bound }
    }
    w.block("long long vit_\(model)_macs(const struct vit_\(model)_trace *trace)") { w in
      let symbols = polynomial.symbols
      if symbols.isEmpty { w.line("(void)trace;") }
      for symbol in symbols {
        // A symbol the trace does not give stays at its bound (there is none today).
        let bound = bounds[symbol] ?? 0
        if let (stage, offset) = places[symbol] {
          let adjust = offset == 0 ? "" : offset < 0 ? " - \(-offset)" : " + \(offset)"
          w.line("const long long \(symbol) = (long long)trace->tokens[\(stage)]\(adjust); /* at most \(bound) */")
        } else {
          w.line("const long long \(symbol) = \(bound);")
        }
      }
      let terms = polynomial.sortedTerms.map { term in
        (["\(term.coefficient)LL"] + term.monomial).joined(separator: " * ")
      }
      w.line("return \(terms.isEmpty ? "0" : terms.joined(separator: " + "));")
    }
  }

  /// Indices of the ops that only serve a pruning method's selection: the pruning ops, and
  /// ops all of whose results only feed their scores (DynamicViT's predictor MLP).
  static func selectionOps(_ graph: Graph) -> Set<Int> {
    let pruning: Set<OpKind> = [
      .patchTokens, .dyvitMix, .keepScore, .clsAttention, .asvitScores, .tomeMetric, .topkKeep, .thresholdKeep,
      .patchOwner, .unitSizes, .gatherTokens, .gatherFuseTokens, .batMerge, .bipartiteMerge, .traceStage,
    ]
    // Uses that count: not the token sequence a rewriting op reads (operand 0), which is the
    // model's own data path, not the selection's.
    let rewriting: Set<OpKind> = [.patchTokens, .gatherTokens, .gatherFuseTokens, .batMerge, .bipartiteMerge, .traceStage, .unitSizes]
    var users: [ValueID: [Int]] = [:]
    for (index, op) in graph.ops.enumerated() {
      for (position, operand) in op.operands.enumerated() {
        users[operand, default: []].append(rewriting.contains(op.kind) && position == 0 ? -1 : index)
      }
    }
    var selected = Set<Int>()
    for index in graph.ops.indices.reversed() {
      let op = graph.ops[index]
      if pruning.contains(op.kind) {
        selected.insert(index)
      } else if op.results.allSatisfy({ $0 != graph.output && !(users[$0] ?? []).isEmpty && users[$0]!.allSatisfy(selected.contains) }) {
        selected.insert(index)
      }
    }
    return selected
  }

  /// `vit_<model>_bind_weights`: checks a vitc weights file (docs/weights-file.md) against
  /// this model and binds its blob.
  func weightsBinder(into w: inout CWriter) {
    w.comment([
      "Little-endian fields of the weights file's header.",
    ])
    w.block("static uint64_t vit_le(const unsigned char *p, int bytes)") { w in
      w.line("uint64_t v = 0;")
      w.line("for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];")
      w.line("return v;")
    }
    w.line()
    w.block("int vit_\(model)_bind_weights(const void *file, size_t bytes)") { w in
      w.line("const unsigned char *p = file;")
      w.line("if (bytes < \(WeightsFile.headerBytes) || memcmp(p, \"VITCWTS\", 8) != 0) return VIT_\(upper)_WEIGHTS_NOT_VITC;")
      w.line("if (vit_le(p + 8, 4) != \(WeightsFile.version) || vit_le(p + 12, 4) != \(WeightsFile.headerBytes)) return VIT_\(upper)_WEIGHTS_VERSION;")
      w.line("if (memcmp(p + 32, \"\(model)\", \(model.utf8.count + 1)) != 0) return VIT_\(upper)_WEIGHTS_OTHER_MODEL;")
      w.line("const uint64_t payload = vit_le(p + 16, 8);")
      w.line("if (bytes - \(WeightsFile.headerBytes) < payload) return VIT_\(upper)_WEIGHTS_TRUNCATED;")
      w.line("if (payload != VIT_\(upper)_WEIGHT_BYTES) return VIT_\(upper)_WEIGHTS_SIZE;")
      w.line("if ((uintptr_t)(p + \(WeightsFile.headerBytes)) % 64 != 0) return VIT_\(upper)_WEIGHTS_ALIGNMENT;")
      w.line("uint64_t hash = 0xcbf29ce484222325u; /* FNV-1a 64 */")
      w.line("for (uint64_t i = 0; i < payload; i++) hash = (hash ^ p[\(WeightsFile.headerBytes) + i]) * 0x100000001b3u;")
      w.line("if (hash != vit_le(p + 24, 8)) return VIT_\(upper)_WEIGHTS_CORRUPT;")
      w.line("if (hash != 0x\(String(format: "%016llx", blob.hash))u) return VIT_\(upper)_WEIGHTS_MISMATCH;")
      w.line("vit_\(model)_weights = (const float *)(const void *)(p + \(WeightsFile.headerBytes));")
      w.line("return VIT_\(upper)_WEIGHTS_OK;")
    }
    w.line()
  }

  mutating func emitStage(_ name: String, _ ops: [Op], into w: inout CWriter) throws(EmitError) {
    var header = ["\(name): \(ops.count) ops"]
    for op in ops where op.kind != .reshape && op.kind != .row {
      header.append("  " + Printer.statement(op, in: graph) + (op.location.map { "  (\($0))" } ?? ""))
    }
    w.comment(header)
    var body = CWriter()
    for op in ops { try emitOp(op, into: &body) }
    w.block("static void \(name)(void)") { w in
      for line in body.text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
        w.line(String(line))
      }
    }
  }

  mutating func emitOp(_ op: Op, into w: inout CWriter) throws(EmitError) {
    let result = op.results[0]
    let y = pointer(result)
    func operand(_ index: Int) -> String { pointer(op.operands[index]) }
    switch op.kind {
    case .reshape, .row, .patchTokens:
      return  // views
    case .patchEmbed:
      let image = graph.type(of: op.operands[0]).fixedShape!
      let p = op.int("patch")
      let (channels, height, widthPixels) = (image[0], image[1], image[2])
      let (gridH, gridW) = (height / p, widthPixels / p)
      let k = channels * p * p
      scratchNeeds.append("\(gridH * gridW * k)")
      w.line("/* \(graph[result].name) \(graph.type(of: result)): im2col of \(p)x\(p) patches (row-major grid), then one GEMM */")
      w.block("for (int r = 0; r < \(gridH); r++)") { w in
        w.block("for (int s = 0; s < \(gridW); s++)") { w in
          w.block("for (int ch = 0; ch < \(channels); ch++)") { w in
            w.block("for (int ky = 0; ky < \(p); ky++)") { w in
              w.line("memcpy(vit_scratch + (r * \(gridW) + s) * \(k) + (ch * \(p) + ky) * \(p),")
              w.line("       vit_input + (ch * \(height) + r * \(p) + ky) * \(widthPixels) + s * \(p), \(p) * sizeof(float));")
            }
          }
        }
      }
      w.line("vit_linear_f32(vit_scratch, \(gridH * gridW), \(k), \(operand(1)), \(operand(2)), \(width(result)), VIT_EPI_NONE, NULL, \(y));")
    case .concat:
      let a = count(op.operands[0])
      let b = count(op.operands[1])
      w.line("memcpy(\(y), \(operand(0)), \(a) * sizeof(float)); /* \(graph[result].name) = concat */")
      w.line("memcpy(\(y) + \(a), \(operand(1)), \(b) * sizeof(float));")
    case .add:
      let count = count(result)
      w.line("for (int i = 0; i < \(count); i++) \(y)[i] = \(operand(0))[i] + \(operand(1))[i]; /* \(graph[result].name) = add */")
    case .scale:
      let count = count(result)
      w.line("for (int i = 0; i < \(count); i++) \(y)[i] = \(operand(0))[i] * \(real(op.real("factor")));")
    case .gelu:
      let count = count(result)
      w.line("for (int i = 0; i < \(count); i++) \(y)[i] = 0.5f * \(operand(0))[i] * (1.0f + erff(\(operand(0))[i] * 0.70710678118654752f)); /* exact GELU */")
    case .layernorm:
      w.line("vit_layernorm_f32(\(operand(0)), \(rows(result)), \(width(result)), \(operand(1)), \(operand(2)), \(real(op.real("eps"))), \(y)); /* \(graph[result].name) */")
    case .linear, .linearGelu, .linearAdd:
      guard graph[op.operands[1]].origin == .parameter else {
        throw .unsupported(op.kind, reason: "the weight must be a parameter", at: op.location)
      }
      let k = width(op.operands[0])
      let bias = op.operands.count > 2 ? operand(2) : "NULL"
      let (epilogue, residual) =
        switch op.kind {
        case .linearGelu: ("VIT_EPI_GELU", "NULL")
        case .linearAdd: ("VIT_EPI_RESIDUAL", operand(3))
        default: ("VIT_EPI_NONE", "NULL")
        }
      w.line("vit_linear_f32(\(operand(0)), \(rows(op.operands[0])), \(k), \(operand(1)), \(bias), \(width(result)), \(epilogue), \(residual), \(y)); /* \(graph[result].name) */")
    case .attention:
      let bound = graph.type(of: op.operands[0]).dims[0].bound
      let n = rows(op.operands[0])
      let heads = op.int("heads")
      let headWidth = width(result) / heads
      scratchNeeds.append("VIT_ATTENTION_SCRATCH_FLOATS(\(bound), \(heads), \(headWidth))")
      var keyBias = "NULL"
      if op.operands.count > 1 {
        keyBiasFloats = max(keyBiasFloats, bound)
        w.line("for (int i = 0; i < \(n); i++) vit_key_bias[i] = logf(\(operand(1))[i]); /* proportional attention: + log(size) */")
        keyBias = "vit_key_bias"
      }
      w.line("vit_attention_f32(\(operand(0)), \(n), \(heads), \(headWidth), \(real(op.real("scale"))), \(keyBias), NULL, vit_scratch, \(y)); /* \(graph[result].name) */")
    case .dyvitMix:
      w.line("vit_dyvit_mix_f32(\(operand(0)), \(rows(result)), \(width(result)), \(y)); /* \(graph[result].name) */")
    case .keepScore:
      w.line("vit_keep_score_f32(\(operand(0)), \(rows(op.operands[0])), \(y)); /* \(graph[result].name) */")
    case .clsAttention:
      let n = rows(op.operands[0])
      let heads = op.int("heads")
      scratchNeeds.append("VIT_CLS_ATTENTION_SCRATCH_FLOATS(\(graph.type(of: op.operands[0]).dims[0].bound))")
      w.line("vit_cls_attention_f32(\(operand(0)), \(n), \(heads), \(width(op.operands[0]) / 3 / heads), \(real(op.real("scale"))), vit_scratch, \(y)); /* \(graph[result].name) */")
    case .asvitScores:
      let n = rows(op.operands[0])
      let heads = op.int("heads")
      scratchNeeds.append("VIT_ASVIT_SCORES_SCRATCH_FLOATS(\(graph.type(of: op.operands[0]).dims[0].bound), \(heads))")
      w.line("vit_asvit_scores_f32(\(operand(0)), \(operand(1)), \(n), \(heads), \(width(op.operands[0]) / 3 / heads), \(real(op.real("scale"))), vit_scratch, \(y)); /* \(graph[result].name) */")
    case .tomeMetric:
      let heads = op.int("heads")
      w.line("vit_tome_metric_f32(\(operand(0)), \(rows(op.operands[0])), \(heads), \(width(op.operands[0]) / 3 / heads), \(y)); /* \(graph[result].name) */")
    case .topkKeep:
      w.line("vit_topk_keep_f32(\(operand(0)), \(count(op.operands[0])), \(op.int("k")), \(y)); /* \(graph[result].name) */")
    case .thresholdKeep:
      let symbol = dim(graph.type(of: result).dims[0])
      dynamicCounts.append(symbol)
      w.line("\(symbol) = vit_threshold_keep_f32(\(operand(0)), \(count(op.operands[0])), \(real(op.real("threshold"))), \(y)); /* \(graph[result].name): a run-time count */")
    case .patchOwner:
      w.line("for (int p = 0; p < \(op.int("patches")); p++) \(y)[p] = 1 + p; /* \(graph[result].name): patch p in row 1 + p */")
    case .unitSizes:
      w.line("for (int i = 0; i < \(count(result)); i++) \(y)[i] = 1.0f; /* \(graph[result].name) */")
    case .gatherTokens, .gatherFuseTokens:
      let n = rows(op.operands[0])
      let c = width(op.operands[0])
      let k = dim(graph.type(of: op.operands[1]).dims[0])
      let owner = op.kind == .gatherTokens ? operand(2) : operand(3)
      intScratchNeeds.append("\(graph.type(of: op.operands[0]).dims[0].bound)")
      if op.kind == .gatherTokens {
        w.line("vit_gather_tokens_f32(\(operand(0)), \(n), \(c), \(operand(1)), \(k), \(owner), \(patchCount), \(pointer(op.results[1])), vit_iscratch, \(y)); /* \(graph[result].name) */")
      } else {
        w.line("vit_gather_fuse_tokens_f32(\(operand(0)), \(n), \(c), \(operand(1)), \(k), \(operand(2)), \(owner), \(patchCount), \(pointer(op.results[1])), vit_iscratch, \(y)); /* \(graph[result].name) */")
      }
    case .batMerge:
      let n = rows(op.operands[0])
      scratchNeeds.append("VIT_BAT_SCRATCH_FLOATS(\(n), \(width(op.operands[0])))")
      intScratchNeeds.append("VIT_BAT_SCRATCH_INTS(\(n))")
      w.line("vit_bat_merge_f32(\(operand(0)), \(n), \(width(op.operands[0])), \(operand(1)), \(op.int("k")), \(op.int("clusters")), \(op.int("pairs")), \(operand(2)), \(patchCount), \(pointer(op.results[1])), vit_scratch, vit_iscratch, \(y)); /* \(graph[result].name) */")
    case .bipartiteMerge:
      let n = rows(op.operands[0])
      scratchNeeds.append("VIT_TOME_SCRATCH_FLOATS(\(n), \(width(op.operands[0])), \(width(op.operands[1])))")
      intScratchNeeds.append("VIT_TOME_SCRATCH_INTS(\(n))")
      w.line("vit_bipartite_merge_f32(\(operand(0)), \(operand(1)), \(operand(2)), \(n), \(width(op.operands[0])), \(width(op.operands[1])), \(op.int("r")), \(operand(3)), \(patchCount), \(pointer(op.results[2])), vit_scratch, vit_iscratch, \(y), \(pointer(op.results[1]))); /* \(graph[result].name) */")
    case .traceStage:
      let stage = traceStages
      traceStages += 1
      let tokens = rows(op.operands[0])
      w.block("if (vit_trace) /* trace stage \(stage): block \(op.int("block")), \(tokens) tokens */") { w in
        w.line("vit_trace->block[\(stage)] = \(op.int("block"));")
        w.line("vit_trace->tokens[\(stage)] = \(tokens);")
        w.line("vit_trace_stage(\(operand(1)), \(patchCount), \(tokens), vit_trace->first[\(stage)], vit_trace->members[\(stage)]);")
      }
    case .softmax:
      let width = width(result)
      w.block("for (int r = 0; r < \(rows(result)); r++) /* \(graph[result].name) = softmax */") { w in
        w.line("const float *x = \(operand(0)) + r * \(width);")
        w.line("float *out = \(y) + r * \(width);")
        w.line("float max = x[0], sum = 0.0f;")
        w.line("for (int i = 1; i < \(width); i++) max = x[i] > max ? x[i] : max;")
        w.line("for (int i = 0; i < \(width); i++) { out[i] = expf(x[i] - max); sum += out[i]; }")
        w.line("for (int i = 0; i < \(width); i++) out[i] /= sum;")
      }
    case .splitHeads:
      let x = graph.type(of: op.operands[0]).fixedShape!
      let heads = op.int("heads")
      let parts = op.results.count
      let headWidth = x[1] / (parts * heads)
      for (s, part) in op.results.enumerated() {
        w.line("for (int h = 0; h < \(heads); h++) for (int n = 0; n < \(x[0]); n++) for (int j = 0; j < \(headWidth); j++) /* \(graph[part].name) */")
        w.line("  \(pointer(part))[(h * \(x[0]) + n) * \(headWidth) + j] = \(operand(0))[n * \(x[1]) + \(s * heads * headWidth) + h * \(headWidth) + j];")
      }
    case .mergeHeads:
      let x = graph.type(of: op.operands[0]).fixedShape!
      w.line("for (int h = 0; h < \(x[0]); h++) for (int n = 0; n < \(x[1]); n++) for (int j = 0; j < \(x[2]); j++) /* \(graph[result].name) */")
      w.line("  \(y)[n * \(x[0] * x[2]) + h * \(x[2]) + j] = \(operand(0))[(h * \(x[1]) + n) * \(x[2]) + j];")
    case .transpose:
      let x = graph.type(of: op.operands[0]).fixedShape!
      let (r, c) = (x[x.count - 2], x[x.count - 1])
      let batches = x.dropLast(2).reduce(1, *)
      w.line("for (int b = 0; b < \(batches); b++) for (int r = 0; r < \(r); r++) for (int c = 0; c < \(c); c++) /* \(graph[result].name) */")
      w.line("  \(y)[(b * \(c) + c) * \(r) + r] = \(operand(0))[(b * \(r) + r) * \(c) + c];")
    case .matmul:
      let a = graph.type(of: op.operands[0]).fixedShape!
      let b = graph.type(of: op.operands[1]).fixedShape!
      let (m, k, n) = (a[a.count - 2], a[a.count - 1], b[b.count - 1])
      let batches = a.dropLast(2).reduce(1, *)
      w.block("for (int b = 0; b < \(batches); b++) for (int i = 0; i < \(m); i++) for (int j = 0; j < \(n); j++) /* \(graph[result].name) */") { w in
        w.line("float sum = 0.0f;")
        w.line("for (int t = 0; t < \(k); t++) sum += \(operand(0))[(b * \(m) + i) * \(k) + t] * \(operand(1))[(b * \(k) + t) * \(n) + j];")
        w.line("\(y)[(b * \(m) + i) * \(n) + j] = sum;")
      }
    }
  }
}
