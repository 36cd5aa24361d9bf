import ArgumentParser
import VitDriver
import VitPasses

struct Dump: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print the IR of a model at a stage of the pipeline.",
    discussion: """
      The output is itself a valid .graph file (flat, every value typed, blocks kept), so it \
      can be read back by every vitc command. Stages, in pipeline order: parsed (after \
      reading, expanding blocks and inferring shapes), fused-attention (softmax(q·kᵀ·s)·v \
      recognized as one attention op), pruned (the --prune schedule's scoring, selection and \
      merging ops inserted), fused-epilogues (GELU and residual adds folded into \
      the linear before them), planned (the last stage with each value's place in the static \
      arena as a comment).
      """)

  @Option(help: ArgumentHelp("The stage to print: \(Stage.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "stage"))
  var stage: Stage = .parsed

  @Argument(help: "The model graph (.graph file).")
  var graph: String

  @OptionGroup var pruning: PruneOptions

  @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file instead of standard output.", valueName: "file"))
  var output: String?

  func run() throws {
    try reportingErrors {
      var session = try CompileSession(graph: graph, weights: .none, prune: pruning.prune)
      session.precision = pruning.precision
      let text = try session.dump(stage: stage)
      if let output {
        try Output.check(output, against: session.inputs)
        try Output.write(text, to: output)
      } else {
        print(text, terminator: "")
      }
    }
  }
}

extension Stage: ExpressibleByArgument {}
