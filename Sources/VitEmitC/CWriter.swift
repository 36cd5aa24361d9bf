/// Writes C text with consistent indentation; all emitted code goes through it, so files are
/// formatted by construction (STYLE.md habit 6).
struct CWriter {
  private(set) var text = ""
  private var depth = 0

  /// One line at the current indentation (an empty string gives an empty line).
  mutating func line(_ content: String = "") {
    text += content.isEmpty ? "\n" : String(repeating: "  ", count: depth) + content + "\n"
  }

  /// A `/* … */` block, one line per element.
  mutating func comment(_ lines: [String]) {
    guard !lines.isEmpty else { return }
    if lines.count == 1 {
      line("/* \(lines[0]) */")
      return
    }
    line("/*")
    for content in lines { line(content.isEmpty ? " *" : " * \(content)") }
    line(" */")
  }

  /// `header {` … `}` with the body indented.
  mutating func block(_ header: String, closing: String = "}", _ body: (inout CWriter) -> Void) {
    line(header + " {")
    depth += 1
    body(&self)
    depth -= 1
    line(closing)
  }
}
