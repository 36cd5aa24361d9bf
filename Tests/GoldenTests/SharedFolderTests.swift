import Foundation
import TestSupport
import Testing

/// Every file `vitc compile` writes is either named after the model's stem or shared runtime
/// that is byte-identical for every model, so two models compiled into one folder both build
/// (each from its own `<stem>_main.c`) and run.
@Suite struct SharedFolderTests {
  @Test func twoModelsInOneFolderBothBuildAndRun() throws {
    let folder = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    func contents() throws -> [String: Data] {
      var files: [String: Data] = [:]
      for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
        files[name] = try Data(contentsOf: folder.appendingPathComponent(name))
      }
      return files
    }
    var buildCommands: [String] = []
    var afterFirst: [String: Data] = [:]
    for (stem, prune) in [("dense", "none"), ("evit", "evit:0.7")] {
      let outcome = try vitc([
        "compile", "samples/tiny.graph", "--random-weights", "1", "--prune", prune, "-o", folder.appendingPathComponent("\(stem).c").path,
      ])
      #expect(outcome.status == 0, "\(outcome.output)")
      let line = outcome.stdout.split(separator: "\n").first { $0.hasPrefix("build for host with: ") }
      buildCommands.append(String(try #require(line).dropFirst("build for host with: ".count)))
      if afterFirst.isEmpty { afterFirst = try contents() }
    }
    // The second model changed none of the first one's files (shared ones are rewritten with
    // the same bytes) and added its own.
    let afterSecond = try contents()
    for (name, data) in afterFirst { #expect(afterSecond[name] == data, "\(name) changed") }
    #expect(Set(afterSecond.keys).subtracting(afterFirst.keys) == ["evit.c", "evit.h", "evit_main.c", "evit_weights.S", "evit_weights.bin"])
    #expect(afterFirst["dense_main.c"] != nil && afterFirst["main.c"] != nil)

    var logits: [[Float]] = []
    for (stem, command) in zip(["dense", "evit"], buildCommands) {
      #expect(command.contains("\(stem)_main.c") && !command.contains("/main.c "), "\(command)")
      let built = try run(URL(fileURLWithPath: "/bin/sh"), ["-c", command])
      #expect(built.status == 0, "\(command)\n\(built.output)")
      let out = folder.appendingPathComponent("\(stem).f32"), trace = folder.appendingPathComponent("\(stem).json")
      let ran = try run(folder.appendingPathComponent(stem), ["samples/images/chelsea.ppm", "--out", out.path, "--trace", trace.path])
      #expect(ran.status == 0, "\(ran.output)")
      let json = try JSONSerialization.jsonObject(with: Data(contentsOf: trace)) as! [String: Any]
      #expect(json["method"] as? String == (stem == "dense" ? "none" : "evit:0.7"))
      #expect(((json["stages"] as? [Any]) ?? []).isEmpty == (stem == "dense"))
      logits.append(try readF32(out))
    }
    #expect(logits.count == 2 && logits[0].count == 1000 && logits[1].count == 1000)
    #expect(logits[0] != logits[1])
  }
}
