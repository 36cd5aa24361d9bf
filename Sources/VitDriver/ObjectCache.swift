import Foundation

/// Object files of the shared runtime, compiled once per compiler and flag set and reused by
/// every later build (the runtime is byte-identical for every model; only the model's own C is
/// compiled each time). A cached object is named by a 128-bit hash of the compiler's identity,
/// the flags, the source and every header it includes with `#include "…"`, so any change to
/// them compiles anew. The folder is `$VITC_CACHE_DIR`, else `$XDG_CACHE_HOME/vitc`, else
/// `~/.cache/vitc`; `VITC_CACHE_DIR=` (empty) turns the cache off. Deleting it is always safe.
public struct ObjectCache: Sendable {
  public var directory: String

  public init(directory: String) {
    self.directory = directory
  }

  /// The cache the environment asks for, or nil when it is turned off.
  public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment) -> ObjectCache? {
    if let explicit = environment["VITC_CACHE_DIR"] { return explicit.isEmpty ? nil : ObjectCache(directory: explicit) }
    if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return ObjectCache(directory: xdg + "/vitc/objects") }
    if let home = environment["HOME"], !home.isEmpty { return ObjectCache(directory: home + "/.cache/vitc/objects") }
    return nil
  }

  /// A cached object file.
  public struct Entry {
    public var path: String

    /// Copies the object next to the build (a hard link when the file system allows).
    func copy(to destination: String) throws {
      try? FileManager.default.removeItem(atPath: destination)
      if link(path, destination) != 0 {
        try FileManager.default.copyItem(atPath: path, toPath: destination)
      }
    }
  }

  /// The object for `source`, compiled by `compile(objectPath)` unless the cache has it. A cache
  /// that cannot be written is not an error: the object is then compiled in place.
  public func object(for source: String, in directory: String, key: String, compile: (String) throws -> Void) throws -> Entry {
    let name = Self.hash(key: key, source: source, directory: directory) + ".o"
    let cached = self.directory + "/" + name
    if FileManager.default.fileExists(atPath: cached) { return Entry(path: cached) }
    let temporary = source + ".cache-\(ProcessInfo.processInfo.processIdentifier).o"
    try compile(temporary)
    guard (try? FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)) != nil,
      rename(temporary, cached) == 0
    else {
      return Entry(path: temporary)
    }
    return Entry(path: cached)
  }

  /// Two FNV-1a 64-bit hashes (different offsets) over the key, the source and its quoted
  /// includes, found recursively in `directory`.
  static func hash(key: String, source: String, directory: String) -> String {
    var a: UInt64 = 0xcbf2_9ce4_8422_2325
    var b: UInt64 = 0x6c62_272e_07bb_0142
    func mix<Bytes: Sequence<UInt8>>(_ bytes: Bytes) {
      for byte in bytes {
        a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
      }
    }
    func feed(_ bytes: [UInt8]) {
      mix(bytes)
      // A separator no file content can fake: the length.
      withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { mix($0) }
    }
    feed(Array("vitc-object-cache-1".utf8))
    feed(Array(key.utf8))
    var seen: Set<String> = []
    var pending = [source]
    while let file = pending.popLast() {
      guard seen.insert(file).inserted else { continue }
      let bytes = FileManager.default.contents(atPath: file).map { [UInt8]($0) } ?? []
      feed(Array(URL(fileURLWithPath: file).lastPathComponent.utf8))
      feed(bytes)
      for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
        let trimmed = line.drop { $0 == " " || $0 == "\t" }
        guard trimmed.hasPrefix("#"), trimmed.contains("include") else { continue }
        let parts = trimmed.split(separator: "\"")
        if parts.count >= 2 {
          let included = directory + "/" + parts[1]
          if FileManager.default.fileExists(atPath: included) { pending.append(included) }
        }
      }
    }
    return String(a, radix: 16) + String(b, radix: 16)
  }
}
