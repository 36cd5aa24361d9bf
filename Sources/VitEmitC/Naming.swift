import VitIR

/// C identifiers for model names and values, made in one place. Two IR names that clean up to
/// the same identifier get numbered suffixes, so the mapping stays one-to-one.
struct Naming {
  /// `deit-small` → `deit_small`: letters, digits and `_`, not starting with a digit.
  static func identifier(_ name: String) -> String {
    var out = ""
    for scalar in name.unicodeScalars {
      let isWord = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_")
      out += isWord ? String(scalar) : "_"
    }
    if out.isEmpty || ("0"..."9").contains(out.unicodeScalars.first!) { out = "v_" + out }
    return out
  }

  private var used: Set<String> = []
  private var names: [ValueID: String] = [:]

  /// A unique C name for a value, with a prefix (`P_` parameters, `V_` activations).
  mutating func name(_ id: ValueID, _ base: String, prefix: String) -> String {
    if let known = names[id] { return known }
    var candidate = prefix + Self.identifier(base)
    var suffix = 1
    while used.contains(candidate) {
      suffix += 1
      candidate = prefix + Self.identifier(base) + "_\(suffix)"
    }
    used.insert(candidate)
    names[id] = candidate
    return candidate
  }
}
