import Foundation

/// The C runtime, shipped as package resources and copied next to every emitted model. The C
/// files are never compiled into vitc itself; they stay a plain C project under Runtime/.
public enum RuntimeFiles {
  /// Every file a compiled model needs (headers, kernels, the driver), by file name.
  public static func all() throws -> [String: [UInt8]] {
    guard let root = Bundle.module.resourceURL else { throw CocoaError(.fileNoSuchFile) }
    var files: [String: [UInt8]] = [:]
    for folder in ["include", "src", "main"] {
      let directory = root.appendingPathComponent(folder)
      let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
      for name in names where name.hasSuffix(".c") || name.hasSuffix(".h") {
        files[name] = Array(try Data(contentsOf: directory.appendingPathComponent(name)))
      }
    }
    return files
  }
}
