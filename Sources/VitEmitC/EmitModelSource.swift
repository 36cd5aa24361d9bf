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
}
