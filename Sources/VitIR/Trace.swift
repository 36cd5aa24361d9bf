import Foundation

/// What a run reports about token pruning, in the JSON of docs/trace-format.md. The
/// interpreter, the C binary and every golden test use this one format.
public struct Trace: Equatable, Sendable {
  /// One pruning or merging point.
  public struct Stage: Equatable, Sendable {
    /// B for a selection made before block B (DynamicViT, AS-ViT) or inside block B (EViT,
    /// BAT, ToMe).
    public var block: Int
    /// Tokens after the stage, the cls token included.
    public var tokens: Int
    /// For each non-cls token in current order, the sorted original patch ids (0..<P,
    /// row-major) it stands for.
    public var patches: [[Int]]

    public init(block: Int, tokens: Int, patches: [[Int]]) {
      self.block = block
      self.tokens = tokens
      self.patches = patches
    }
  }

  /// The pruning schedule as the user wrote it (`none` for a dense model).
  public var method: String
  public var stages: [Stage]
  /// The model's outputs.
  public var logits: [Float]

  public init(method: String, stages: [Stage], logits: [Float]) {
    self.method = method
    self.stages = stages
    self.logits = logits
  }

  /// The trace as JSON: one stage per line, logits as `%.9g` (round-trips float32).
  public func json() -> String {
    var out = "{\"method\": \(Self.quote(method)), \"stages\": ["
    for (index, stage) in stages.enumerated() {
      let patches = stage.patches.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }
      out += index == 0 ? "\n  " : ",\n  "
      out += "{\"block\": \(stage.block), \"tokens\": \(stage.tokens), \"patches\": ["
      out += patches.joined(separator: ",") + "]}"
    }
    out += stages.isEmpty ? "],\n" : "\n],\n"
    out += " \"logits\": [" + logits.map { Self.formatLogit($0) }.joined(separator: ", ") + "]}\n"
    return out
  }

  /// `%.9g`, with JSON-safe spellings for the non-finite values JSON lacks.
  static func formatLogit(_ value: Float) -> String {
    if value.isNaN { return "\"nan\"" }
    if value.isInfinite { return value > 0 ? "\"inf\"" : "\"-inf\"" }
    return String(format: "%.9g", Double(value))
  }

  static func quote(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}
