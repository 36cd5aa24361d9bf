import Foundation
import TestSupport
import Testing

/// `vitc flops` and `vitc dump` on LV-ViT (SEMANTICS-LVVIT.md): the fvcore integers of §L8 and
/// LV-ViT's own count on their lines, and dumps with the new ops that read back as the same model.
@Suite struct LVViTCommandTests {
  @Test(arguments: [
    ("none", "6,568,784,256", "6,572,402,112", "26,151,824"),
    ("dyvit:0.7", "4,663,533,888", "4,575,977,760", "26,875,574"),
  ])
  func flopsPrintsBothCounts(prune: String, fvcore: String, own: String, parameters: String) throws {
    let outcome = try vitc(["flops", "samples/lvvit-s.graph", "--prune", prune])
    #expect(outcome.status == 0, "\(outcome.output)")
    let lines = outcome.stdout.split(separator: "\n")
    #expect(lines.contains { $0.hasPrefix("total") && $0.contains(" \(fvcore) ") })
    #expect(lines.contains { $0.hasPrefix("LV-ViT's count") && $0.contains(" \(own) ") })
    #expect(lines.contains { $0.hasPrefix("parameters") && $0.hasSuffix(" \(parameters)") })
    #expect(lines.filter { $0.hasPrefix("block ") }.count == 16)
  }

  @Test func deitHasNoLVViTCount() throws {
    #expect(!(try vitc(["flops", "samples/deit-s.graph"])).stdout.contains("LV-ViT"))
  }

  /// The dump of every stage reads back (conv2d's stride and pad, batchnorm's eps, relu,
  /// aux_head_max) and counts the same.
  @Test(arguments: ["parsed", "pruned", "planned"])
  func dumpReadsBackAsTheSameModel(stage: String) throws {
    let directory = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let dumped = directory.appendingPathComponent("lvvit.\(stage).graph").path
    let first = try vitc(["dump", "--stage", stage, "Tests/Fixtures/lvvit/tiny.graph", "--prune", "evit:0.7", "-o", dumped])
    #expect(first.status == 0, "\(first.output)")
    let text = try String(contentsOfFile: dumped, encoding: .utf8)
    #expect(text.contains("conv2d(") && text.contains("stride=2, pad=3") && text.contains("aux_head_max("))
    // The parsed stage is before pruning: the dense model.
    let original = try vitc(["flops", "Tests/Fixtures/lvvit/tiny.graph", "--prune", stage == "parsed" ? "none" : "evit:0.7"]).stdout
    let again = try vitc(["flops", dumped]).stdout
    // Same rows and totals (the first line names the graph and the spec).
    #expect(again.split(separator: "\n").dropFirst() == original.split(separator: "\n").dropFirst())
  }
}
