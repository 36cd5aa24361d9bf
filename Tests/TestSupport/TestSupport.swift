import Foundation

/// The repository root, found from this file's path: tests read samples and fixtures in place.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

/// A file of the repository by its relative path.
public func repositoryPath(_ relative: String) -> String {
  repositoryRoot.appendingPathComponent(relative).path
}

/// The `vitc` executable SwiftPM built next to the test bundle.
public func vitcExecutable() throws -> URL {
  var directory = Bundle.main.bundleURL
  for _ in 0..<4 {
    let candidate = directory.appendingPathComponent("vitc")
    if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    directory.deleteLastPathComponent()
  }
  throw CocoaError(.fileNoSuchFile)
}

/// What one run of a program printed.
public struct Outcome: Sendable {
  public var status: Int32
  public var stdout: String
  public var stderr: String
  /// stdout then stderr.
  public var output: String { stdout + stderr }
}

/// The object cache of this test run (VITC_CACHE_DIR for the builds it makes): new for each run
/// of the suite, so a run compiles the runtime once per configuration and reuses nothing older.
public let testObjectCacheDirectory: String = {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("vitc-test-objects-\(ProcessInfo.processInfo.processIdentifier)")
  try? FileManager.default.removeItem(at: url)
  return url.path
}()

/// Runs `executable` with `arguments` in the repository root. stderr goes through a file, so
/// that neither stream can fill a pipe and block the child.
public func run(_ executable: URL, _ arguments: [String]) throws -> Outcome {
  let errors = FileManager.default.temporaryDirectory.appendingPathComponent("vitc-stderr-\(UUID().uuidString)")
  _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
  defer { try? FileManager.default.removeItem(at: errors) }
  let process = Process()
  process.executableURL = executable
  process.arguments = arguments
  process.currentDirectoryURL = repositoryRoot
  var environment = ProcessInfo.processInfo.environment
  environment["VITC_CACHE_DIR"] = testObjectCacheDirectory
  process.environment = environment
  let out = Pipe()
  process.standardOutput = out
  process.standardError = try FileHandle(forWritingTo: errors)
  try process.run()
  let stdout = out.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return Outcome(
    status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
    stderr: String(decoding: try Data(contentsOf: errors), as: UTF8.self))
}

/// Runs the `vitc` executable.
public func vitc(_ arguments: [String]) throws -> Outcome {
  try run(try vitcExecutable(), arguments)
}

/// A fresh scratch directory.
public func scratchDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("vitc-test-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// Raw little-endian float32, as the binaries read and write it.
public func writeF32(_ values: [Float], to url: URL) throws {
  var bytes: [UInt8] = []
  bytes.reserveCapacity(4 * values.count)
  for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 } }
  try Data(bytes).write(to: url)
}

public func readF32(_ url: URL) throws -> [Float] {
  let bytes = [UInt8](try Data(contentsOf: url))
  return stride(from: 0, to: bytes.count, by: 4).map { (i: Int) -> Float in
    var bits = UInt32(bytes[i])
    bits |= UInt32(bytes[i + 1]) << 8
    bits |= UInt32(bytes[i + 2]) << 16
    bits |= UInt32(bytes[i + 3]) << 24
    return Float(bitPattern: bits)
  }
}

/// A Debian package a test needs is not installed. Its description is the one line a test
/// failure shows: the package, the file that is missing, and the command that installs it.
public struct MissingSystemPackage: Error, CustomStringConvertible {
  public var package: String
  public var missingFile: String
  public var description: String {
    "missing system package \(package) (no \(missingFile)): run tools/install-test-packages.sh as root, or apt-get install \(package)"
  }
}

/// Throws `MissingSystemPackage` for the first of `packages` that is not installed, judged by
/// the file tools/test-packages.txt names for it (the one list the install script also reads).
public func requireSystemPackages(_ packages: String...) throws {
  let list = try String(contentsOfFile: repositoryPath("tools/test-packages.txt"), encoding: .utf8)
  var proofs: [String: String] = [:]
  for line in list.split(separator: "\n") where !line.hasPrefix("#") {
    let words = line.split(separator: " ", omittingEmptySubsequences: true)
    if words.count == 2 { proofs[String(words[0])] = String(words[1]) }
  }
  for package in packages {
    guard let proof = proofs[package] else {
      preconditionFailure("\(package) is not in tools/test-packages.txt")
    }
    if !FileManager.default.fileExists(atPath: proof) { throw MissingSystemPackage(package: package, missingFile: proof) }
  }
}
