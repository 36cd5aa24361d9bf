import ArgumentParser
import VitFrontend
import VitIR
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

  @Option(help: ArgumentHelp("The stage to print: \(stages.joined(separator: ", ")).", valueName: "stage"))
  var stage: String = "parsed"

  @Argument(help: "The model graph (.graph file).")
  var graph: String

  @OptionGroup var pruning: PruneOptions

  @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file instead of standard output.", valueName: "file"))
  var output: String?

  static let stages = Pipeline.stages + ["planned"]

  func validate() throws {
    guard Self.stages.contains(stage) else {
      throw ValidationError("unknown stage '\(stage)'; stages: \(Self.stages.joined(separator: ", "))")
    }
  }

  func run() throws {
    try reportingErrors {
      let parsed = try GraphLoader.load(path: self.graph)
      let schedule = try resolveSchedule(pruning.prune, for: parsed, weights: nil)
      let graph = try Pipeline.run(parsed, through: stage == "planned" ? Pipeline.stages.last! : stage, schedule: schedule)
      var header = "vitc \(vitcVersion) IR, stage \(stage), from \(self.graph), --prune \(schedule.spec)"
      var annotate: (Op) -> String? = { _ in nil }
      if stage == "planned" {
        let plan = PlanMemory.plan(graph)
        header += "\narena: \(grouped(plan.arenaFloats * 4)) bytes (\(grouped(PlanMemory.unsharedFloats(plan) * 4)) without reuse)"
        annotate = { op in
          op.results.map { result in
            switch plan.placements[result] {
            case .arena(let offset, let floats)?: "arena[\(offset) ..< \(offset + floats)]"
            case .view(let base, let offset)?: "view of \(graph[base].name) at +\(offset)"
            default: "?"
            }
          }.joined(separator: ", ")
        }
      }
      let text = Printer.print(graph, header: header, annotate: annotate)
      if let output {
        try writeAtomically(text, to: output)
      } else {
        print(text, terminator: "")
      }
    }
  }
}
