import Foundation
import TestSupport
import Testing

/// vitc never writes onto a file the same command reads, nor over a directory: one line, exit
/// status 1, the file or folder as it was.
@Suite struct OutputSafetyTests {
  @Test func keptMapOrTraceNamingTheImageIsRefused() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let image = scratch.appendingPathComponent("chelsea.ppm")
    try FileManager.default.copyItem(atPath: repositoryPath("samples/images/chelsea.ppm"), toPath: image.path)
    let original = try Data(contentsOf: image)
    for option in ["--kept-map", "--trace"] {
      let outcome = try vitc([
        "run", "samples/tiny.graph", "--random-weights", "1", "--image", image.path, option, image.path,
      ])
      #expect(outcome.status == 1, "\(option): \(outcome.output)")
      #expect(outcome.stderr.contains("would overwrite the input"), "\(option): \(outcome.stderr)")
      #expect(outcome.stderr.split(separator: "\n").count == 1)
      #expect(try Data(contentsOf: image) == original)
    }
  }

  @Test func compileAndDumpOutputsNamingAnInputAreRefused() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    // A graph whose name is what `compile -o` would write beside it.
    let graph = scratch.appendingPathComponent("model.h")
    try FileManager.default.copyItem(atPath: repositoryPath("samples/tiny.graph"), toPath: graph.path)
    let original = try Data(contentsOf: graph)
    let compiled = try vitc(["compile", graph.path, "--random-weights", "1", "-o", scratch.appendingPathComponent("model.c").path])
    #expect(compiled.status == 1 && compiled.stderr.contains("would overwrite the graph"), "\(compiled.output)")
    let dumped = try vitc(["dump", graph.path, "-o", graph.path])
    #expect(dumped.status == 1 && dumped.stderr.contains("would overwrite the graph"), "\(dumped.output)")
    #expect(try Data(contentsOf: graph) == original)
    #expect(!FileManager.default.fileExists(atPath: scratch.appendingPathComponent("model.c").path))
  }

  @Test func buildOntoADirectoryIsRefused() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    try Data("mine".utf8).write(to: scratch.appendingPathComponent("keep.txt"))
    let outcome = try vitc(["build", "samples/tiny.graph", "--random-weights", "1", "-o", scratch.path])
    #expect(outcome.status == 1 && outcome.stderr.contains("is a directory"), "\(outcome.output)")
    #expect(try Data(contentsOf: scratch.appendingPathComponent("keep.txt")) == Data("mine".utf8))
  }
}
