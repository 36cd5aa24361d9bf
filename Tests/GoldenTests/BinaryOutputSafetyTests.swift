import Foundation
import TestSupport
import Testing

/// The binary never destroys a file (docs/reliability.md, "The binary's outputs"): an output
/// that names an input or another output is refused before anything runs, and every output is
/// written to a temporary file beside it and renamed into place. Then valgrind on good and bad
/// runs: nothing leaked, no thread left running.
@Suite(.serialized) struct BinaryOutputSafetyTests {
  /// tiny with dyvit:0.7, once carrying its weights and once reading them (`--weights-at-runtime`).
  static let built: Result<(binary: URL, runtime: URL, directory: URL), any Error> = Result {
    let directory = try scratchDirectory()
    let binary = directory.appendingPathComponent("tiny")
    let runtime = directory.appendingPathComponent("tiny-runtime")
    for (path, extra) in [(binary, [String]()), (runtime, ["--weights-at-runtime"])] {
      let outcome = try vitc(["build", "samples/tiny.graph", "--random-weights", "1", "--prune", "dyvit:0.7", "-o", path.path] + extra)
      guard outcome.status == 0 else { throw CocoaError(.executableLoad, userInfo: ["output": outcome.output]) }
    }
    return (binary, runtime, directory)
  }

  /// A fresh folder holding a copy of chelsea.ppm, as `image.ppm`.
  func folderWithImage() throws -> (folder: URL, image: URL, bytes: Data) {
    let folder = try Self.built.get().directory.appendingPathComponent("case-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let bytes = try Data(contentsOf: URL(fileURLWithPath: repositoryPath("samples/images/chelsea.ppm")))
    let image = folder.appendingPathComponent("image.ppm")
    try bytes.write(to: image)
    return (folder, image, bytes)
  }

  /// The names in `folder` that are not `expected`: a temporary file left behind shows up here.
  func strayFiles(in folder: URL, expected: Set<String>) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !expected.contains($0) }.sorted()
  }

  /// Each output option naming the input image, spelled `./` and `a/../`, through a hard link
  /// and through a symbolic link: one line, exit status 2, the image byte for byte as it was.
  @Test(arguments: ["--out", "--trace", "--kept-map", "--dump-input"], ["dot", "dotdot", "hardlink", "symlink"])
  func outputNamingTheInputImageIsRefused(option: String, spelling: String) throws {
    let binary = try Self.built.get().binary
    let (folder, image, bytes) = try folderWithImage()
    var expected: Set<String> = ["image.ppm"]
    let output: String
    switch spelling {
    case "dot": output = folder.path + "/./image.ppm"
    case "dotdot": output = folder.path + "/../" + folder.lastPathComponent + "/image.ppm"
    case "hardlink":
      output = folder.appendingPathComponent("link.ppm").path
      try FileManager.default.linkItem(atPath: image.path, toPath: output)
      expected.insert("link.ppm")
    default:
      output = folder.appendingPathComponent("symlink.ppm").path
      try FileManager.default.createSymbolicLink(atPath: output, withDestinationPath: image.path)
      expected.insert("symlink.ppm")
    }
    let ran = try run(binary, [image.path, option, output])
    #expect(ran.status == 2)
    #expect(ran.stdout.isEmpty)
    #expect(ran.stderr == "\(output): error: \(option) names the input image; refusing to overwrite it\n")
    #expect(try Data(contentsOf: image) == bytes)
    #expect(try strayFiles(in: folder, expected: expected) == [])
  }

  /// `--input F.f32` is an input too.
  @Test func outputNamingTheInputTensorIsRefused() throws {
    let binary = try Self.built.get().binary
    let (folder, _, _) = try folderWithImage()
    let input = folder.appendingPathComponent("input.f32")
    try writeF32([Float](repeating: 0.25, count: 3 * 224 * 224), to: input)
    let before = try Data(contentsOf: input)
    let ran = try run(binary, ["--input", input.path, "--trace", folder.path + "/./input.f32"])
    #expect(ran.status == 2)
    #expect(ran.stderr.hasSuffix("error: --trace names the --input file; refusing to overwrite it\n"))
    #expect(try Data(contentsOf: input) == before)
  }

  /// `--out` naming the `--weights` file of a binary built with `--weights-at-runtime`.
  @Test func outputNamingTheWeightsFileIsRefused() throws {
    let runtime = try Self.built.get().runtime
    let weights = runtime.path + ".weights"
    let before = try Data(contentsOf: URL(fileURLWithPath: weights))
    let alias = runtime.deletingLastPathComponent().path + "/./" + runtime.lastPathComponent + ".weights"
    let ran = try run(runtime, ["samples/images/chelsea.ppm", "--weights", weights, "--out", alias])
    #expect(ran.status == 2)
    #expect(ran.stderr == "\(alias): error: --out names the --weights file; refusing to overwrite it\n")
    #expect(try Data(contentsOf: URL(fileURLWithPath: weights)) == before)
  }

  /// Two outputs naming one file, whether it exists yet or not, are refused before the run.
  @Test(arguments: [false, true])
  func twoOutputsNamingOneFileAreRefused(exists: Bool) throws {
    let binary = try Self.built.get().binary
    let (folder, image, _) = try folderWithImage()
    let target = folder.appendingPathComponent("result")
    if exists { try Data("previous".utf8).write(to: target) }
    let ran = try run(binary, [image.path, "--out", target.path, "--kept-map", folder.path + "/./result"])
    #expect(ran.status == 2)
    #expect(ran.stderr == "\(folder.path)/./result: error: --kept-map names the same file as --out; give each output its own file\n")
    #expect(ran.stdout.isEmpty)  // refused before the model ran
    if exists { #expect(try Data(contentsOf: target) == Data("previous".utf8)) }
    #expect(FileManager.default.fileExists(atPath: target.path) == exists)
  }

  /// A good run replaces each output whole, with the mode a new file gets (not mkstemp's 0600),
  /// and leaves no temporary file.
  @Test func outputsAreReplacedWholeAndNothingIsLeftBeside() throws {
    let binary = try Self.built.get().binary
    let (folder, image, _) = try folderWithImage()
    let names = ["logits.f32", "trace.json", "kept.ppm", "input.f32"]
    for name in names { try Data(repeating: 0xAB, count: 10_000_000).write(to: folder.appendingPathComponent(name)) }
    let ran = try run(
      binary,
      [image.path, "--out", "\(folder.path)/logits.f32", "--trace", "\(folder.path)/trace.json",
       "--kept-map", "\(folder.path)/kept.ppm", "--dump-input", "\(folder.path)/input.f32"])
    try #require(ran.status == 0, "\(ran.output)")
    #expect(try readF32(folder.appendingPathComponent("logits.f32")).count == 1000)
    #expect(try readF32(folder.appendingPathComponent("input.f32")).count == 3 * 224 * 224)
    let trace = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("trace.json"))) as? [String: Any]
    #expect(trace?["method"] as? String == "dyvit:0.7")
    #expect(try Data(contentsOf: folder.appendingPathComponent("kept.ppm")).prefix(2) == Data("P6".utf8))
    #expect(try strayFiles(in: folder, expected: Set(names + ["image.ppm"])) == [])
    let fresh = folder.appendingPathComponent("fresh.f32")
    #expect(try run(binary, [image.path, "--out", fresh.path]).status == 0)
    let mode = try FileManager.default.attributesOfItem(atPath: fresh.path)[.posixPermissions] as? Int
    #expect(mode != 0o600 && (mode ?? 0) & 0o044 == 0o044, "mode \(String(mode ?? 0, radix: 8)) (umask 022 assumed)")
  }

  /// A write that fails half way (a file size limit of 4 KB, below the kept map's 610 KB)
  /// leaves the previous file whole and no temporary file: once as a write error (SIGXFSZ
  /// ignored: exit 2, one line) and once killed by the signal.
  @Test(arguments: [true, false])
  func aFailedWriteLeavesThePreviousFileWhole(ignoreSignal: Bool) throws {
    let binary = try Self.built.get().binary
    let (folder, image, _) = try folderWithImage()
    let kept = folder.appendingPathComponent("kept.ppm")
    let previous = Data("the previous kept map".utf8)
    try previous.write(to: kept)
    // Python, because a shell cannot restore a signal ignored on entry, and the test runner
    // may ignore or block SIGXFSZ (then the write fails with EFBIG instead).
    let script = """
      import os, resource, signal, sys
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN if sys.argv[1] == "ignore" else signal.SIG_DFL)
      signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGXFSZ])
      resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
      os.execv(sys.argv[2], sys.argv[2:])
      """
    let ran = try run(
      URL(fileURLWithPath: "/usr/bin/python3"),
      ["-c", script, ignoreSignal ? "ignore" : "default", binary.path, image.path, "--kept-map", kept.path])
    if ignoreSignal {
      #expect(ran.status == 2)
      #expect(ran.stderr == "\(kept.path): error: write error\n")
    } else {
      #expect(ran.status == SIGXFSZ, "killed by SIGXFSZ, got \(ran.status): \(ran.output)")
    }
    #expect(try Data(contentsOf: kept) == previous)
    #expect(try strayFiles(in: folder, expected: ["image.ppm", "kept.ppm"]) == [])
  }

  /// valgrind finds no leak of any kind and no error on a good run (threads, every output) and
  /// on bad runs. Needs valgrind (tools/test-packages.txt).
  @Test(arguments: [
    ("good run", 0, ["samples/images/chelsea.ppm", "--threads", "2", "--out", "OUT/l.f32", "--trace", "OUT/t.json", "--kept-map", "OUT/k.ppm"]),
    ("truncated image", 2, ["OUT/cut.ppm"]),
    ("missing file", 2, ["OUT/nowhere.ppm", "--out", "OUT/l.f32"]),
    ("bad option", 2, ["samples/images/chelsea.ppm", "--threads", "0"]),
    ("malformed evaluation set", 2, ["--eval", "OUT/bad-eval"]),
  ])
  func valgrindFindsNothing(name: String, status: Int32, arguments: [String]) throws {
    try requireSystemPackages("valgrind")
    let binary = try Self.built.get().binary
    let (folder, _, bytes) = try folderWithImage()
    try bytes.prefix(5000).write(to: folder.appendingPathComponent("cut.ppm"))
    let eval = folder.appendingPathComponent("bad-eval")
    try FileManager.default.createDirectory(at: eval, withIntermediateDirectories: true)
    try Data([1, 2]).write(to: eval.appendingPathComponent("test-labels.u8"))
    try Data([7, 7, 0, 0, 7]).write(to: eval.appendingPathComponent("test-images.rle"))
    let ran = try run(
      URL(fileURLWithPath: "/usr/bin/valgrind"),
      ["--leak-check=full", "--show-leak-kinds=all", "--errors-for-leak-kinds=all", "--error-exitcode=9", binary.path]
        + arguments.map { $0.replacingOccurrences(of: "OUT/", with: folder.path + "/") })
    #expect(ran.status == status, "\(name): \(ran.output)")
    #expect(ran.stderr.contains("ERROR SUMMARY: 0 errors"), "\(name): \(ran.stderr)")
    #expect(ran.stderr.contains("All heap blocks were freed -- no leaks are possible"), "\(name): \(ran.stderr)")
  }
}
