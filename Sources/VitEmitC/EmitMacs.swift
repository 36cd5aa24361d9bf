import VitIR
import VitPasses

extension ModelEmitter {
  /// `vit_<model>_macs`: FlopCounter's polynomial for the graph, its symbols read from the trace.
  func macsFunction(into w: inout CWriter) {
    let polynomial = FlopCounter.polynomial(of: graph, convention: .fvcore)
    let places = FlopCounter.traceSymbols(of: graph)
    var bounds: [TokenCount: Int] = [:]
    for value in graph.values {
      for case .dynamic(let symbol, let bound) in value.type.dims { bounds[symbol] = bound }
    }
    w.block("long long vit_\(model)_macs(const struct vit_\(model)_trace *trace)") { w in
      let symbols = polynomial.symbols
      if symbols.isEmpty { w.line("(void)trace;") }
      for symbol in symbols {
        // A symbol the trace does not give stays at its bound (there is none today).
        let bound = bounds[symbol] ?? 0
        if let (stage, offset) = places[symbol] {
          let adjust = offset == 0 ? "" : offset < 0 ? " - \(-offset)" : " + \(offset)"
          w.line("const long long \(symbol) = (long long)trace->tokens[\(stage)]\(adjust); /* at most \(bound) */")
        } else {
          w.line("const long long \(symbol) = \(bound);")
        }
      }
      let terms = polynomial.sortedTerms.map { term in
        (["\(term.coefficient)LL"] + term.monomial.map(\.spelling)).joined(separator: " * ")
      }
      w.line("return \(terms.isEmpty ? "0" : terms.joined(separator: " + "));")
    }
  }
}
