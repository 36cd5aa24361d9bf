import ArgumentParser
import VitFrontend
import VitIR
import VitPasses

struct Flops: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Count multiply-adds per block and the parameters of a model.",
    discussion: """
      Prints, per stretch of the graph (stem, each block, head), the tokens it runs on and its \
      multiply-adds in the two conventions the papers use (SEMANTICS.md §7): fvcore (DeiT, \
      DynamicViT; LayerNorm 5 per element, no elementwise ops) and torchprofile (EViT, BAT; \
      LayerNorm 1 per element, the attention scaling 1 per element). One multiply-add counts \
      as one FLOP. Needs no weights.
      """)

  @Argument(help: "The model graph (.graph file).")
  var graph: String

  @OptionGroup var pruning: PruneOptions

  func run() throws {
    try reportingErrors {
      let parsed = try GraphLoader.load(path: self.graph)
      let schedule = try resolveSchedule(pruning.prune, for: parsed, weights: nil)
      let graph = try Pipeline.run(parsed, through: "pruned", schedule: schedule)
      let fvcore = FlopCounter.report(graph, convention: .fvcore)
      let torchprofile = FlopCounter.report(graph, convention: .torchprofile)
      let width = max(grouped(fvcore.totalMACs).count, grouped(torchprofile.totalMACs).count)
      func pad(_ text: String, _ count: Int) -> String {
        String(repeating: " ", count: max(0, count - text.count)) + text
      }
      print("\(graph.name), --prune \(schedule.spec): multiply-adds (1 MAC = 1 FLOP)")
      print("stage        tokens  \(pad("fvcore", width))  \(pad("torchprofile", width))")
      for (row, other) in zip(fvcore.rows, torchprofile.rows) {
        let name = row.name.padding(toLength: 9, withPad: " ", startingAt: 0)
        let tokens =
          row.tokens == 0 ? "-" : row.tokensOut != row.tokens && row.tokensOut != 0 ? "\(row.tokens)→\(row.tokensOut)" : "\(row.tokens)"
        print("\(name) \(pad(tokens, 9))  \(pad(grouped(row.macs), width))  \(pad(grouped(other.macs), width))")
      }
      print("total                  \(pad(grouped(fvcore.totalMACs), width))  \(pad(grouped(torchprofile.totalMACs), width))")
      print("parameters             \(pad(grouped(fvcore.parameters), width))")
    }
  }
}
