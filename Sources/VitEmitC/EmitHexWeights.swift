import Foundation

extension ModelEmitter {
  /// `<stem>_weights.c`: the blob as a hex-float array, one commented block per tensor (exact,
  /// diffable; for tiny models).
  func hexWeightsSource() -> String {
    var w = CWriter()
    w.comment(provenanceLines("Weights blob as hex floats"))
    w.line()
    w.line("#include <stdint.h>")
    w.line()
    w.line("_Alignas(\(WeightBlob.alignment)) const float vit_\(model)_weights[\(blob.bytes.count / 4)] = {")
    let ordered = blob.entries.values.sorted { $0.offset < $1.offset }
    var position = 0
    func float(at index: Int) -> String {
      let b = blob.bytes
      let bits = UInt32(b[4 * index]) | UInt32(b[4 * index + 1]) << 8 | UInt32(b[4 * index + 2]) << 16 | UInt32(b[4 * index + 3]) << 24
      let value = Float(bitPattern: bits)
      return value == 0 && value.sign == .plus ? "0" : String(format: "%af", Double(value))
    }
    for entry in ordered {
      if position < entry.offset / 4 {
        w.line("  " + (position..<(entry.offset / 4)).map { _ in "0" }.joined(separator: ", ") + ",")
        position = entry.offset / 4
      }
      w.line("  /* \(entry.name)\(entry.packed.map { " (packed [\($0.n)][\($0.k)])" } ?? "") */")
      var index = 0
      while index < entry.floats {
        let end = min(index + 8, entry.floats)
        w.line("  " + (index..<end).map { float(at: position + $0) }.joined(separator: ", ") + ",")
        index = end
      }
      position += entry.floats
    }
    if position < blob.bytes.count / 4 {
      w.line("  " + (position..<(blob.bytes.count / 4)).map { _ in "0" }.joined(separator: ", ") + ",")
    }
    w.line("};")
    return w.text
  }
}
