import Foundation
import VitIR
import VitPasses

extension ModelEmitter {
  /// `<stem>.c`: the weights and memory declarations, one function per stage, the entry point
  /// and the MAC count.
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
    if embedding == .load { w.line("#include \"vit_weights.h\"") }
    w.line()
    let packed = graph.parameters.contains { blob.entries[$0].map { $0.packed != nil && !$0.quantized } ?? false }
    let floatGEMMWeights = WeightBlob.packedShapes(graph).keys.filter { blob.entries[$0]?.quantized != true }
    if !packed && !floatGEMMWeights.isEmpty {
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
    case .load:
      w.comment(["The weights (\(blob.size) bytes), filled at run time by vit_\(model)_load_weights."])
      w.line("static _Alignas(\(WeightBlob.alignment)) float vit_\(model)_weights[\(blob.size / 4)];")
      let thresholds = loadedThresholdStages
      if !thresholds.isEmpty {
        w.line("static float vit_thresholds[\(thresholds.count)]; /* AS-ViT's keep thresholds: " + thresholds.map { "score_predictor.\($0).keep_threshold" }.joined(separator: ", ") + " */")
      }
      w.line("static int vit_\(model)_loaded; /* set once vit_\(model)_load_weights has succeeded */")
    }
    for parameter in graph.parameters {
      let entry = blob.entries[parameter]!
      let name = naming.name(parameter, graph[parameter].name, prefix: "P_")
      if entry.quantized, let shape = entry.packed {
        w.line("#define \(name) ((const void *)(vit_\(model)_weights + \(entry.offset / 4))) /* \(graph[parameter].name) \(graph.type(of: parameter)), int8 block: n=\(shape.n), k=\(shape.k) */")
        continue
      }
      let layout = entry.packed.map { "packed for GEMM: n=\($0.n), k=\($0.k)" } ?? "as stored"
      w.line("#define \(name) (vit_\(model)_weights + \(entry.offset / 4)) /* \(graph[parameter].name) \(graph.type(of: parameter)), \(layout) */")
    }
    w.line()
    if packed {
      w.line("_Static_assert(VIT_NR == \(WeightBlob.panelWidth), \"the GEMM weights were packed in \(WeightBlob.panelWidth)-column panels (WeightBlob.panelWidth)\");")
    }
    w.line("_Static_assert(VIT_MAX_THREADS <= VIT_\(upper)_MAX_THREADS, \"the pool may run more threads than the scratch is sized for\");")
    w.line()
    memoryDeclarations(into: &w)
    w.line()
    runContext(into: &w)
    w.line()
    for body in bodies {
      w.line(body.trimmingCharacters(in: .newlines))
      w.line()
    }
    stageTable(embedding: embedding, into: &w)
    w.line()
    if embedding == .file { weightsBinder(into: &w) }
    if embedding == .load { try weightsLoader(into: &w) }
    w.block("int vit_\(model)_run(const float *input, float *logits, struct vit_\(model)_trace *trace)") { w in
      if embedding == .file { w.line("if (!vit_\(model)_weights) return -1;") }
      if embedding == .load { w.line("if (!vit_\(model)_loaded) return -1;") }
      w.line("if (vit_get_threads() > VIT_\(upper)_MAX_THREADS) return -2; /* more threads than the scratch holds */")
      let fields = ["input"] + (traceStages > 0 ? ["trace"] : [])
      w.line("struct vit_run run = {" + fields.map { ".\($0) = \($0)" }.joined(separator: ", ") + "};")
      w.line("double t = vit_\(model)_profile ? vit_seconds() : 0.0;")
      w.block("for (int s = 0; s < VIT_\(upper)_N_STAGE_FUNCTIONS; s++)") { w in
        w.line("vit_stages[s].run(&run);")
        w.block("if (vit_\(model)_profile)") { w in
          w.line("const double now = vit_seconds();")
          w.line("vit_\(model)_stage_seconds[s] += now - t;")
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

  mutating func emitStage(_ name: String, _ ops: [Op], into w: inout CWriter) throws(EmitError) {
    var header = ["\(name): \(ops.count) ops"]
    let (reads, writes) = dataflow(of: ops)
    header.append("reads:  " + (reads.isEmpty ? "-" : reads.map { "\(graph[$0].name) \(graph.type(of: $0))" }.joined(separator: ", ")))
    header.append("writes: " + (writes.isEmpty ? "-" : writes.map { "\(graph[$0].name) \(graph.type(of: $0))" }.joined(separator: ", ")))
    for op in ops where op.kind != .reshape && op.kind != .row {
      header.append("  " + Printer.statement(op, in: graph) + (op.location.map { "  (\($0))" } ?? ""))
    }
    w.comment(header)
    var body = CWriter()
    for op in ops { try emitOp(op, into: &body) }
    w.block("static void \(name)(struct vit_run *run)") { w in
      if !body.text.contains("run->") { w.line("(void)run;") }
      for line in body.text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
        w.line(String(line))
      }
    }
  }

  /// What a stage reads from earlier stages (the input included, parameters not) and writes
  /// for later ones (or as the output), each in order of first appearance.
  func dataflow(of ops: [Op]) -> (reads: [ValueID], writes: [ValueID]) {
    let produced = Set(ops.flatMap(\.results))
    var reads: [ValueID] = []
    for operand in ops.flatMap(\.operands) where !produced.contains(operand) && graph[operand].origin != .parameter {
      if !reads.contains(operand) { reads.append(operand) }
    }
    let usedLater = Set(graph.ops.filter { $0.results.allSatisfy { !produced.contains($0) } }.flatMap(\.operands))
    let writes = ops.flatMap(\.results).filter { usedLater.contains($0) || $0 == graph.output }
    return (reads, writes)
  }

  /// `struct vit_run`: what the stages of one run share besides the static memory.
  func runContext(into w: inout CWriter) {
    w.comment([
      "What the stages of one run share besides the static memory, on vit_\(model)_run's stack:",
      "the input, where the trace goes and the token counts threshold_keep finds at run time.",
    ])
    let input = graph.inputs[0]
    w.block("struct vit_run", closing: "};") { w in
      w.line("const float *input; /* \(graph[input].name) \(graph.type(of: input)) */")
      if traceStages > 0 { w.line("struct vit_\(model)_trace *trace; /* where trace_stage records, or NULL */") }
      for field in dynamicCounts { w.line("int \(field); /* patch tokens kept by a threshold_keep */") }
    }
  }

  /// The profiling counters, the stage names, the check that the header's static-memory figure
  /// is every writable static object, and the table of stages `vit_<model>_run` loops over.
  func stageTable(embedding: WeightsEmbedding, into w: inout CWriter) {
    let names = stageFunctionNames
    let count = "VIT_\(upper)_N_STAGE_FUNCTIONS"
    w.comment(["Per-stage wall time, accumulated over runs while vit_\(model)_profile is set (--bench)."])
    w.line("int vit_\(model)_profile;")
    w.line("double vit_\(model)_stage_seconds[\(count)];")
    w.line("const char vit_\(model)_stage_names[\(count)][\(Self.stageNameBytes(names))] = {")
    for name in names { w.line("  \"\(name)\",") }
    w.line("};")
    w.line()
    var objects = ["sizeof vit_memory"]
    if staticMemory.ints > 0 { objects.append("sizeof vit_imemory") }
    objects += ["sizeof vit_\(model)_profile", "sizeof vit_\(model)_stage_seconds"]
    if embedding == .file || embedding == .load { objects.append("sizeof vit_\(model)_weights") }
    if embedding == .load {
      if !loadedThresholdStages.isEmpty { objects.append("sizeof vit_thresholds") }
      objects.append("sizeof vit_\(model)_loaded")
    }
    w.line("_Static_assert(\(objects.joined(separator: " + ")) == VIT_\(upper)_STATIC_BYTES,")
    w.line("               \"the header's static memory is all of the model's writable static memory\");")
    w.line()
    w.comment(["The stages in order: vit_\(model)_run runs and times each in one loop."])
    w.line("static const struct vit_stage {")
    w.line("  const char *name;")
    w.line("  void (*run)(struct vit_run *run);")
    w.line("} vit_stages[\(count)] = {")
    for (index, name) in names.enumerated() { w.line("  {vit_\(model)_stage_names[\(index)], \(name)},") }
    w.line("};")
    w.line()
    w.block("static double vit_seconds(void)") { w in
      w.line("struct timespec t;")
      w.line("timespec_get(&t, TIME_UTC);")
      w.line("return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;")
    }
  }
}
