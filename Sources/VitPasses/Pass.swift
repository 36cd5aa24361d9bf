import VitIR

/// A named rewrite of the IR. Passes are values and compose; every stage the pipeline
/// produces is verified and can be dumped (`vitc dump --stage NAME`).
public struct Pass: Sendable {
  /// The stage name the pass's output is dumped under.
  public var name: String
  public var run: @Sendable (Graph) throws(IRError) -> Graph

  public init(name: String, run: @escaping @Sendable (Graph) throws(IRError) -> Graph) {
    self.name = name
    self.run = run
  }

  /// Runs the pass and verifies its output.
  public func apply(_ graph: Graph) throws(IRError) -> Graph {
    let result = try run(graph)
    try Verifier.check(result)
    return result
  }
}

/// The pipeline stages in order, each the output of one pass over the previous stage.
///
/// Pruning runs after attention fusion: every method keys on the block's `attention` op (its
/// qkv for scores and keys, its context for AS-ViT, its optional size operand for ToMe), so
/// matching the primitive softmax(q·kᵀ)·v pattern again would only repeat FuseAttention.
/// Epilogue fusion runs last, on the pruned sequence.
public enum Pipeline {
  /// Stage names for `vitc dump --stage`, in order; `parsed` is the front end's output.
  public static let stages = ["parsed"] + passes(.none).map(\.name)

  /// The passes for a schedule (`InsertPruning` leaves a dense graph as it is).
  public static func passes(_ schedule: Schedule) -> [Pass] {
    [FuseAttention.pass, InsertPruning.pass(schedule), FuseEpilogues.pass]
  }

  /// The graph at `stage`, running every pass up to it.
  public static func run(_ graph: Graph, through stage: String, schedule: Schedule = .none) throws(IRError) -> Graph {
    var current = graph
    for pass in passes(schedule) {
      if stages.firstIndex(of: stage)! < stages.firstIndex(of: pass.name)! { break }
      current = try pass.apply(current)
    }
    return current
  }
}
