/// A place in a user's file, printed as `file:line:col` the way compilers do.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
  /// The file as the user named it (never made absolute, so messages and dumps stay stable).
  public var file: String
  /// 1-based line.
  public var line: Int
  /// 1-based column, counted in Unicode scalars.
  public var column: Int

  public init(file: String, line: Int, column: Int) {
    self.file = file
    self.line = line
    self.column = column
  }

  public var description: String { "\(file):\(line):\(column)" }
}
