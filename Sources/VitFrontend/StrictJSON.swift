import VitIR

/// A JSON value as `StrictJSON` reads it. Objects keep their members in file order.
enum JSONValue: Equatable {
  case object([(key: String, value: JSONValue)])
  case array([JSONValue])
  case string(String)
  /// A number written without fraction or exponent that fits in `Int`.
  case integer(Int)
  /// Any other number (finite).
  case real(Double)
  case bool(Bool)
  case null

  static func == (a: JSONValue, b: JSONValue) -> Bool {
    switch (a, b) {
    case (.object(let x), .object(let y)):
      x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    case (.array(let x), .array(let y)): x == y
    case (.string(let x), .string(let y)): x == y
    case (.integer(let x), .integer(let y)): x == y
    case (.real(let x), .real(let y)): x == y
    case (.bool(let x), .bool(let y)): x == y
    case (.null, .null): true
    default: false
    }
  }
}

/// Why a text is not the JSON `StrictJSON` accepts, at a byte offset.
struct JSONSyntaxError: Error, Equatable {
  var reason: String
  var offset: Int
}

/// RFC 8259 JSON, strictly: UTF-8, no trailing commas, no comments, no NaN, a duplicate key in
/// an object is an error (Foundation's reader keeps one of the two silently), nesting at most
/// `maxDepth` deep (checked before recursing), white space allowed around the value.
struct StrictJSON {
  static let maxDepth = 64

  private let bytes: [UInt8]
  private var at = 0
  private let allowDuplicates: Bool

  private init(_ bytes: [UInt8], allowDuplicates: Bool) {
    self.bytes = bytes
    self.allowDuplicates = allowDuplicates
  }

  /// The JSON value of `bytes`; `allowDuplicates` keeps both members of a duplicate key (to
  /// find which one it is for a message).
  static func parse<C: Collection>(_ bytes: C, allowDuplicates: Bool = false) throws(JSONSyntaxError) -> JSONValue
  where C.Element == UInt8 {
    var parser = StrictJSON(Array(bytes), allowDuplicates: allowDuplicates)
    parser.skipSpace()
    let value = try parser.value(depth: 1)
    parser.skipSpace()
    guard parser.at == parser.bytes.count else { throw parser.error("text after the JSON value") }
    return value
  }

  private func error(_ reason: String) -> JSONSyntaxError { JSONSyntaxError(reason: reason, offset: at) }

  private var current: UInt8? { at < bytes.count ? bytes[at] : nil }

  private mutating func skipSpace() {
    while let c = current, c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d { at += 1 }
  }

  private mutating func expect(_ c: UInt8, _ what: String) throws(JSONSyntaxError) {
    guard current == c else { throw error("expected \(what)") }
    at += 1
  }

  private mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
    guard let c = current else { throw error("unexpected end of the JSON text") }
    switch c {
    case UInt8(ascii: "{"):
      guard depth < Self.maxDepth else { throw error("nested more than \(Self.maxDepth) deep") }
      at += 1
      var members: [(key: String, value: JSONValue)] = []
      var seen: Set<String> = []
      skipSpace()
      if current == UInt8(ascii: "}") {
        at += 1
        return .object(members)
      }
      while true {
        skipSpace()
        let keyAt = at
        guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
        let key = try string()
        guard seen.insert(key).inserted || allowDuplicates else {
          throw JSONSyntaxError(reason: "duplicate key '\(MessageText.clean(key))'", offset: keyAt)
        }
        skipSpace()
        try expect(UInt8(ascii: ":"), "':' after a key")
        skipSpace()
        members.append((key, try value(depth: depth + 1)))
        skipSpace()
        if current == UInt8(ascii: ",") {
          at += 1
          continue
        }
        try expect(UInt8(ascii: "}"), "',' or '}' in an object")
        return .object(members)
      }
    case UInt8(ascii: "["):
      guard depth < Self.maxDepth else { throw error("nested more than \(Self.maxDepth) deep") }
      at += 1
      var items: [JSONValue] = []
      skipSpace()
      if current == UInt8(ascii: "]") {
        at += 1
        return .array(items)
      }
      while true {
        skipSpace()
        items.append(try value(depth: depth + 1))
        skipSpace()
        if current == UInt8(ascii: ",") {
          at += 1
          continue
        }
        try expect(UInt8(ascii: "]"), "',' or ']' in an array")
        return .array(items)
      }
    case UInt8(ascii: "\""):
      return .string(try string())
    case UInt8(ascii: "t"): return try word("true", .bool(true))
    case UInt8(ascii: "f"): return try word("false", .bool(false))
    case UInt8(ascii: "n"): return try word("null", .null)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
      return try number()
    default:
      throw error("unexpected character")
    }
  }

  private mutating func word(_ text: String, _ result: JSONValue) throws(JSONSyntaxError) -> JSONValue {
    for c in text.utf8 { try expect(c, "'\(text)'") }
    return result
  }

  private mutating func digits() -> Int {
    let start = at
    while let c = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { at += 1 }
    return at - start
  }

  private mutating func number() throws(JSONSyntaxError) -> JSONValue {
    let start = at
    if current == UInt8(ascii: "-") { at += 1 }
    let leading = at
    guard digits() > 0 else { throw error("expected digits in a number") }
    if bytes[leading] == UInt8(ascii: "0"), at - leading > 1 {
      throw JSONSyntaxError(reason: "a number with a leading zero", offset: leading)
    }
    var integral = true
    if current == UInt8(ascii: ".") {
      at += 1
      integral = false
      guard digits() > 0 else { throw error("expected digits after '.'") }
    }
    if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
      at += 1
      integral = false
      if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { at += 1 }
      guard digits() > 0 else { throw error("expected digits in an exponent") }
    }
    let text = String(decoding: bytes[start..<at], as: UTF8.self)
    if integral, let value = Int(text) { return .integer(value) }
    guard let value = Double(text), value.isFinite else {
      throw JSONSyntaxError(reason: "number \(MessageText.clean(text)) is out of range", offset: start)
    }
    return .real(value)
  }

  private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
    var value: UInt32 = 0
    for _ in 0..<4 {
      guard let c = current else { throw error("a '\\u' escape needs four hex digits") }
      let digit: UInt32
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
      default: throw error("a '\\u' escape needs four hex digits")
      }
      value = value * 16 + digit
      at += 1
    }
    return value
  }

  /// A string at `"`; its bytes must be UTF-8.
  private mutating func string() throws(JSONSyntaxError) -> String {
    let start = at
    at += 1
    var utf8: [UInt8] = []
    while true {
      guard let c = current else { throw JSONSyntaxError(reason: "unterminated string", offset: start) }
      at += 1
      switch c {
      case UInt8(ascii: "\""):
        guard let text = String(validating: utf8, as: UTF8.self) else {
          throw JSONSyntaxError(reason: "a string that is not UTF-8", offset: start)
        }
        return text
      case UInt8(ascii: "\\"):
        guard let e = current else { throw JSONSyntaxError(reason: "unterminated string", offset: start) }
        at += 1
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(e)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0c)
        case UInt8(ascii: "n"): utf8.append(0x0a)
        case UInt8(ascii: "r"): utf8.append(0x0d)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
          var code = try hex4()
          if (0xd800..<0xdc00).contains(code) {
            guard current == UInt8(ascii: "\\"), at + 1 < bytes.count, bytes[at + 1] == UInt8(ascii: "u") else {
              throw error("a lone surrogate in a '\\u' escape")
            }
            at += 2
            let low = try hex4()
            guard (0xdc00..<0xe000).contains(low) else { throw error("a lone surrogate in a '\\u' escape") }
            code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
          } else if (0xdc00..<0xe000).contains(code) {
            throw error("a lone surrogate in a '\\u' escape")
          }
          utf8.append(contentsOf: String(Character(Unicode.Scalar(code)!)).utf8)
        default:
          throw error("an unknown escape in a string")
        }
      case 0..<0x20:
        throw error("a control character inside a string")
      default:
        utf8.append(c)
      }
    }
  }
}
