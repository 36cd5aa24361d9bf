import VitIR

/// A token of the `.graph` language (docs/graph-format.md).
struct Token: Equatable {
  enum Kind: Equatable {
    /// `x`, `block`, `x.1`: letters, digits, `_` and `.`, not starting with a digit.
    case identifier(String)
    /// `@blocks.{i}.attn.qkv.weight`, without the `@`.
    case parameter(String)
    /// `224`
    case integer(Int)
    /// `1e-6`, `0.125`
    case real(Double)
    /// One of `( ) { } [ ] , : = + * -` or `->`, `..<`, `<=`.
    case symbol(String)
    case endOfFile
  }

  var kind: Kind
  var location: SourceLocation

  /// How the token is named in "found …" messages.
  var quoted: String {
    switch kind {
    case .identifier(let name): "'\(MessageText.clean(name))'"
    case .parameter(let name): "'@\(MessageText.clean(name))'"
    case .integer(let value): "'\(value)'"
    case .real(let value): "'\(value)'"
    case .symbol(let symbol): "'\(symbol)'"
    case .endOfFile: "end of file"
    }
  }
}

/// Splits `.graph` text into tokens. `#` starts a comment that runs to the end of the line;
/// white space and newlines only separate tokens.
struct GraphLexer {
  private let scalars: [Unicode.Scalar]
  private let file: String
  private var position = 0
  private var line = 1
  private var column = 1

  init(source: String, file: String) {
    self.scalars = Array(source.unicodeScalars)
    self.file = file
  }

  mutating func tokenize() throws(GraphError) -> [Token] {
    var tokens: [Token] = []
    while true {
      let token = try next()
      tokens.append(token)
      if token.kind == .endOfFile { return tokens }
    }
  }

  private var current: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

  private func peek(_ offset: Int) -> Unicode.Scalar? {
    position + offset < scalars.count ? scalars[position + offset] : nil
  }

  private mutating func advance() {
    if current == "\n" {
      line += 1
      column = 1
    } else {
      column += 1
    }
    position += 1
  }

  private static func isIdentifierStart(_ c: Unicode.Scalar) -> Bool {
    c == "_" || (c.properties.isAlphabetic && c.isASCII)
  }

  private static func isIdentifierBody(_ c: Unicode.Scalar) -> Bool {
    isIdentifierStart(c) || isDigit(c) || c == "."
  }

  private static func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }

  private mutating func next() throws(GraphError) -> Token {
    while let c = current {
      if c == " " || c == "\t" || c == "\n" || c == "\r" {
        advance()
      } else if c == "#" {
        while let d = current, d != "\n" { advance() }
      } else {
        break
      }
    }
    let start = SourceLocation(file: file, line: line, column: column)
    guard let c = current else { return Token(kind: .endOfFile, location: start) }

    if Self.isIdentifierStart(c) {
      var text = ""
      while let d = current, Self.isIdentifierBody(d) {
        text.unicodeScalars.append(d)
        advance()
      }
      return Token(kind: .identifier(text), location: start)
    }
    if c == "@" {
      advance()
      var text = ""
      while let d = current, Self.isIdentifierBody(d) || d == "{" || d == "}" {
        text.unicodeScalars.append(d)
        advance()
      }
      if text.isEmpty {
        throw .expected(
          "a parameter name after '@'", found: current.map { "'\(MessageText.clean(String($0)))'" } ?? "end of file",
          at: start)
      }
      return Token(kind: .parameter(text), location: start)
    }
    if Self.isDigit(c) { return try number(start) }

    let pairs: [String] = ["->", "..<", "<="]
    for symbol in pairs {
      let symbolScalars = Array(symbol.unicodeScalars)
      if symbolScalars.indices.allSatisfy({ peek($0) == symbolScalars[$0] }) {
        for _ in symbolScalars { advance() }
        return Token(kind: .symbol(symbol), location: start)
      }
    }
    if "(){}[],:=+*-".unicodeScalars.contains(c) {
      advance()
      return Token(kind: .symbol(String(c)), location: start)
    }
    throw .unexpectedCharacter(Character(c), at: start)
  }

  private mutating func number(_ start: SourceLocation) throws(GraphError) -> Token {
    var text = ""
    var isReal = false
    while let d = current, Self.isDigit(d) {
      text.unicodeScalars.append(d)
      advance()
    }
    if current == ".", let d = peek(1), Self.isDigit(d) {
      isReal = true
      text += "."
      advance()
      while let d = current, Self.isDigit(d) {
        text.unicodeScalars.append(d)
        advance()
      }
    }
    if current == "e" || current == "E" {
      let sign = peek(1)
      let digitAt = (sign == "+" || sign == "-") ? 2 : 1
      if let d = peek(digitAt), Self.isDigit(d) {
        isReal = true
        text += "e"
        advance()
        if digitAt == 2 {
          text.unicodeScalars.append(sign!)
          advance()
        }
        while let d = current, Self.isDigit(d) {
          text.unicodeScalars.append(d)
          advance()
        }
      }
    }
    if let d = current, Self.isIdentifierStart(d) {
      throw .expected("a number", found: "'\(MessageText.clean(text + String(Character(d))))'", at: start)
    }
    if isReal, let value = Double(text) {
      guard value.isFinite else { throw .expected("a finite number", found: "'\(text)'", at: start) }
      return Token(kind: .real(value), location: start)
    }
    guard let value = Int(text) else {
      throw .expected("a number that fits in 64 bits", found: "'\(MessageText.clean(text))'", at: start)
    }
    return Token(kind: .integer(value), location: start)
  }
}
