import Foundation
import VitIR

/// Errors emitting C. Each names the op and where the user wrote it.
public enum EmitError: Error, Equatable, CustomStringConvertible {
  /// An op the C backend cannot emit yet.
  case unsupported(OpKind, reason: String, at: SourceLocation?)
  /// A parameter without a tensor.
  case missingWeight(String)
  /// A graph input whose shape is not static (the entry point takes fixed-size inputs).
  case dynamicInput(String, TensorType, at: SourceLocation?)

  public var description: String {
    switch self {
    case .unsupported(let kind, let reason, let at):
      "\(at.map { "\($0): " } ?? "")error: the C backend cannot emit '\(kind.rawValue)': \(reason)"
    case .missingWeight(let name):
      "error: no tensor for parameter '@\(name)'"
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
  public var bytes: [UInt8]

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
      case .linear, .linearGelu, .linearAdd, .linearScaleAdd, .patchEmbed:
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

  /// `packGEMMWeights: false` keeps every weight as stored ([n][k] row-major), for the
  /// runtime built with -DVIT_BLAS_OPENBLAS, whose cblas_sgemm reads them so.
  public static func build(_ graph: Graph, weights: [String: Tensor], packGEMMWeights: Bool = true) throws(EmitError) -> WeightBlob {
    let packing = packGEMMWeights ? packedShapes(graph) : [:]
    var entries: [ValueID: Entry] = [:]
    var bytes: [UInt8] = []
    for parameter in graph.parameters {
      let name = graph[parameter].name
      guard let tensor = weights[name] else { throw .missingWeight(name) }
      var floats = tensor.scalars
      var packed: (n: Int, k: Int)? = nil
      if let shape = packing[parameter] {
        floats = pack(floats, n: shape.n, k: shape.k)
        packed = shape
      }
      while bytes.count % alignment != 0 { bytes.append(0) }
      entries[parameter] = Entry(name: name, offset: bytes.count, floats: floats.count, packed: packed)
      bytes.reserveCapacity(bytes.count + 4 * floats.count)
      for value in floats {
        let bits = value.bitPattern
        bytes.append(UInt8(truncatingIfNeeded: bits))
        bytes.append(UInt8(truncatingIfNeeded: bits >> 8))
        bytes.append(UInt8(truncatingIfNeeded: bits >> 16))
        bytes.append(UInt8(truncatingIfNeeded: bits >> 24))
      }
    }
    while bytes.count % alignment != 0 { bytes.append(0) }
    return WeightBlob(entries: entries, bytes: bytes)
  }
}
