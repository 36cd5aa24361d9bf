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
  /// `--embed-weights hex` asked of a model whose weights are not all float32 (int8 blocks).
  case hexNeedsFloatWeights
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
    case .hexNeedsFloatWeights:
      "error: --embed-weights hex writes float32 arrays, but this model's int8 or bf16 weights are not: use --embed-weights incbin or file"
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
    /// In which number format: the weight of a linear the Quantize pass converted is not
    /// float32 (`floats` then counts 4-byte words).
    public var precision: Precision = .f32
    /// Stored in another format than float32.
    public var quantized: Bool { precision != .f32 }

    public static func == (a: Entry, b: Entry) -> Bool {
      a.name == b.name && a.offset == b.offset && a.floats == b.floats && a.packed?.n == b.packed?.n
        && a.packed?.k == b.packed?.k && a.precision == b.precision
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

  /// Parameters that are the weight of a linear in another precision than f32, with it
  /// (`OpAttributes.precision`; the Quantize pass keeps a shared weight's readers in one).
  static func quantizedWeights(_ graph: Graph) -> [ValueID: Precision] {
    var weights: [ValueID: Precision] = [:]
    for op in graph.ops where op.kind.isLinear && op.attributes.precision != .f32 { weights[op.operands[1]] = op.attributes.precision }
    return weights
  }

  /// `W[n][k]` → bf16 panels (Runtime/include/vit_bf16.h): the float panel layout (`pack`),
  /// each value rounded by BFloat16, two bytes each, little-endian.
  public static func bf16Panels(_ w: [Float], n: Int, k: Int) -> [UInt8] {
    pack(w, n: n, k: k).flatMap { value -> [UInt8] in
      let bits = BFloat16.bits(value)
      return [UInt8(truncatingIfNeeded: bits), UInt8(truncatingIfNeeded: bits >> 8)]
    }
  }

  /// The bytes a weight of `n` outputs by `k` inputs takes in `precision`.
  static func bytes(_ precision: Precision, n: Int, k: Int) -> Int {
    let panelFloats = (n + panelWidth - 1) / panelWidth * panelWidth * k
    switch precision {
    case .f32: return 4 * panelFloats
    case .bf16: return (2 * panelFloats + 3) / 4 * 4
    case .int8: return int8BlockBytes(n: n, k: k)
    }
  }

  /// The bytes of an int8 weight block of `W[n][k]` (VIT_QWEIGHT_BYTES).
  public static func int8BlockBytes(n: Int, k: Int) -> Int {
    let paddedN = (n + panelWidth - 1) / panelWidth * panelWidth
    return paddedN * ((k + 3) / 4 * 4) + 8 * paddedN
  }

  /// `W[n][k]` → the int8 weight block vit_linear_s8 reads (Runtime/include/vit_qgemm.h), each
  /// row quantized by Int8Quantization: the int8 panels, 16 columns by 4 consecutive k per
  /// 64 bytes (`packed[((p·K/4 + g)·16 + j)·4 + t] = Wq[16p + j][4g + t]`, K = k rounded up to
  /// 4, zero past n and k), then a float scale and an int32 sum of Wq per padded column.
  public static func int8Block(_ w: [Float], n: Int, k: Int) -> [UInt8] {
    let paddedN = (n + panelWidth - 1) / panelWidth * panelWidth
    let groups = (k + 3) / 4
    var bytes = [UInt8](repeating: 0, count: int8BlockBytes(n: n, k: k))
    let scales = paddedN * groups * 4
    let sums = scales + 4 * paddedN
    func put(_ word: UInt32, at offset: Int) {
      for byte in 0..<4 { bytes[offset + byte] = UInt8(truncatingIfNeeded: word >> (8 * byte)) }
    }
    for row in 0..<n {
      let (q, scale) = Int8Quantization.quantize(w[row * k..<(row + 1) * k])
      let (p, j) = (row / panelWidth, row % panelWidth)
      for kk in 0..<k {
        bytes[((p * groups + kk / 4) * panelWidth + j) * 4 + kk % 4] = UInt8(bitPattern: q[kk])
      }
      put(scale.bitPattern, at: scales + 4 * row)
      put(UInt32(bitPattern: q.reduce(Int32(0)) { $0 + Int32($1) }), at: sums + 4 * row)
    }
    return bytes
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
    let shapes = packedShapes(graph)
    let packing = packGEMMWeights ? shapes : [:]
    let quantized = quantizedWeights(graph)
    var entries: [ValueID: Entry] = [:]
    var size = 0
    func aligned(_ offset: Int) -> Int { (offset + alignment - 1) / alignment * alignment }
    for parameter in graph.parameters {
      var floats = graph.type(of: parameter).boundCount
      let packed = packing[parameter]
      if let shape = packed { floats = (shape.n + panelWidth - 1) / panelWidth * panelWidth * shape.k }
      size = aligned(size)
      if let precision = quantized[parameter], let shape = shapes[parameter] {
        let bytes = bytes(precision, n: shape.n, k: shape.k)
        entries[parameter] = Entry(name: graph[parameter].name, offset: size, floats: bytes / 4, packed: shape, precision: precision)
        size += bytes
        continue
      }
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
      if entry.quantized, let shape = entry.packed {
        let block =
          entry.precision == .int8 ? int8Block(tensor.scalars, n: shape.n, k: shape.k) : bf16Panels(tensor.scalars, n: shape.n, k: shape.k)
        bytes.replaceSubrange(entry.offset..<entry.offset + block.count, with: block)
        continue
      }
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
