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

  func run() throws {
    try reportingErrors {
      let graph = try GraphLoader.load(path: self.graph)
      let fvcore = FlopCounter.report(graph, convention: .fvcore)
      let torchprofile = FlopCounter.report(graph, convention: .torchprofile)
      let width = max(grouped(fvcore.totalMACs).count, grouped(torchprofile.totalMACs).count)
      func pad(_ text: String, _ count: Int) -> String {
        String(repeating: " ", count: max(0, count - text.count)) + text
      }
      print("\(graph.name): multiply-adds (1 MAC = 1 FLOP)")
      print("stage     tokens  \(pad("fvcore", width))  \(pad("torchprofile", width))")
      for (row, other) in zip(fvcore.rows, torchprofile.rows) {
        let name = row.name.padding(toLength: 9, withPad: " ", startingAt: 0)
        print("\(name) \(pad(row.tokens == 0 ? "-" : String(row.tokens), 6))  \(pad(grouped(row.macs), width))  \(pad(grouped(other.macs), width))")
      }
      print("total               \(pad(grouped(fvcore.totalMACs), width))  \(pad(grouped(torchprofile.totalMACs), width))")
      print("parameters          \(pad(grouped(fvcore.parameters), width))")
    }
  }
}
