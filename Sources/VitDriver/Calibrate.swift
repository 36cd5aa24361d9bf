import Foundation
import VitFrontend
import VitIR
import VitInterpreter
import VitPasses

/// AS-ViT thresholds for a MACs budget, chosen without training (`vitc calibrate`): the
/// thresholds keep the official ratio 1 : 2 : 3 … of the initial values, θ_s = c·(s+1)·0.001,
/// and c is found by bisection on log c so that the mean fvcore MACs over the images come
/// closest to `budget` times the dense model's.
public struct Calibration: Sendable {
  /// Where the images come from.
  public enum Images: Sendable {
    /// Every *.ppm of a directory, sorted by name.
    case directory(String)
    /// An evaluation set (docs/eval-set.md).
    case evalSet(String)

    public var path: String {
      switch self {
      case .directory(let path), .evalSet(let path): path
      }
    }
  }

  /// One bisection step, for progress lines.
  public struct Step: Sendable {
    public var index: Int
    public var scale: Double
    public var macsFraction: Double
  }

  /// The outcome: the spec to use and what it does on the images.
  public struct Result: Sendable {
    public var spec: String
    public var images: Int
    public var macsFraction: Double
    /// Mean tokens per stage, with the stage's block.
    public var tokens: [(block: Int, mean: Double)]
  }

  /// `asvit` or `asvit@L1,L2,…`: the locations to calibrate.
  public var base: String
  public var budget: Double
  public var maxImages = 64
  public var steps = 14

  public init(base: String, budget: Double) {
    self.base = base
    self.budget = budget
  }

  public func run(_ session: CompileSession, images source: Images, progress: (Step) -> Void = { _ in }) throws -> Result {
    let parsed = session.parsed
    let schedule = try ScheduleParser.parse(base, depth: parsed.blocks.count, backbone: parsed.backbone)
    let inputs: [Tensor]
    switch source {
    case .directory(let directory):
      let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".ppm") }.sorted().prefix(maxImages)
      guard !files.isEmpty else { throw DriverError.noImages(directory: directory) }
      inputs = try files.map { Preprocessing.evaluation(try PPM.read(path: directory + "/" + $0), for: parsed) }
    case .evalSet(let directory):
      let set = try EvalSet.load(directory: directory, side: try session.imageSide(parsed), limit: maxImages)
      inputs = set.images.indices.map { Preprocessing.evaluation(set.rgb($0), for: parsed) }
    }
    let dense = FlopCounter.report(try Pipeline.run(parsed, through: .pruned), convention: .fvcore).totalMACs
    let target = budget * Double(dense)
    // The weights once, for the graph with every parameter any threshold setting uses.
    let weights = try session.with(prune: thresholdsSpec(schedule, scale: 1)).model().weights

    /// Mean MACs and tokens per stage for the thresholds c·(s+1)·0.001.
    func evaluate(_ c: Double) throws -> (macs: Double, tokens: [Double]) {
      let graph = try session.with(prune: thresholdsSpec(schedule, scale: c)).graph(at: .pruned)
      let interpreter = try Interpreter(graph: graph, weights: weights)
      let results = ResultBox<[Int]>(count: inputs.count)
      DispatchQueue.concurrentPerform(iterations: inputs.count) { index in
        results.set(index, Swift.Result<[Int], any Error>(catching: { try interpreter.runTraced([inputs[index]]).stages.map(\.tokens) }))
      }
      var macs = 0.0
      var tokens = [Double](repeating: 0, count: schedule.locations.count)
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
      progress(Step(index: step, scale: c, macsFraction: macs / Double(dense)))
      if macs > target { low = log(c) } else { high = log(c) }
    }
    let chosen = best!
    return Result(
      spec: thresholdsSpec(schedule, scale: chosen.c), images: inputs.count, macsFraction: chosen.macs / Double(dense),
      tokens: Array(zip(schedule.locations, chosen.tokens)).map { (block: $0, mean: $1) })
  }

  /// `asvit:T1,…[@…]` with T_s = c·(s+1)·0.001, printed with 4 significant digits.
  func thresholdsSpec(_ schedule: Schedule, scale c: Double) -> String {
    let thresholds = schedule.locations.indices.map { String(format: "%.4g", c * Double($0 + 1) * 0.001) }
    let at = base.firstIndex(of: "@").map { String(base[$0...]) } ?? ""
    return "asvit:" + thresholds.joined(separator: ",") + at
  }
}
