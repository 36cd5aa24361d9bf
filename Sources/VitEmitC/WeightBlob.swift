import Foundation
import VitIR

/// Errors emitting C. Each names the op and where the user wrote it.
public enum EmitError: Error, Equatable, CustomStringConvertible {
  /// An op the C backend cannot emit yet.
  case unsupported(OpKind, reason: String, at: SourceLocation?)
  /// A parameter without a tensor.
  case missingWeight(String)
  /// A parameter of more dimensions than the run-time weights loader reads (4).
  case parameterRank(String, rank: Int, at: SourceLocation?)
  /// A graph input whose shape is not static (the entry point takes fixed-size inputs).
  case dynamicInput(String, TensorType, at: SourceLocation?)

  public var description: String {
    switch self {
    case .unsupported(let kind, let reason, let at):
      "\(at.map { "\($0): " } ?? "")error: the C backend cannot emit '\(kind.rawValue)': \(reason)"
    case .missingWeight(let name):
      "error: no tensor for parameter '@\(name)'"
    case .parameterRank(let name, let rank, let at):
      "\(at.map { "\($0): " } ?? "")error: parameter '@\(name)' has \(rank) dimensions; a model that loads its weights at run time reads at most 4"
    case .dynamicInput(let name, let type, let at):
      "\(at.map { "\($0): " } ?? "")error: the C backend needs a static input shape, but '\(name)' is \(type) (run-time token counts come from pruning only)"
    }
  }
}

/// All parameters laid out in one aligned byte blob (little-endian float32). The weights of
/// linears and of the patch embedding are stored pre-packed in the layout the GEMM reads
/// (Runtime/include/vit_runtime.h, `VIT_NR`-column panels); everything else as it is.
public struct WeightBlob: Sendable {
  public struct Entry: Sendable, Equatable {
    public var name: String
    /// Byte offset into the blob, a multiple of `alignment`.
    public var offset: Int
    /// Floats stored (a packed weight is padded to whole panels).
    public var floats: Int
    /// Set when stored packed: the GEMM's n (outputs) and k (inputs).
    public var packed: (n: Int, k: Int)?

    public static func == (a: Entry, b: Entry) -> Bool {
      a.name == b.name && a.offset == b.offset && a.floats == b.floats && a.packed?.n == b.packed?.n
        && a.packed?.k == b.packed?.k
    }
  }

  /// Columns per packed panel; must equal VIT_NR in the runtime.
  public static let panelWidth = 16
  /// Byte alignment of every entry (and of the blob).
  public static let alignment = 64

  public var entries: [ValueID: Entry]
  /// The blob's bytes; empty for a layout alone (weights loaded at run time).
  public var bytes: [UInt8]
  /// The blob's size in bytes, a multiple of `alignment` (`bytes.count` once filled).
  public var size: Int

  /// FNV-1a 64 of the bytes: the content hash in the provenance header.
  public var hash: UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
      hash ^= UInt64(byte)
      hash = hash &* 0x0000_0100_0000_01b3
    }
    return hash
  }

  /// Parameters read as the weight matrix of a GEMM: (n, k) for each.
  static func packedShapes(_ graph: Graph) -> [ValueID: (n: Int, k: Int)] {
    var shapes: [ValueID: (n: Int, k: Int)] = [:]
    for op in graph.ops {
      switch op.kind {
      case .linear, .linearGelu, .linearAdd, .linearScaleAdd, .patchEmbed, .auxHeadMax:
        let weight = op.operands[1]
        if graph[weight].origin == .parameter {
          let shape = graph.type(of: weight).fixedShape!
          shapes[weight] = (shape[0], shape.dropFirst().reduce(1, *))
        }
      default:
        break
      }
    }
    return shapes
  }

  /// `W[n][k]` → panels of `panelWidth` outputs: `packed[(p·k + kk)·16 + j] = W[p·16 + j][kk]`.
  public static func pack(_ w: [Float], n: Int, k: Int) -> [Float] {
    let panels = (n + panelWidth - 1) / panelWidth
    var packed = [Float](repeating: 0, count: panels * k * panelWidth)
    for p in 0..<panels {
      for j in 0..<panelWidth where p * panelWidth + j < n {
        let row = (p * panelWidth + j) * k
        for kk in 0..<k { packed[(p * k + kk) * panelWidth + j] = w[row + kk] }
      }
    }
    return packed
  }

  /// Where each parameter goes and the blob's size, from the graph alone: what a model that
  /// loads its weights at run time is compiled with. `packGEMMWeights: false` keeps every weight
  /// as stored ([n][k] row-major), for the runtime built with -DVIT_BLAS_OPENBLAS, whose
  /// cblas_sgemm reads them so.
  public static func layout(_ graph: Graph, packGEMMWeights: Bool = true) -> WeightBlob {
    let packing = packGEMMWeights ? packedShapes(graph) : [:]
    var entries: [ValueID: Entry] = [:]
    var size = 0
    func aligned(_ offset: Int) -> Int { (offset + alignment - 1) / alignment * alignment }
    for parameter in graph.parameters {
      var floats = graph.type(of: parameter).boundCount
      let packed = packing[parameter]
      if let shape = packed { floats = (shape.n + panelWidth - 1) / panelWidth * panelWidth * shape.k }
      size = aligned(size)
      entries[parameter] = Entry(name: graph[parameter].name, offset: size, floats: floats, packed: packed)
      size += 4 * floats
    }
    return WeightBlob(entries: entries, bytes: [], size: aligned(size))
  }

  /// The blob of `weights` in `layout(graph, packGEMMWeights:)`, zeros between entries.
  public static func build(_ graph: Graph, weights: [String: Tensor], packGEMMWeights: Bool = true) throws(EmitError) -> WeightBlob {
    var blob = layout(graph, packGEMMWeights: packGEMMWeights)
    var bytes = [UInt8](repeating: 0, count: blob.size)
    for parameter in graph.parameters {
      let entry = blob.entries[parameter]!
      guard let tensor = weights[entry.name] else { throw .missingWeight(entry.name) }
      var floats = tensor.scalars
      if let shape = entry.packed { floats = pack(floats, n: shape.n, k: shape.k) }
      precondition(floats.count == entry.floats, "tensor '\(entry.name)' does not fill its place in the blob")
      var at = entry.offset
      for value in floats {
        let bits = value.bitPattern
        bytes[at] = UInt8(truncatingIfNeeded: bits)
        bytes[at + 1] = UInt8(truncatingIfNeeded: bits >> 8)
        bytes[at + 2] = UInt8(truncatingIfNeeded: bits >> 16)
        bytes[at + 3] = UInt8(truncatingIfNeeded: bits >> 24)
        at += 4
      }
    }
    blob.bytes = bytes
    return blob
  }
}
