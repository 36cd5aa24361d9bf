import TestSupport
import Testing
import VitFrontend
import VitIR

@testable import VitPasses

@Suite struct PlanMemoryTests {
  /// No two values alive at the same time share a float, every buffer fits its bound, and
  /// reuse makes the arena much smaller than the sum of buffers.
  @Test(arguments: [Stage.parsed, .fusedEpilogues])
  func liveValuesNeverOverlap(stage: Stage) throws {
    let parsed = try GraphLoader.load(path: repositoryRoot.appendingPathComponent("samples/deit-s.graph").path)
    let graph = try Pipeline.run(parsed, through: stage)
    let plan = PlanMemory.plan(graph)
    var interval: [ValueID: (from: Int, to: Int)] = [:]
    for (index, op) in graph.ops.enumerated() {
      for result in op.results { interval[plan.root(of: result).0] = interval[plan.root(of: result).0] ?? (index, index) }
      for operand in op.operands {
        let root = plan.root(of: operand).0
        if let current = interval[root] { interval[root] = (current.from, index) }
      }
    }
    let buffers: [(id: ValueID, offset: Int, floats: Int)] = plan.placements.compactMap { id, placement in
      if case .arena(let offset, let floats) = placement { return (id, offset, floats) }
      return nil
    }
    for buffer in buffers {
      #expect(buffer.offset % MemoryPlan.alignment == 0)
      #expect(buffer.floats >= graph.type(of: buffer.id).boundCount)
      #expect(buffer.offset + buffer.floats <= plan.arenaFloats)
    }
    for (i, a) in buffers.enumerated() {
      for b in buffers[(i + 1)...] {
        let (x, y) = (interval[a.id]!, interval[b.id]!)
        let liveTogether = x.from <= y.to && y.from <= x.to
        let shareMemory = a.offset < b.offset + b.floats && b.offset < a.offset + a.floats
        #expect(!(liveTogether && shareMemory), "\(graph[a.id].name) and \(graph[b.id].name)")
      }
    }
    #expect(plan.arenaFloats * 10 < PlanMemory.unsharedFloats(plan))
    // Views: the cls row of the final norm, the reshaped cls token and position embedding.
    #expect(plan.placements.values.filter { if case .view = $0 { true } else { false } }.count == 3)
  }

  /// A dynamic token count is planned at its bound.
  @Test func dynamicValuesGetTheirBound() throws {
    let graph = try GraphLoader.parse(
      "graph g(x: f32[n<=10,4]) -> f32[n<=10,4] {\n  y = gelu(x)\n  z = gelu(y)\n  return z\n}\n", file: "g.graph")
    let plan = PlanMemory.plan(graph)
    #expect(plan.placements[graph.output!] == .arena(offset: 48, floats: 48))
    #expect(plan.arenaFloats == 96)
  }
}
