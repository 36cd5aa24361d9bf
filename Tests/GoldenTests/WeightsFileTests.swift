import Foundation
import TestSupport
import Testing

/// `--weights-at-runtime`: the binary maps a vitc weights file (docs/weights-file.md) and
/// refuses a wrong one with one clear line.
@Suite(.serialized) struct WeightsFileTests {
  /// Two builds of tiny with evit:0.7: one carrying its weights, one reading them.
  static let built: Result<(embedded: URL, runtime: URL, directory: URL), any Error> = Result {
    let directory = try scratchDirectory()
    let embedded = directory.appendingPathComponent("embedded")
    let runtime = directory.appendingPathComponent("runtime")
    for (binary, extra) in [(embedded, [String]()), (runtime, ["--weights-at-runtime"])] {
      let outcome = try vitc(["build", "samples/tiny.graph", "--random-weights", "1", "--prune", "evit:0.7", "-o", binary.path] + extra)
      guard outcome.status == 0 else { throw CocoaError(.executableLoad, userInfo: ["output": outcome.output]) }
    }
    return (embedded, runtime, directory)
  }

  @Test func runtimeWeightsGiveTheSameLogitsAsEmbeddedOnes() throws {
    let (embedded, runtime, directory) = try Self.built.get()
    let weights = runtime.path + ".weights"
    #expect(FileManager.default.fileExists(atPath: weights))
    let sizes = try [embedded, runtime].map { try FileManager.default.attributesOfItem(atPath: $0.path)[.size] as! Int }
    #expect(sizes[1] < sizes[0] / 5)  // the weights are not in the binary
    let a = directory.appendingPathComponent("a.f32"), b = directory.appendingPathComponent("b.f32")
    #expect(try run(embedded, ["samples/images/chelsea.ppm", "--out", a.path]).status == 0)
    let ran = try run(runtime, ["samples/images/chelsea.ppm", "--out", b.path, "--weights", weights])
    #expect(ran.status == 0, "\(ran.output)")
    #expect(try readF32(a) == (try readF32(b)))  // the same code on the same bytes
  }

  /// Each kind of wrong file, and a missing one.
  @Test func wrongWeightsFilesAreRefused() throws {
    let (embedded, runtime, directory) = try Self.built.get()
    let good = try Data(contentsOf: URL(fileURLWithPath: runtime.path + ".weights"))
    func refusal(_ bytes: Data?, _ binary: URL? = nil) throws -> String {
      var arguments = ["samples/images/chelsea.ppm"]
      if let bytes {
        let file = directory.appendingPathComponent("w-\(UUID().uuidString)")
        try bytes.write(to: file)
        arguments += ["--weights", file.path]
      }
      let outcome = try run(binary ?? runtime, arguments)
      #expect(outcome.status == 2)
      #expect(outcome.stdout.isEmpty)
      return outcome.stderr
    }
    var corrupt = good
    corrupt[good.count / 2] ^= 0x40
    var otherName = good
    otherName[32] = UInt8(ascii: "x")
    var newer = good
    newer[8] = 2
    #expect(try refusal(nil).contains("this model reads its weights at run time: give --weights F"))
    #expect(try refusal(good.prefix(good.count - 4)).contains("truncated: shorter than its header says"))
    #expect(try refusal(corrupt).contains("corrupt: its checksum does not match its contents"))
    #expect(try refusal(otherName).contains("the weights of another model"))
    #expect(try refusal(newer).contains("a weights file format this binary does not read"))
    #expect(try refusal(try Data(contentsOf: URL(fileURLWithPath: repositoryPath("samples/images/coffee.ppm"))))
      .contains("not a vitc weights file"))
    #expect(try refusal(good, embedded).contains("this binary carries its weights"))

    // Intact weights of the same model, drawn from another seed: not the ones it was built with.
    let other = directory.appendingPathComponent("other")
    let built = try vitc(["build", "samples/tiny.graph", "--random-weights", "2", "--prune", "evit:0.7", "--weights-at-runtime", "-o", other.path])
    try #require(built.status == 0, "\(built.output)")
    #expect(try refusal(try Data(contentsOf: URL(fileURLWithPath: other.path + ".weights")))
      .contains("intact, but not the weights this binary was built with"))
    // The weights of a DynamicViT build carry predictors: another size.
    let dyvit = directory.appendingPathComponent("dyvit")
    try #require(try vitc(["build", "samples/tiny.graph", "--random-weights", "1", "--prune", "dyvit:0.7", "--weights-at-runtime", "-o", dyvit.path]).status == 0)
    #expect(try refusal(try Data(contentsOf: URL(fileURLWithPath: dyvit.path + ".weights"))).contains("a weights blob of another size"))
  }
}
