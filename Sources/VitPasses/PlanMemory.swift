import VitIR

/// Where every intermediate value lives in one static arena, sized for the worst case (every
/// dynamic token count at its bound), as ggml's worst-case allocator does. Values whose
/// lifetimes do not overlap share memory.
public struct MemoryPlan: Sendable, Equatable {
  /// How a value is stored.
  public enum Placement: Sendable, Equatable {
    /// `floats` floats at `offset` floats into the arena.
    case arena(offset: Int, floats: Int)
    /// `ints` 32-bit integers at `offset` into the integer arena (index and owner values of
    /// the pruning ops; kept apart so that C never reads a float slot as an int).
    case intArena(offset: Int, ints: Int)
    /// The same memory as another value (or parameter) at an offset in floats: `reshape`
    /// and `row` are views, not copies.
    case view(of: ValueID, offset: Int)
    /// A graph input, passed in by the caller.
    case input
    /// A parameter, in the weights blob.
    case parameter
  }

  public var placements: [ValueID: Placement]
  /// Arena size in floats (a multiple of `alignment`).
  public var arenaFloats: Int
  /// Integer arena size in ints (a multiple of `alignment`).
  public var intArenaInts: Int = 0
  /// Slots start at multiples of this many floats (64 bytes).
  public static let alignment = 16

  /// The storage a value finally lives in and the offset within it, following views.
  public func root(of id: ValueID) -> (ValueID, offset: Int) {
    var current = id
    var offset = 0
    while case .view(let base, let extra)? = placements[current] {
      current = base
      offset += extra
    }
    return (current, offset)
  }
}

/// Liveness analysis plus greedy-by-size offset assignment (TFLite's arena planner): the
/// largest buffers are placed first, each at the lowest offset that no buffer alive at the same
/// time occupies.
public enum PlanMemory {
  public static func plan(_ graph: Graph) -> MemoryPlan {
    var placements: [ValueID: MemoryPlan.Placement] = [:]
    for input in graph.inputs { placements[input] = .input }
    for parameter in graph.parameters { placements[parameter] = .parameter }

    // Views first, so that lifetimes can be extended to their bases.
    for op in graph.ops {
      switch op.kind {
      case .reshape:
        placements[op.results[0]] = .view(of: op.operands[0], offset: 0)
      case .row:
        guard case .row(let index) = op.attributes else { op.attributesMismatch() }
        let width = graph.type(of: op.operands[0]).dims[1].bound
        placements[op.results[0]] = .view(of: op.operands[0], offset: index * width)
      case .patchTokens:
        let width = graph.type(of: op.operands[0]).dims[1].bound
        placements[op.results[0]] = .view(of: op.operands[0], offset: op.attributes.prefix * width)
      case .traceStage:
        placements[op.results[0]] = .view(of: op.operands[1], offset: 0)
      default:
        break
      }
    }
    let plan = MemoryPlan(placements: placements, arenaFloats: 0)

    // Lifetimes in op indices: [definition, last use], the output alive to the end.
    var first: [ValueID: Int] = [:]
    var last: [ValueID: Int] = [:]
    for (index, op) in graph.ops.enumerated() {
      for result in op.results where placements[result] == nil { first[result] = index }
      for operand in op.operands {
        let (root, _) = plan.root(of: operand)
        if first[root] != nil { last[root] = index }
      }
    }
    if let output = graph.output {
      let (root, _) = plan.root(of: output)
      if first[root] != nil { last[root] = graph.ops.count }
    }

    func rounded(_ floats: Int) -> Int {
      (floats + MemoryPlan.alignment - 1) / MemoryPlan.alignment * MemoryPlan.alignment
    }
    let buffers = first.keys.map { id in
      (id: id, floats: rounded(graph.type(of: id).boundCount), from: first[id]!, to: last[id] ?? first[id]!)
    }.sorted { ($0.floats, $1.id) > ($1.floats, $0.id) }

    /// Greedy by size over one arena's buffers; returns the arena's size.
    func assign(_ dtype: DType) -> Int {
      var placed: [(offset: Int, floats: Int, from: Int, to: Int)] = []
      var arena = 0
      for buffer in buffers where graph.type(of: buffer.id).dtype == dtype {
        let overlapping = placed.filter { $0.from <= buffer.to && buffer.from <= $0.to }.sorted { $0.offset < $1.offset }
        var offset = 0
        for other in overlapping {
          if offset + buffer.floats <= other.offset { break }
          offset = max(offset, other.offset + other.floats)
        }
        placed.append((offset, buffer.floats, buffer.from, buffer.to))
        placements[buffer.id] =
          dtype == .f32 ? .arena(offset: offset, floats: buffer.floats) : .intArena(offset: offset, ints: buffer.floats)
        arena = max(arena, offset + buffer.floats)
      }
      return arena
    }
    let arena = assign(.f32)
    let intArena = assign(.i32)
    var result = MemoryPlan(placements: placements, arenaFloats: arena)
    result.intArenaInts = intArena
    return result
  }

  /// The sum of all buffers without reuse, for reports.
  public static func unsharedFloats(_ plan: MemoryPlan) -> Int {
    plan.placements.values.reduce(0) { total, placement in
      switch placement {
      case .arena(_, let floats), .intArena(_, let floats): return total + floats
      default: return total
      }
    }
  }
}
