import Foundation
import TestSupport
import Testing

@Suite struct FlopsAndDumpCommandTests {
  @Test(arguments: [
    ("samples/deit-t.graph", "1,258,411,200", "5,717,416"),
    ("samples/deit-s.graph", "4,608,338,304", "22,050,664"),
    ("samples/deit-b.graph", "17,582,740,224", "86,567,656"),
  ])
  func flopsPrintsThePapersNumbers(graph: String, macs: String, parameters: String) throws {
    let outcome = try vitc(["flops", graph])
    #expect(outcome.status == 0)
    let lines = outcome.stdout.split(separator: "\n")
    #expect(lines.contains { $0.hasPrefix("total") && $0.contains(" \(macs) ") })
    #expect(lines.contains { $0.hasPrefix("parameters") && $0.hasSuffix(" \(parameters)") })
    #expect(lines.filter { $0.hasPrefix("block ") }.count == 12)
  }

  /// `--precision int8`: flops states the int8 share; the hex embedding (float32 text) is
  /// refused in one line with nothing written; an unknown precision names the choices.
  @Test func precisionOnTheCommandLine() throws {
    let flops = try vitc(["flops", "samples/deit-s.graph", "--precision", "int8"])
    #expect(flops.status == 0)
    // 12 blocks × 197 tokens × 1,769,472 MACs of qkv, proj, fc1 and fc2.
    #expect(flops.stdout.contains("int8 (the blocks' linears): 4,183,031,808 of fvcore's"), "\(flops.stdout)")
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let output = scratch.appendingPathComponent("model.c")
    let hex = try vitc([
      "compile", "samples/tiny.graph", "--random-weights", "1", "--precision", "int8", "--embed-weights", "hex", "-o", output.path,
    ])
    #expect(hex.status == 1)
    #expect(hex.stderr == "error: --embed-weights hex writes float32 arrays, but this model's int8 weights are bytes: use --embed-weights incbin or file\n")
    #expect(!FileManager.default.fileExists(atPath: output.path))
    let bad = try vitc(["flops", "samples/tiny.graph", "--precision", "int4"])
    #expect(bad.status != 0 && bad.stderr.contains("int4") && bad.stderr.contains("f32") && bad.stderr.contains("int8"), "\(bad.stderr)")
  }

  @Test func dumpOutputIsAGraphThatVitcReadsBack() throws {
    let directory = try scratchDirectory()
    let dumped = directory.appendingPathComponent("tiny.parsed.graph").path
    let first = try vitc(["dump", "--stage", "parsed", "samples/tiny.graph", "-o", dumped])
    #expect(first.status == 0)
    let again = try vitc(["dump", "--stage", "parsed", dumped])
    #expect(again.status == 0)
    let text = try String(contentsOfFile: dumped, encoding: .utf8)
    // Same body; only the provenance comment names a different source file.
    #expect(again.stdout.split(separator: "\n").dropFirst() == text.split(separator: "\n").dropFirst())
    // The dump describes the same model: the same MACs and parameters.
    #expect(try vitc(["flops", dumped]).stdout == (try vitc(["flops", "samples/tiny.graph"])).stdout)
  }

  @Test func badGraphIsOneLineWithItsPlaceAndNoOutputFile() throws {
    let directory = try scratchDirectory()
    let graph = directory.appendingPathComponent("bad.graph")
    try "graph g(x: f32[4]) -> f32[4] {\n  y = gleu(x)\n  return y\n}\n".write(to: graph, atomically: true, encoding: .utf8)
    let output = directory.appendingPathComponent("out.graph").path
    let outcome = try vitc(["dump", "--stage", "parsed", graph.path, "-o", output])
    #expect(outcome.status == 1)
    #expect(outcome.stderr.hasPrefix("\(graph.path):2:7: error: unknown op 'gleu'; did you mean 'gelu'?"))
    #expect(outcome.stderr.split(separator: "\n").count == 1)
    #expect(!FileManager.default.fileExists(atPath: output))
    #expect(outcome.stdout.isEmpty)
  }

  @Test func missingGraphFile() throws {
    let outcome = try vitc(["flops", "no/such.graph"])
    #expect(outcome.status == 1)
    #expect(outcome.stderr == "no/such.graph: error: cannot read the graph: no such file\n")
  }

  @Test func helpExplainsTheCommands() throws {
    let outcome = try vitc(["--help"])
    #expect(outcome.status == 0)
    for command in ["run", "flops", "dump"] {
      #expect(outcome.stdout.contains("  \(command) "), "--help should list '\(command)'")
    }
  }
}
