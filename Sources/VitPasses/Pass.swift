import VitIR

/// The stages of the pipeline, in order: each one the output of a pass over the one before,
/// except `parsed` (the front end's output) and `planned` (the last graph with its memory plan,
/// `PlanMemory`, which rewrites nothing). The raw value is the spelling of `vitc dump --stage`.
public enum Stage: String, Sendable, CaseIterable, Comparable {
  case parsed
  case fusedAttention = "fused-attention"
  case pruned
  case fusedEpilogues = "fused-epilogues"
  case quantized
  case planned

  public static func < (a: Stage, b: Stage) -> Bool {
    allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
  }
}

/// A rewrite of the IR that produces one stage. Passes are values and compose; every stage the
/// pipeline produces is verified and can be dumped (`vitc dump --stage NAME`).
public struct Pass: Sendable {
  /// The stage the pass's output is.
  public var stage: Stage
  public var run: @Sendable (Graph) throws(IRError) -> Graph

  public init(stage: Stage, run: @escaping @Sendable (Graph) throws(IRError) -> Graph) {
    self.stage = stage
    self.run = run
  }

  /// Runs the pass and verifies its output.
  public func apply(_ graph: Graph) throws(IRError) -> Graph {
    let result = try run(graph)
    try Verifier.check(result)
    return result
  }
}

/// The pipeline: the passes in order.
///
/// Pruning runs after attention fusion: every method keys on the block's `attention` op (its
/// qkv for scores and keys, its context for AS-ViT, its optional size operand for ToMe), so
/// matching the primitive softmax(q·kᵀ)·v pattern again would only repeat FuseAttention.
/// Epilogue fusion runs on the pruned sequence; quantization last, so that it sees the fused
/// linears (their epilogues are the dequantization's) and the pruning ops it leaves in float.
public enum Pipeline {
  /// The passes for a schedule and a precision (`InsertPruning` leaves a dense graph as it is,
  /// `Quantize` an f32 one).
  public static func passes(_ schedule: Schedule, precision: Precision = .f32) -> [Pass] {
    [FuseAttention.pass, InsertPruning.pass(schedule), FuseEpilogues.pass, Quantize.pass(precision)]
  }

  /// The graph at `stage`, running every pass up to it (`planned` is the last pass's graph:
  /// plan its memory with `PlanMemory.plan`).
  public static func run(
    _ graph: Graph, through stage: Stage = .planned, schedule: Schedule = .none, precision: Precision = .f32
  ) throws(IRError) -> Graph {
    var current = graph
    for pass in passes(schedule, precision: precision) where pass.stage <= stage {
      current = try pass.apply(current)
    }
    return current
  }
}
