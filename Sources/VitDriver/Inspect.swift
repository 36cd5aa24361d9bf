import Foundation
import VitFrontend
import VitIR
import VitInterpreter
import VitPasses

extension CompileSession {
  /// With a precision other than f32: the fvcore multiply-adds of the ops that run in it and of
  /// all ops, every run-time count at its bound (nil for f32).
  public func reducedPrecisionMACs() throws -> (reduced: Int, total: Int)? {
    guard precision != .f32 else { return nil }
    let graph = try self.graph(at: .quantized)
    func macs(_ ops: [Op]) -> Int { ops.reduce(0) { $0 + FlopCounter.macs(of: $1, in: graph, convention: .fvcore) } }
    return (macs(graph.ops.filter { $0.attributes.precision == precision }), macs(graph.ops))
  }

  /// Multiply-adds in both conventions (SEMANTICS.md §7). Without images: of the graph, every
  /// run-time count at its bound. With images (AS-ViT's counts depend on them): the row-wise
  /// mean over the images' runs; `perImage` is told each image's stages.
  public func flops(images: [String] = [], perImage: (String, [Trace.Stage]) -> Void = { _, _ in }) throws -> (
    graph: Graph, fvcore: FlopReport, torchprofile: FlopReport
  ) {
    if images.isEmpty {
      let graph = try self.graph(at: .pruned)
      return (graph, FlopCounter.report(graph, convention: .fvcore), FlopCounter.report(graph, convention: .torchprofile))
    }
    let loaded = try model(at: .pruned)
    let interpreter = try Interpreter(graph: loaded.graph, weights: loaded.weights)
    var fvcore: [FlopReport] = []
    var torchprofile: [FlopReport] = []
    for path in images {
      let input = Preprocessing.evaluation(try PPM.read(path: path), for: loaded.graph)
      let (_, stages) = try interpreter.runTraced([input])
      let counts = FlopCounter.counts(of: loaded.graph, stages: stages.map(\.tokens))
      fvcore.append(FlopCounter.report(loaded.graph, convention: .fvcore, counts: counts))
      torchprofile.append(FlopCounter.report(loaded.graph, convention: .torchprofile, counts: counts))
      perImage(path, stages)
    }
    return (loaded.graph, Self.average(fvcore), Self.average(torchprofile))
  }

  /// The row-wise mean of reports of the same graph (MACs and tokens rounded to the nearest
  /// integer).
  static func average(_ reports: [FlopReport]) -> FlopReport {
    guard var result = reports.first, reports.count > 1 else { return reports[0] }
    for index in result.rows.indices {
      func mean(_ value: (FlopReport.Row) -> Int) -> Int {
        Int((Double(reports.map { value($0.rows[index]) }.reduce(0, +)) / Double(reports.count)).rounded())
      }
      result.rows[index].macs = mean(\.macs)
      result.rows[index].tokens = mean(\.tokens)
      result.rows[index].tokensOut = mean(\.tokensOut)
    }
    return result
  }

  /// The IR at `stage` as a .graph file; at `planned`, each value's place in static memory.
  public func dump(stage: Stage) throws -> String {
    let graph = try self.graph(at: stage)
    var header = "vitc \(vitcVersion) IR, stage \(stage.rawValue), from \(graphPath), --prune \(schedule.spec)"
    var annotate: (Op) -> String? = { _ in nil }
    if stage == .planned {
      let plan = PlanMemory.plan(graph)
      header += "\narena: \(grouped(plan.arenaFloats * 4)) bytes (\(grouped(PlanMemory.unsharedFloats(plan) * 4)) without reuse)"
      header += ", integer arena: \(grouped(plan.intArenaInts * 4)) bytes"
      annotate = { op in
        op.results.map { result in
          switch plan.placements[result] {
          case .arena(let offset, let floats)?: "arena[\(offset) ..< \(offset + floats)]"
          case .intArena(let offset, let ints)?: "int arena[\(offset) ..< \(offset + ints)]"
          case .view(let base, let offset)?: "view of \(graph[base].name) at +\(offset)"
          case .input?: "input"
          case .parameter?: "parameter"
          case nil: "unplaced"
          }
        }.joined(separator: ", ")
      }
    }
    return Printer.print(graph, header: header, annotate: annotate)
  }
}
