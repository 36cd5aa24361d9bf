import Foundation

/// How vitc writes files: whole or not at all, never onto a file the same run reads, never
/// over a directory.
public enum Output {
  /// Refuses `path` as an output when it is a directory or the same file as one of `inputs`
  /// (`(path, what it is)`, compared by device and inode, so links and `./x` are caught).
  public static func check(_ path: String, against inputs: [(path: String, what: String)]) throws {
    var status = stat()
    guard stat(path, &status) == 0 else { return }  // nothing there yet
    if (status.st_mode & S_IFMT) == S_IFDIR { throw DriverError.outputIsDirectory(path: path) }
    for input in inputs {
      var other = stat()
      if stat(input.path, &other) == 0 && other.st_dev == status.st_dev && other.st_ino == status.st_ino {
        throw DriverError.outputIsInput(path: path, input: input.what)
      }
    }
  }

  /// Writes bytes into a temporary file beside `path`, then renames it into place: an
  /// interrupted or failed write leaves the previous file whole.
  public static func write(_ bytes: [UInt8], to path: String) throws {
    let temporary = path + ".vitc-tmp-\(ProcessInfo.processInfo.processIdentifier)"
    guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
      throw DriverError.cannotWrite(path: path, reason: "cannot create the file")
    }
    try rename(temporary, to: path)
  }

  public static func write(_ text: String, to path: String) throws {
    try write(Array(text.utf8), to: path)
  }

  /// Renames `from` onto `path` (atomically replacing a file, never a directory).
  public static func rename(_ from: String, to path: String) throws {
    var status = stat()
    if stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR {
      unlink(from)
      throw DriverError.outputIsDirectory(path: path)
    }
    if Foundation.rename(from, path) != 0 {
      let reason = String(cString: strerror(errno))
      unlink(from)
      throw DriverError.cannotWrite(path: path, reason: reason)
    }
  }

  /// Writes every file or none of the new ones: into a staging directory beside them, then
  /// each renamed into `directory` (created if missing).
  public static func write(files: [String: [UInt8]], into directory: String) throws {
    let fileManager = FileManager.default
    do {
      try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
      throw DriverError.cannotWrite(path: directory, reason: "cannot create the directory")
    }
    let staging = directory + "/.vitc-staging-\(ProcessInfo.processInfo.processIdentifier)"
    defer { try? fileManager.removeItem(atPath: staging) }
    try? fileManager.removeItem(atPath: staging)
    do {
      try fileManager.createDirectory(atPath: staging, withIntermediateDirectories: true)
    } catch {
      throw DriverError.cannotWrite(path: directory, reason: "cannot create a staging directory in it")
    }
    for (name, contents) in files {
      guard fileManager.createFile(atPath: staging + "/" + name, contents: Data(contents)) else {
        throw DriverError.cannotWrite(path: directory + "/" + name, reason: "cannot create the file")
      }
    }
    for name in files.keys.sorted() {
      try rename(staging + "/" + name, to: directory + "/" + name)
    }
  }
}

/// `1234567` → `1,234,567`.
public func grouped(_ value: Int) -> String {
  let digits = String(value.magnitude)
  var out = ""
  for (index, digit) in digits.enumerated() {
    if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
    out.append(digit)
  }
  return (value < 0 ? "-" : "") + out
}
