import Foundation
import VitIR
import VitPasses

extension ModelEmitter {
  /// The header's account of the model's static memory: every part, and the total that the
  /// model C asserts equals the size of its writable static objects.
  func headerMemory(embedding: WeightsEmbedding, into w: inout CWriter) {
    let weightsAtRuntime = embedding == .file
    let memory = staticMemory
    let (threaded, serial) = StaticMemory.threadBounds
    func bytes(_ value: Int) -> String { String(value).padding(toLength: 10, withPad: " ", startingAt: 0) }
    var lines = [
      "Static memory: all the writable memory the model object holds (.bss), VIT_\(upper)_STATIC_BYTES",
      "(the linker may add under 64 bytes of alignment between its objects).",
      embedding == .load
        ? "Read-only and apart: the stage table, the names and the table of tensors to load."
        : "Read-only and apart: the weights (VIT_\(upper)_WEIGHT_BYTES), the stage table and names.",
      "  \(bytes(4 * plan.arenaFloats))activations (the arena, planned by liveness): VIT_\(upper)_ARENA_BYTES",
    ]
    if memory.keyBiasFloats > 0 { lines.append("  \(bytes(4 * memory.keyBiasFloats))log(size) key bias of ToMe's proportional attention") }
    lines += [
      "  \(bytes(4 * memory.scratchFloats(threads: threaded)))kernels' scratch for \(threaded) threads (\(4 * memory.scratchFloats(threads: serial)) for 1, -DVIT_NO_THREADS)",
      "  \(bytes(4 * memory.ints))token indices, owner maps and integer scratch",
      "  \(bytes(memory.profileBytes))profiling: the flag and each stage's seconds",
      "  \(bytes(4 * (memory.scratchOffset - plan.arenaFloats - memory.keyBiasFloats)))alignment of the float parts to 64 bytes",
    ]
    if weightsAtRuntime { lines.append("  + sizeof(const float *): the pointer to the bound weights") }
    if embedding == .load {
      lines.append("  \(bytes(blob.size))the weights, filled by vit_\(model)_load_weights: VIT_\(upper)_WEIGHT_BYTES")
      let thresholds = loadedThresholdStages.count
      if thresholds > 0 { lines.append("  \(bytes(4 * thresholds))AS-ViT's keep thresholds, loaded with them") }
      lines.append("  \(bytes(4))the flag that says they are loaded")
    }
    lines += [
      "The scratch holds the largest need of one op (im2col, attention, a pruning kernel);",
      "attention keeps one score tile per thread, so it is sized for the runtime pool's bound,",
      "VIT_MAX_THREADS (\(threaded), or \(serial) with -DVIT_NO_THREADS). vit_\(model)_run returns -2",
      "rather than run on more threads than VIT_\(upper)_MAX_THREADS.",
    ]
    w.comment(lines)
    w.line("#define VIT_\(upper)_ARENA_BYTES \(4 * plan.arenaFloats)")
    let pointer = weightsAtRuntime ? " + sizeof(const float *)" : ""
    for (condition, threads) in [("#ifdef VIT_NO_THREADS", serial), ("#else", threaded)] {
      w.line(condition)
      w.line("#define VIT_\(upper)_MAX_THREADS \(threads)")
      w.line("#define VIT_\(upper)_SCRATCH_BYTES \(4 * memory.scratchFloats(threads: threads))")
      w.line("#define VIT_\(upper)_STATIC_BYTES \(pointer.isEmpty ? "" : "(")\(memory.bytes(threads: threads) + loadedWeightsBytes)\(pointer)\(pointer.isEmpty ? "" : ")")")
    }
    w.line("#endif")
  }

  /// The model C's static memory: one float object (activations, key bias, scratch), one int
  /// object (indices and owner maps, integer scratch), the value macros into them, and
  /// compile-time checks that the scratch holds what the runtime's kernels say they need.
  mutating func memoryDeclarations(into w: inout CWriter) {
    let memory = staticMemory
    w.comment([
      "The model's writable static memory (the header's VIT_\(upper)_STATIC_BYTES): this float object,",
      "the int object below and the profiling counters. Activations first, planned by liveness",
      "(values alive at the same time never share memory), then the kernels' scratch.",
    ])
    w.line("static _Alignas(64) float vit_memory[\(memory.scratchOffset) + VIT_\(upper)_SCRATCH_BYTES / 4];")
    w.line("#define vit_arena vit_memory /* [\(plan.arenaFloats)] activations */")
    let activations = plan.placements.compactMap { id, placement -> (ValueID, Int)? in
      if case .arena(let offset, _) = placement { return (id, offset) }
      return nil
    }.sorted { $0.0 < $1.0 }
    for (id, offset) in activations {
      let name = naming.name(id, graph[id].name, prefix: "V_")
      w.line("#define \(name) (vit_arena + \(offset)) /* \(graph[id].name) \(graph.type(of: id)) */")
    }
    if keyBiasFloats > 0 {
      w.line("#define vit_key_bias (vit_memory + \(memory.keyBiasOffset)) /* [\(keyBiasFloats)] log(size) of each key, ToMe's proportional attention */")
    }
    let needs = Self.largestOfEachKind(scratchNeeds)
    w.line("#define vit_scratch (vit_memory + \(memory.scratchOffset)) /* the largest need of one op, for VIT_\(upper)_MAX_THREADS threads: */")
    for need in needs {
      let perThread = need.perThread == 0 ? "" : " + \(need.perThread) per thread"
      w.line("/*   \(need.what): \(need.fixed)\(perThread) floats */")
    }
    for need in needs {
      guard let macro = need.macro else { continue }
      let expression = macro.replacingOccurrences(of: "threads", with: "VIT_\(upper)_MAX_THREADS")
      w.line("_Static_assert((size_t)(VIT_\(upper)_SCRATCH_BYTES / 4) >= \(expression), \"scratch too small for \(need.what)\");")
    }
    guard memory.ints > 0 else { return }
    w.line()
    w.comment(["Token indices and patch-owner maps of the pruning stages, then the pruning kernels' integer scratch."])
    w.line("static int vit_imemory[\(memory.ints)];")
    w.line("#define vit_iarena vit_imemory /* [\(plan.intArenaInts)] */")
    let intValues = plan.placements.compactMap { id, placement -> (ValueID, Int)? in
      if case .intArena(let offset, _) = placement { return (id, offset) }
      return nil
    }.sorted { $0.0 < $1.0 }
    for (id, offset) in intValues {
      let name = naming.name(id, graph[id].name, prefix: "I_")
      w.line("#define \(name) (vit_iarena + \(offset)) /* \(graph[id].name) \(graph.type(of: id)) */")
    }
    if memory.intScratchInts > 0 {
      w.line("#define vit_iscratch (vit_imemory + \(plan.intArenaInts)) /* [\(memory.intScratchInts)] the largest need of one op */")
      for need in Self.largestOfEachKind(intScratchNeeds) {
        guard let macro = need.macro else { continue }
        w.line("_Static_assert((size_t)\(memory.intScratchInts) >= \(macro), \"integer scratch too small for \(need.what)\");")
      }
    }
  }

  /// The largest need of each kind (`attention`, `ToMe`, ...: what comes before ` n=`), at the
  /// threaded bound, smallest first. Every kernel's need grows with n, so these bound the rest.
  static func largestOfEachKind(_ needs: [ScratchNeed]) -> [ScratchNeed] {
    let threads = StaticMemory.threadBounds.threaded
    let kinds = Dictionary(grouping: needs) { $0.what.components(separatedBy: " n=")[0] }
    return kinds.values.map { $0.max { $0.floats(threads: threads) < $1.floats(threads: threads) }! }
      .sorted { ($0.floats(threads: threads), $0.what) < ($1.floats(threads: threads), $1.what) }
  }
}
