/// What one op needs of the kernels' float scratch: `fixed + perThread × threads` floats. The
/// runtime states the same need as a macro (`VIT_ATTENTION_SCRATCH_FLOATS_T`, ...); the model
/// C asserts at compile time that its scratch holds it, so the two cannot drift apart silently.
struct ScratchNeed: Hashable {
  /// What needs it, for the model C's comment and assertion message.
  var what: String
  var fixed: Int
  var perThread = 0
  /// The runtime's macro for this need, with `threads` standing for the thread bound (nil: a
  /// need of the model's own code, like the im2col of the patch embedding).
  var macro: String?

  func floats(threads: Int) -> Int { fixed + perThread * threads }

  /// `VIT_PACKED_FLOATS(n, k)`: ceil(n / VIT_NR) * VIT_NR * k.
  static func packed(_ n: Int, _ k: Int) -> Int {
    (n + WeightBlob.panelWidth - 1) / WeightBlob.panelWidth * WeightBlob.panelWidth * k
  }

  /// vit_linear_s8 on m rows of k: m float scales, then (from a 64-byte boundary) the rows
  /// quantized to int8, `VIT_QK(k)` bytes each (k rounded up to a multiple of 4).
  static func int8Rows(m: Int, k: Int) -> ScratchNeed {
    let quantizedK = (k + 3) / 4 * 4
    return ScratchNeed(what: "int8 rows n=\(m)", fixed: int8RowsOffset(m: m) + m * quantizedK / 4)
  }

  /// Where the int8 rows of `int8Rows` start, in floats from the scratch.
  static func int8RowsOffset(m: Int) -> Int { (m + 15) / 16 * 16 }

  /// vit_linear_bf16 on m rows of k: the rows rounded to bf16, then a panel of 16 columns per
  /// thread (VIT_BF16_SCRATCH_FLOATS_T).
  static func bf16Rows(m: Int, k: Int) -> ScratchNeed {
    ScratchNeed(
      what: "bf16 rows n=\(m)", fixed: m * k + 16, perThread: WeightBlob.panelWidth * k,
      macro: "VIT_BF16_SCRATCH_FLOATS_T(\(m), \(k), threads)")
  }

  /// vit_attention_f32 on n tokens: packed keys and values per head, one
  /// [VIT_ATTENTION_ROWS][ceil(n/16)*16] score tile per thread, 16 floats of slack.
  static func attention(n: Int, heads: Int, headWidth: Int) -> ScratchNeed {
    ScratchNeed(
      what: "attention n=\(n)", fixed: heads * (packed(n, headWidth) + packed(headWidth, n)) + 16,
      perThread: 16 * packed(n, 1), macro: "VIT_ATTENTION_SCRATCH_FLOATS_T(\(n), \(heads), \(headWidth), threads)")
  }
}

/// The model's static memory, planned for a thread bound: one float object (the activation
/// arena, ToMe's key bias, then the kernels' scratch, each part starting 64-byte aligned),
/// one int object (the pruning stages' token indices and owner maps, then the integer scratch)
/// and the profiling counters. Nothing else of the model is static and writable.
struct StaticMemory {
  /// Threads the scratch is sized for: the runtime pool's bound, `VIT_MAX_THREADS` (64, or 1
  /// with -DVIT_NO_THREADS).
  static let threadBounds = (threaded: 64, serial: 1)

  var arenaFloats: Int
  var keyBiasFloats: Int
  var scratchNeeds: [ScratchNeed]
  var intArenaInts: Int
  var intScratchInts: Int
  var stageFunctions: Int

  private static func aligned(_ floats: Int) -> Int { (floats + 15) / 16 * 16 }

  var keyBiasOffset: Int { Self.aligned(arenaFloats) }
  var scratchOffset: Int { keyBiasOffset + Self.aligned(keyBiasFloats) }
  /// The largest need of one op (16 floats when no op needs any).
  func scratchFloats(threads: Int) -> Int { Self.aligned(scratchNeeds.map { $0.floats(threads: threads) }.max() ?? 16) }
  func floats(threads: Int) -> Int { scratchOffset + scratchFloats(threads: threads) }
  var ints: Int { intArenaInts + intScratchInts }
  /// `vit_<model>_profile` (an int) and `vit_<model>_stage_seconds` (a double per stage).
  var profileBytes: Int { 4 + 8 * stageFunctions }
  func bytes(threads: Int) -> Int { 4 * floats(threads: threads) + 4 * ints + profileBytes }
}
