import Foundation
import VitFrontend
import VitIR
import VitInterpreter
import VitPasses

/// Where a model's weights come from.
public enum WeightsSource: Sendable, Equatable {
  /// A safetensors file with timm's tensor names.
  case file(String)
  /// Deterministic random weights from a seed (docs/random-weights.md).
  case random(seed: UInt64)
  /// None: enough for the commands that only read the graph (dump, flops without images).
  case none

  /// How the provenance lines of emitted files name it.
  public var provenance: String {
    switch self {
    case .file(let path): path
    case .random(let seed): "--random-weights \(seed)"
    case .none: "no weights"
    }
  }
}

/// A graph after the pipeline, its weights and the schedule that shaped it.
public struct LoadedModel: Sendable {
  public var graph: Graph
  public var weights: [String: Tensor]
  public var schedule: Schedule
}

/// One compilation: a graph file, its weights and a pruning schedule, loaded and resolved once.
/// Every command of vitc goes through a session: it runs the pipeline to a stage, binds the
/// weights, emits C, builds executables, and runs the interpreter.
public struct CompileSession: Sendable {
  /// The graph file as the user named it.
  public let graphPath: String
  /// The graph as the front end read it (stage `parsed`).
  public let parsed: Graph
  public let weightsSource: WeightsSource
  /// The weights file, opened and indexed (its tensors are read when bound).
  public let weightsFile: SafetensorsFile?
  /// The schedule, fully resolved: AS-ViT's thresholds come from the spec, the weights
  /// (`score_predictor.{s}.keep_threshold`) or, with no weights file, the official initial values.
  public private(set) var schedule: Schedule
  /// The arithmetic of the linear layers (`--precision`; the Quantize pass).
  public var precision: Precision = .f32
  /// Bind weights holding NaN or infinities instead of refusing them (`--allow-non-finite`).
  public var allowNonFinite = false
  /// With no weights source and an AS-ViT spec that gives no thresholds: the schedule holds the
  /// initial values as placeholders, and a model compiled from this session reads the learned
  /// ones (`score_predictor.{s}.keep_threshold`) from the weights file at load.
  public private(set) var thresholdsFromWeights = false

  /// `path` is a `.graph`, or a checkpoint (`.pth`, `.bin`, `.safetensors` …) whose graph is
  /// inferred from its tensors (`GraphInference`, with `inference` for what shapes cannot
  /// tell; `note` hears each default assumed) and whose weights are then the default source.
  public init(
    graph path: String, weights: WeightsSource, prune spec: String = "none",
    inference: GraphInference.Settings = GraphInference.Settings(), note: (String) -> Void = { _ in }
  ) throws {
    graphPath = path
    var weights = weights
    var checkpoint: SafetensorsFile? = nil
    if GraphInference.isWeightsFile(path) {
      let file = try WeightsReader.open(path: path)
      checkpoint = file
      let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
      let inferred = try GraphInference(file: file, settings: inference, stem: stem)
      for assumption in inferred.assumptions { note("\(path): note: assumed \(assumption)") }
      if let trainedFor = inferred.trainedFor { note("\(path): note: trained for --prune \(trainedFor)") }
      parsed = try GraphLoader.parse(inferred.text, file: path + " (inferred graph)")
      if weights == .none { weights = .file(path) }
    } else {
      parsed = try GraphLoader.load(path: path)
    }
    weightsSource = weights
    if case .file(let file) = weights {
      // The checkpoint that gave the graph is not read a second time.
      weightsFile = file == path ? checkpoint : try WeightsReader.open(path: file)
    } else {
      weightsFile = nil
    }
    (schedule, thresholdsFromWeights) = try Self.schedule(spec, for: parsed, weights: weightsFile, source: weights)
  }

  /// `spec` resolved for `graph`: AS-ViT's thresholds from the weights when it gives none, and
  /// whether they are still to come from a weights file (none given, no random weights). A
  /// method the model's token layout refuses is refused before its thresholds are looked up.
  private static func schedule(
    _ spec: String, for graph: Graph, weights: SafetensorsFile?, source: WeightsSource
  ) throws -> (Schedule, thresholdsFromWeights: Bool) {
    let method = try ScheduleParser.parse(spec, depth: graph.blocks.count, backbone: graph.backbone).kind
    if method != .none { _ = try InsertPruning.tokenLayout(for: method, spec: spec, of: graph) }
    if source == .none {
      var asked = false
      let placeholders: ScheduleParser.ThresholdSource = { stages in
        asked = true
        return MethodKind.asvitInitialThresholds(stages: stages)
      }
      let schedule = try ScheduleParser.parse(spec, depth: graph.blocks.count, backbone: graph.backbone, learnedThresholds: placeholders)
      return (schedule, asked)
    }
    return (
      try ScheduleParser.parse(
        spec, depth: graph.blocks.count, backbone: graph.backbone, learnedThresholds: thresholdSource(weights)),
      false
    )
  }

  /// The graph at `stage` (`planned` is the last pass's graph; `memoryPlan()` plans it).
  public func graph(at stage: Stage = .planned) throws -> Graph {
    try Pipeline.run(parsed, through: stage, schedule: schedule, precision: precision)
  }

  /// The graph at `stage` with its weights bound (DynamicViT's predictors included). Needs a
  /// weights source.
  public func model(at stage: Stage = .planned) throws -> LoadedModel {
    let graph = try graph(at: stage)
    switch weightsSource {
    case .none:
      throw DriverError.weightsNeeded
    case .random(let seed):
      return LoadedModel(graph: graph, weights: RandomWeights.generate(for: graph, seed: seed), schedule: schedule)
    case .file:
      let file = weightsFile!
      // Tensors the schedule added (no place in the graph file declares them).
      for parameter in graph.parameters where graph[parameter].location == nil && file.entries[graph[parameter].name] == nil {
        throw ScheduleError.missingTensor(graph[parameter].name, method: schedule.kind.rawValue, path: file.path)
      }
      return LoadedModel(graph: graph, weights: try WeightBinding.bind(graph, to: file, allowNonFinite: allowNonFinite), schedule: schedule)
    }
  }

  /// The weights file's tensors that the graph with this schedule never reads, sorted (a graph
  /// that forgets a bias would otherwise run on the rest of the weights without a word);
  /// empty without a weights file, or when the file lacks a tensor the graph reads.
  public func unusedTensors() throws -> [String] {
    guard let file = weightsFile else { return [] }
    let graph = try graph(at: .planned)
    let read = Set(graph.parameters.map { graph[$0].name })
    // A file that misses what the graph reads fails to bind, with its own clearer message.
    guard read.allSatisfy({ file.entries[$0] != nil }) else { return [] }
    return file.names.filter { !read.contains($0) && !Self.isTrainingOnly($0) }
  }

  /// Tensors not worth a warning when unread: those a checkpoint carries for training only
  /// (BatchNorm's `num_batches_tracked`), and the predictors of DynamicViT and AS-ViT, which a
  /// checkpoint trained for them holds whatever schedule this run uses.
  static func isTrainingOnly(_ name: String) -> Bool {
    name.hasSuffix(".num_batches_tracked") || name.hasPrefix("score_predictor.")
  }

  /// The same graph and weights with another pruning spec (calibration tries many).
  public func with(prune spec: String) throws -> CompileSession {
    var session = self
    (session.schedule, session.thresholdsFromWeights) = try Self.schedule(spec, for: parsed, weights: weightsFile, source: weightsSource)
    return session
  }


  /// Where AS-ViT's thresholds come from when a spec gives none: the weights file, if any.
  private static func thresholdSource(_ file: SafetensorsFile?) -> ScheduleParser.ThresholdSource? {
    guard let file else { return nil }
    func lookup(_ stages: Int) throws(ScheduleError) -> [Double] { try learnedThresholds(stages: stages, in: file) }
    return lookup
  }

  /// AS-ViT's learned thresholds, `score_predictor.{s}.keep_threshold`, one number each.
  private static func learnedThresholds(stages: Int, in file: SafetensorsFile) throws(ScheduleError) -> [Double] {
    var thresholds: [Double] = []
    for stage in 0..<stages {
      let name = InsertPruning.thresholdParameter(stage: stage)
      guard let entry = file.entries[name] else { throw .missingTensor(name, method: "asvit", path: file.path) }
      guard entry.shape.reduce(1, *) == 1, let tensor = try? file.tensor(name) else {
        throw .thresholdNotScalar(name, shape: entry.shape, path: file.path)
      }
      thresholds.append(Double(tensor.scalars[0]))
    }
    return thresholds
  }

  /// Class names for the model: `explicit` if given, else those beside the graph that fit.
  public func labels(explicit: String?) throws -> [String]? {
    try Labels.load(graphPath: graphPath, explicit: explicit, classes: parsed.outputType.dims.last?.bound ?? 0)
  }
}
