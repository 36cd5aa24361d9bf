import ArgumentParser
import Foundation
import VitDriver

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
    try model.requireWeights()
    guard budget > 0, budget <= 1 else { throw ValidationError("--budget must be in (0, 1], found \(budget)") }
    guard prune == "asvit" || prune.hasPrefix("asvit@") else {
      throw ValidationError("--prune must be 'asvit' or 'asvit@L1,L2,…' (the thresholds are what calibrate picks)")
    }
    guard maxImages >= 1, steps >= 1 else { throw ValidationError("--max-images and --steps must be at least 1") }
    guard (images == nil) != (data == nil) else { throw ValidationError("give exactly one of --images DIR and --data DIR") }
  }

  func run() throws {
    try reportingErrors {
      var calibration = Calibration(base: prune, budget: budget)
      calibration.maxImages = maxImages
      calibration.steps = steps
      let source: Calibration.Images = images.map { .directory($0) } ?? .evalSet(data!)
      let result = try calibration.run(try model.session(prune: "none"), images: source) { step in
        printError(String(format: "step %d/%d: c = %.5g, MACs %.4f of dense", step.index, steps, step.scale, step.macsFraction))
      }
      print("calibrated on \(result.images) image\(result.images == 1 ? "" : "s") from \(source.path): average MACs \(String(format: "%.4f", result.macsFraction)) of dense (budget \(budget))")
      print("tokens per stage (average): " + result.tokens.map { "block \($0.block) \(String(format: "%.1f", $0.mean))" }.joined(separator: ", "))
      print("--prune \(result.spec)")
    }
  }
}
