import Foundation

/// Class names, one per line, for a model's outputs.
public enum Labels {
  /// `explicit` if given (an error if it does not fit), else the first of
  /// `imagenet-labels.txt` beside the graph and `STEM/classes.txt` beside it (a sample's own
  /// folder: samples/fashion/classes.txt for samples/fashion.graph) that has exactly as many
  /// lines as the model has classes, else nil.
  public static func load(graphPath: String, explicit: String?, classes: Int) throws -> [String]? {
    if let explicit {
      guard FileManager.default.fileExists(atPath: explicit) else { throw DriverError.labels(path: explicit, reason: "no such file") }
      let names = try read(explicit)
      guard names.count == classes else {
        throw DriverError.labels(path: explicit, reason: "\(names.count) labels for a model with \(classes) classes")
      }
      return names
    }
    let graph = URL(fileURLWithPath: graphPath)
    let beside = graph.deletingLastPathComponent()
    for candidate in [
      beside.appendingPathComponent("imagenet-labels.txt"),
      beside.appendingPathComponent(graph.deletingPathExtension().lastPathComponent).appendingPathComponent("classes.txt"),
    ] where FileManager.default.fileExists(atPath: candidate.path) {
      let names = try read(candidate.path)
      if names.count == classes { return names }
    }
    return nil
  }

  /// One class name per line (a last empty line is ignored).
  private static func read(_ path: String) throws -> [String] {
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
      throw DriverError.labels(path: path, reason: "cannot read the labels as UTF-8 text")
    }
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    return lines.last == "" ? Array(lines.dropLast()) : lines
  }
}
