import VitIR

/// How the weights blob reaches the binary.
public enum WeightsEmbedding: String, Sendable, CaseIterable {
  /// `<model>_weights.bin` pulled in by `.incbin` from `<model>_weights.S` (any size, fast).
  case incbin
  /// `<model>_weights.c`, a hex-float array: exact, diffable, for tiny models only.
  case hex
  /// Not in the binary: `<model>_weights.bin` is a vitc weights file (docs/weights-file.md)
  /// that the binary maps at run time (`--weights FILE`), for boards that keep models on
  /// storage.
  case file
  /// Not known when compiling: the binary loads the user's safetensors file (or a vitc weights
  /// file of the same layout) at run time with `--weights FILE`, checks, converts and packs it
  /// into static memory (Runtime/include/vit_weights.h). What `vitc compile` and `vitc build`
  /// do when given no weights.
  case load
}

/// The vitc weights file: a 64-byte header, then the blob (docs/weights-file.md).
public enum WeightsFile {
  public static let magic: [UInt8] = Array("VITCWTS".utf8) + [0]
  public static let version: UInt32 = 1
  public static let headerBytes = 64

  /// The file for `blob` of model `name` (a C identifier of at most 31 bytes).
  static func bytes(_ blob: WeightBlob, model name: String) -> [UInt8] {
    var header = magic
    func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { header += $0 } }
    append(version)
    append(UInt32(headerBytes))
    append(UInt64(blob.bytes.count))
    append(blob.hash)
    let nameBytes = Array(name.utf8.prefix(31))
    header += nameBytes + [UInt8](repeating: 0, count: 32 - nameBytes.count)
    precondition(header.count == headerBytes)
    return header + blob.bytes
  }
}

extension ModelEmitter {
  /// `vit_<model>_bind_weights`: checks a vitc weights file (docs/weights-file.md) against
  /// this model and binds its blob.
  func weightsBinder(into w: inout CWriter) {
    w.comment([
      "Little-endian fields of the weights file's header.",
    ])
    w.block("static uint64_t vit_le(const unsigned char *p, int bytes)") { w in
      w.line("uint64_t v = 0;")
      w.line("for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];")
      w.line("return v;")
    }
    w.line()
    w.block("int vit_\(model)_bind_weights(const void *file, size_t bytes)") { w in
      w.line("const unsigned char *p = file;")
      w.line("if (bytes < \(WeightsFile.headerBytes) || memcmp(p, \"VITCWTS\", 8) != 0) return VIT_\(upper)_WEIGHTS_NOT_VITC;")
      w.line("if (vit_le(p + 8, 4) != \(WeightsFile.version) || vit_le(p + 12, 4) != \(WeightsFile.headerBytes)) return VIT_\(upper)_WEIGHTS_VERSION;")
      w.line("if (memcmp(p + 32, \"\(model)\", \(model.utf8.count + 1)) != 0) return VIT_\(upper)_WEIGHTS_OTHER_MODEL;")
      w.line("const uint64_t payload = vit_le(p + 16, 8);")
      w.line("if (bytes - \(WeightsFile.headerBytes) < payload) return VIT_\(upper)_WEIGHTS_TRUNCATED;")
      w.line("if (payload != VIT_\(upper)_WEIGHT_BYTES) return VIT_\(upper)_WEIGHTS_SIZE;")
      w.line("if ((uintptr_t)(p + \(WeightsFile.headerBytes)) % 64 != 0) return VIT_\(upper)_WEIGHTS_ALIGNMENT;")
      w.line("uint64_t hash = 0xcbf29ce484222325u; /* FNV-1a 64 */")
      w.line("for (uint64_t i = 0; i < payload; i++) hash = (hash ^ p[\(WeightsFile.headerBytes) + i]) * 0x100000001b3u;")
      w.line("if (hash != vit_le(p + 24, 8)) return VIT_\(upper)_WEIGHTS_CORRUPT;")
      w.line("if (hash != 0x\(String(format: "%016llx", blob.hash))u) return VIT_\(upper)_WEIGHTS_MISMATCH;")
      w.line("vit_\(model)_weights = (const float *)(const void *)(p + \(WeightsFile.headerBytes));")
      w.line("return VIT_\(upper)_WEIGHTS_OK;")
    }
    w.line()
  }
}
