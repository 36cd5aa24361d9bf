import ArgumentParser
import Foundation
import VitFrontend
import VitIR
import VitInterpreter
import VitPasses

struct Calibrate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Pick AS-ViT thresholds that meet a MACs budget on a set of images.",
    discussion: """
      AS-ViT publishes no trained thresholds. This command chooses them without training: the \
      thresholds keep the official ratio 1 : 2 : 3 … of the initial values (0.001, 0.002, \
      0.003; SEMANTICS.md §4.4), θ_s = c·(s+1)·0.001, and c is found by bisection (on log c) so \
      that the average fvcore MACs over the images are --budget times the dense model's. Each \
      step runs the reference interpreter on every image (in parallel). Prints a ready \
      --prune spec. Use a release build (swift build -c release): the interpreter is slow.
      """)

  @OptionGroup var model: ModelOptions

  @Option(help: ArgumentHelp("The method to calibrate: asvit, optionally with @L1,L2,… locations.", valueName: "spec"))
  var prune: String = "asvit"

  @Option(help: ArgumentHelp("Target average MACs as a fraction of the dense model's, in (0, 1].", valueName: "fraction"))
  var budget: Double

  @Option(help: ArgumentHelp("A directory of PPM images (every *.ppm in it, sorted by name).", valueName: "dir"))
  var images: String?

  @Option(
    help: ArgumentHelp(
      "Or an evaluation set (docs/eval-set.md, as vitc eval reads): its first --max-images images.", valueName: "dir"))
  var data: String?

  @Option(help: "Use at most this many images (the first ones by name).")
  var maxImages: Int = 64

  @Option(help: "Bisection steps.")
  var steps: Int = 14

  func validate() throws {
    guard budget > 0, budget <= 1 else { throw ValidationError("--budget must be in (0, 1], found \(budget)") }
    guard prune == "asvit" || prune.hasPrefix("asvit@") else {
      throw ValidationError("--prune must be 'asvit' or 'asvit@L1,L2,…' (the thresholds are what calibrate picks)")
    }
    guard maxImages >= 1, steps >= 1 else { throw ValidationError("--max-images and --steps must be at least 1") }
    guard (images == nil) != (data == nil) else { throw ValidationError("give exactly one of --images DIR and --data DIR") }
  }

  func run() throws {
    try reportingErrors {
      let parsed = try GraphLoader.load(path: model.graph)
      let base = try ScheduleParser.parse(prune, depth: parsed.blocks.count)
      let inputs: [Tensor]
      if let images {
        let files = try FileManager.default.contentsOfDirectory(atPath: images).filter { $0.hasSuffix(".ppm") }.sorted()
          .prefix(maxImages)
        guard !files.isEmpty else { throw CalibrateError.noImages(images) }
        inputs = try files.map { Preprocessing.evaluation(try PPM.read(path: images + "/" + $0), for: parsed) }
      } else {
        let set = try EvalSet.load(directory: data!, side: parsed.type(of: parsed.inputs[0]).dims.last!.bound, limit: maxImages)
        inputs = set.images.indices.map { Preprocessing.evaluation(set.rgb($0), for: parsed) }
      }
      let dense = FlopCounter.report(try Pipeline.run(parsed, through: "pruned"), convention: .fvcore).totalMACs
      let target = budget * Double(dense)
      // The weights once, for the graph with every parameter any threshold setting uses.
      let weights = try model.load(prune: thresholdsSpec(base, scale: 1)).weights

      /// Average MACs and tokens per stage for the thresholds c·(s+1)·0.001.
      func evaluate(_ c: Double) throws -> (macs: Double, tokens: [Double]) {
        let schedule = try ScheduleParser.parse(thresholdsSpec(base, scale: c), depth: parsed.blocks.count)
        let graph = try Pipeline.run(parsed, through: "pruned", schedule: schedule)
        let interpreter = try Interpreter(graph: graph, weights: weights)
        let results = ResultBox<[Int]>(count: inputs.count)
        DispatchQueue.concurrentPerform(iterations: inputs.count) { index in
          results.set(index, Result<[Int], any Error>(catching: { try interpreter.runTraced([inputs[index]]).stages.map(\.tokens) }))
        }
        var macs = 0.0
        var tokens = [Double](repeating: 0, count: base.locations.count)
        for result in results.values {
          let stages = try result!.get()
          macs += Double(FlopCounter.report(graph, convention: .fvcore, counts: FlopCounter.counts(of: graph, stages: stages)).totalMACs)
          for (s, count) in stages.enumerated() { tokens[s] += Double(count) }
        }
        return (macs / Double(inputs.count), tokens.map { $0 / Double(inputs.count) })
      }

      var (low, high) = (log(1e-3), log(1e3))  // more MACs at low c, fewer at high c
      var best: (c: Double, macs: Double, tokens: [Double])? = nil
      for step in 1...steps {
        let c = exp((low + high) / 2)
        let (macs, tokens) = try evaluate(c)
        if best == nil || abs(macs - target) < abs(best!.macs - target) { best = (c, macs, tokens) }
        printError(String(format: "step %d/%d: c = %.5g, MACs %.4f of dense", step, steps, c, macs / Double(dense)))
        if macs > target { low = log(c) } else { high = log(c) }
      }
      let chosen = best!
      let spec = thresholdsSpec(base, scale: chosen.c)
      print("calibrated on \(inputs.count) image\(inputs.count == 1 ? "" : "s") from \(images ?? data!): average MACs \(String(format: "%.4f", chosen.macs / Double(dense))) of dense (budget \(budget))")
      print("tokens per stage (average): " + zip(base.locations, chosen.tokens).map { "block \($0) \(String(format: "%.1f", $1))" }.joined(separator: ", "))
      print("--prune \(spec)")
    }
  }

  /// `asvit:T1,…[@…]` with T_s = c·(s+1)·0.001, printed with 4 significant digits.
  func thresholdsSpec(_ base: Schedule, scale c: Double) -> String {
    let thresholds = base.locations.indices.map { String(format: "%.4g", c * Double($0 + 1) * 0.001) }
    let at = prune.firstIndex(of: "@").map { String(prune[$0...]) } ?? ""
    return "asvit:" + thresholds.joined(separator: ",") + at
  }
}

/// Results written by concurrent iterations, one slot each.
enum CalibrateError: Error, CustomStringConvertible {
  case noImages(String)
  var description: String {
    switch self {
    case .noImages(let directory): "\(directory): error: no .ppm images in the directory"
    }
  }
}
