import Foundation
import TestSupport
import Testing
import VitDriver
import VitEmitC
import VitFrontend
import VitIR
import VitInterpreter

/// deit-s.graph cut to its first `blocks` blocks (width 384, 6 heads, 197 tokens), written
/// into `directory`: DeiT-S-shaped, small enough for the debug-build interpreter.
func deitSCutTo(_ blocks: Int, in directory: URL) throws -> String {
  let text = try String(contentsOfFile: repositoryPath("samples/deit-s.graph"), encoding: .utf8)
  let cut = text.replacingOccurrences(of: "block i in 0..<12", with: "block i in 0..<\(blocks)")
  try #require(cut != text)
  let path = directory.appendingPathComponent("deit-s-\(blocks)blocks.graph").path
  try cut.write(toFile: path, atomically: true, encoding: .utf8)
  return path
}

func seededInput(_ count: Int, seed: UInt64) -> [Float] {
  var generator = SplitMix64(seed: seed, name: "golden-input")
  return (0..<count).map { _ in Float(generator.nextNormal()) }
}

/// The compiled binary against the interpreter: build with vitc, run on a seeded input, compare.
@Suite(.serialized) struct GoldenTests {
  /// Tolerance: |Δ| ≤ 1e-4 · max(1, max|ref|). The binary accumulates in float with FMA and
  /// blocked sums; the interpreter in double.
  ///
  /// Models: tiny (all 12 blocks), and DeiT-S-shaped: deit-s.graph cut to its first 2 blocks
  /// (width 384, 6 heads, 197 tokens; 2 blocks keep the debug-build interpreter at a few seconds).
  /// `--blas openblas` needs libopenblas-dev (tools/install-test-packages.sh installs it).
  @Test(arguments: [
    ("tiny", "clang", "incbin", "builtin"), ("tiny", "gcc", "hex", "builtin"), ("tiny", "gcc", "incbin", "openblas"),
    ("deit-s-2blocks", "clang", "incbin", "builtin"), ("deit-s-2blocks", "gcc", "incbin", "builtin"),
  ])
  func binaryMatchesInterpreter(model: String, cc: String, embedding: String, blas: String) throws {
    if blas == "openblas" { try requireSystemPackages("libopenblas-dev") }
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("vitc-golden-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    var graphPath = repositoryRoot.appendingPathComponent("samples/\(model).graph").path
    if model == "deit-s-2blocks" { graphPath = try deitSCutTo(2, in: scratch) }
    let binary = scratch.appendingPathComponent("model")
    _ = try buildBinary(
      graph: graphPath, compiler: cc, embedding: WeightsEmbedding(rawValue: embedding)!, gemm: GEMMBackend(rawValue: blas)!,
      output: binary)

    let graph = try GraphLoader.load(path: graphPath)
    let inputShape = graph.type(of: graph.inputs[0]).fixedShape!
    let input = seededInput(inputShape.reduce(1, *), seed: 11)
    let inputFile = scratch.appendingPathComponent("input.f32")
    try writeF32(input, to: inputFile)
    let logitsFile = scratch.appendingPathComponent("logits.f32")
    let ran = try run(binary, ["--input", inputFile.path, "--out", logitsFile.path])
    try #require(ran.status == 0, "binary failed:\n\(ran.output)")

    let reference = try Interpreter(graph: graph, weights: RandomWeights.generate(for: graph, seed: 1))
      .run([Tensor(shape: inputShape, scalars: input)]).scalars
    let compiled = try readF32(logitsFile)
    #expect(compiled.count == reference.count)
    let scale = max(1, reference.map { abs($0) }.max()!)
    let worst = zip(compiled, reference).map { abs($0 - $1) }.max()!
    #expect(worst <= 1e-4 * scale, "max |Δ| \(worst), max |ref| \(scale)")
  }
}

/// The standalone binary's own behaviour: preprocessing equal to the Swift one, the trace, bad
/// input, and what it links.
@Suite(.serialized) struct BinaryTests {
  static let built: Result<URL, any Error> = Result {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vitc-binary-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let binary = directory.appendingPathComponent("tiny")
    let result = try run(try vitcExecutable(), ["build", "samples/tiny.graph", "--random-weights", "3", "-o", binary.path])
    guard result.status == 0 else { throw CocoaError(.executableLoad, userInfo: ["output": result.output]) }
    return binary
  }

  /// One definition of the preprocessing, implemented twice (Swift, C): equal to the bit.
  @Test(arguments: ["chelsea", "coffee", "astronaut"])
  func preprocessingInCEqualsSwift(image: String) throws {
    let binary = try Self.built.get()
    let dump = binary.deletingLastPathComponent().appendingPathComponent("\(image).f32")
    let path = "samples/images/\(image).ppm"
    let ran = try run(binary, [path, "--dump-input", dump.path])
    try #require(ran.status == 0, "\(ran.output)")
    let swift = Preprocessing.deitEvaluation(try PPM.read(path: repositoryRoot.appendingPathComponent(path).path), crop: 224)
    #expect(try readF32(dump) == swift.scalars)
  }

  @Test func traceHasTheDocumentedFormAndTheLogits() throws {
    let binary = try Self.built.get()
    let folder = binary.deletingLastPathComponent()
    let trace = folder.appendingPathComponent("trace.json")
    let logits = folder.appendingPathComponent("logits.f32")
    let ran = try run(binary, ["--image", "samples/images/coffee.ppm", "--trace", trace.path, "--out", logits.path, "--top", "3"])
    try #require(ran.status == 0, "\(ran.output)")
    #expect(ran.output.split(separator: "\n").count == 4)
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: trace)) as! [String: Any]
    #expect(json["method"] as? String == "none")
    #expect((json["stages"] as? [Any])?.isEmpty == true)
    let fromTrace = (json["logits"] as! [Double]).map { Float($0) }
    #expect(fromTrace == (try readF32(logits)))  // %.9g round-trips float32
  }

  @Test(arguments: [
    (["--input", "nowhere.f32"], "nowhere.f32: error: no such file"),
    (["samples/tiny.graph"], "samples/tiny.graph: error: not a PPM image"),
    (["--input", "samples/images/astronaut.ppm"], "samples/images/astronaut.ppm: error: expected 602112 bytes"),
    (["--bench", "zero", "samples/images/astronaut.ppm"], "error: --bench takes a whole number"),
    (["--frobnicate"], "error: unknown option '--frobnicate'"),
    ([], "error: give exactly one of IMAGE.ppm"),
  ])
  func badInputExitsWithTwoAndOneLine(arguments: [String], message: String) throws {
    let binary = try Self.built.get()
    let ran = try run(binary, arguments)
    #expect(ran.status == 2)
    #expect(ran.output.hasPrefix(message), "\(ran.output)")
    #expect(ran.output.split(separator: "\n").count == 1)
  }

  @Test func truncatedImageIsRefused() throws {
    let binary = try Self.built.get()
    let cut = binary.deletingLastPathComponent().appendingPathComponent("cut.ppm")
    try Data(try Data(contentsOf: repositoryRoot.appendingPathComponent("samples/images/chelsea.ppm")).prefix(5000)).write(to: cut)
    let ran = try run(binary, [cut.path])
    #expect(ran.status == 2)
    #expect(ran.output.contains("error: truncated PPM: expected 405900 bytes of pixels, found 4985"))
  }

  /// Only libc, libm and libpthread (and the loader and vDSO).
  @Test func linksOnlyTheCLibraries() throws {
    let binary = try Self.built.get()
    let ldd = try run(URL(fileURLWithPath: "/usr/bin/ldd"), [binary.path])
    try #require(ldd.status == 0, "\(ldd.output)")
    let libraries = ldd.output.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
      .map { $0.trimmingCharacters(in: .whitespaces) }
    for library in libraries {
      let allowed = ["linux-vdso", "libc.so", "libm.so", "libpthread.so", "ld-linux", "/lib64/ld-linux"].contains { library.hasPrefix($0) }
      #expect(allowed, "links \(library)")
    }
    #expect(libraries.contains { $0.hasPrefix("libc.so") })
  }
}
