import ArgumentParser
import Foundation
import VitFrontend
import VitIR
import VitPasses

/// The graph and where its weights come from, shared by the subcommands that need weights.
struct ModelOptions: ParsableArguments {
  @Argument(help: "The model graph (.graph file).")
  var graph: String

  @Option(help: ArgumentHelp("Weights as safetensors with timm's tensor names (F32, F16 or BF16).", valueName: "file"))
  var weights: String?

  @Option(
    help: ArgumentHelp(
      "Use deterministic random weights from this seed instead of --weights (docs/random-weights.md).",
      valueName: "seed"))
  var randomWeights: UInt64?

  func validate() throws {
    if (weights == nil) == (randomWeights == nil) {
      throw ValidationError("give exactly one of --weights FILE and --random-weights SEED")
    }
  }

  /// Loads the graph, applies the schedule `prune` (docs/methods.md) and every pass up to
  /// `stage`, and binds the weights of the resulting graph (DynamicViT's predictors included).
  func load(prune: String, through stage: String = Pipeline.stages.last!) throws -> LoadedModel {
    try loadModel(graph: graph, weights: weights, randomWeights: randomWeights, prune: prune, through: stage)
  }
}

/// `ModelOptions.load` for callers with their own options (`flops --image`): exactly one of
/// `weights` and `randomWeights` is given.
func loadModel(
  graph path: String, weights: String?, randomWeights: UInt64?, prune: String, through stage: String = Pipeline.stages.last!
) throws -> LoadedModel {
  let parsed = try GraphLoader.load(path: path)
  let file = try weights.map { path throws(InputError) in try SafetensorsFile(path: path) }
  let schedule = try resolveSchedule(prune, for: parsed, weights: file)
  let graph = try Pipeline.run(parsed, through: stage, schedule: schedule)
  guard let file else {
    return LoadedModel(graph: graph, weights: RandomWeights.generate(for: graph, seed: randomWeights!), schedule: schedule)
  }
  // Tensors the schedule added (no place in the graph file declares them).
  for parameter in graph.parameters where graph[parameter].location == nil && file.entries[graph[parameter].name] == nil {
    throw ScheduleError.missingTensor(graph[parameter].name, method: schedule.methodName, path: file.path)
  }
  return LoadedModel(graph: graph, weights: try WeightBinding.bind(graph, to: file), schedule: schedule)
}

/// Parses `--prune` for a graph. AS-ViT without thresholds in the spec takes the learned ones,
/// `score_predictor.{s}.keep_threshold`, from the weights; with no weights file (random
/// weights, `dump`, `flops`) the official initial values 0.001, 0.002, 0.003 (SEMANTICS §4.4).
func resolveSchedule(_ prune: String, for graph: Graph, weights file: SafetensorsFile?) throws -> Schedule {
  var schedule = try ScheduleParser.parse(prune, depth: graph.blocks.count)
  if case .asvit(nil) = schedule.method {
    schedule.method = .asvit(thresholds: try asvitThresholds(schedule, file: file))
  }
  return schedule
}

private func asvitThresholds(_ schedule: Schedule, file: SafetensorsFile?) throws -> [Double] {
    guard let file else { return schedule.locations.indices.map { 0.001 * Double($0 + 1) } }
    return try schedule.locations.indices.map { stage in
      let name = InsertPruning.thresholdParameter(stage: stage)
      guard file.entries[name] != nil else {
        throw ScheduleError.missingTensor(name, method: "asvit", path: file.path)
      }
      let tensor = try file.tensor(name)
      guard tensor.count == 1 else {
        throw BindingError.shape(name, file: file.path, found: tensor.shape, declared: TensorType(fixed: []), declaredAt: nil)
      }
      return Double(tensor.scalars[0])
    }
}

/// The pruning schedule, shared by every subcommand that builds or reads a graph.
struct PruneOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Token pruning: none, dyvit:RHO, evit:RHO[,nofuse], asvit[:T1,T2,T3], bat:RHO[,clusters=F], tome:R or tome:R0,R1,…; @L1,L2,… sets the blocks (docs/methods.md).",
      valueName: "spec"))
  var prune: String = "none"
}

/// A graph after the pipeline, its weights and the schedule that shaped it.
struct LoadedModel {
  var graph: Graph
  var weights: [String: Tensor]
  var schedule: Schedule
}

/// Runs `body`; a user error is printed as its one-line message on stderr and turns into exit
/// status 1 (ArgumentParser would otherwise prefix "Error:" and show usage).
func reportingErrors(_ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as ExitCode {
    throw error
  } catch let error as ValidationError {
    throw error
  } catch {
    printError("\(error)")
    throw ExitCode.failure
  }
}

func printError(_ message: String) {
  FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Errors of the command line itself.
enum CommandError: Error, CustomStringConvertible {
  case cannotWrite(path: String, reason: String)
  case labels(path: String, reason: String)

  var description: String {
    switch self {
    case .cannotWrite(let path, let reason): "\(path): error: cannot write: \(reason)"
    case .labels(let path, let reason): "\(path): error: \(reason)"
    }
  }
}

/// Writes a file whole or not at all: into a temporary file beside it, then renamed.
func writeAtomically(_ text: String, to path: String) throws {
  let temporary = path + ".vitc-tmp-\(ProcessInfo.processInfo.processIdentifier)"
  guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else {
    throw CommandError.cannotWrite(path: path, reason: "cannot create the file")
  }
  if rename(temporary, path) != 0 {
    let reason = String(cString: strerror(errno))
    unlink(temporary)
    throw CommandError.cannotWrite(path: path, reason: reason)
  }
}

/// Writes bytes whole or not at all, like `writeAtomically(_:to:)` for text.
func writeAtomically(bytes: [UInt8], to path: String) throws {
  let temporary = path + ".vitc-tmp-\(ProcessInfo.processInfo.processIdentifier)"
  guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
    throw CommandError.cannotWrite(path: path, reason: "cannot create the file")
  }
  if rename(temporary, path) != 0 {
    let reason = String(cString: strerror(errno))
    unlink(temporary)
    throw CommandError.cannotWrite(path: path, reason: reason)
  }
}

/// `1234567` → `1,234,567`.
func grouped(_ value: Int) -> String {
  let digits = String(value.magnitude)
  var out = ""
  for (index, digit) in digits.enumerated() {
    if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
    out.append(digit)
  }
  return (value < 0 ? "-" : "") + out
}

/// Class names for a model: `explicit` if given (an error if it does not fit), else the first
/// of `imagenet-labels.txt` beside the graph and `STEM/classes.txt` beside it (a sample's own
/// folder: samples/fashion/classes.txt for samples/fashion.graph) that has exactly as many
/// lines as the model has classes, else nil.
func loadLabels(graphPath: String, explicit: String?, classes: Int) throws -> [String]? {
  if let explicit {
    guard FileManager.default.fileExists(atPath: explicit) else { throw CommandError.labels(path: explicit, reason: "no such file") }
    let names = try readLabels(explicit)
    guard names.count == classes else {
      throw CommandError.labels(path: explicit, reason: "\(names.count) labels for a model with \(classes) classes")
    }
    return names
  }
  let graph = URL(fileURLWithPath: graphPath)
  let beside = graph.deletingLastPathComponent()
  for candidate in [
    beside.appendingPathComponent("imagenet-labels.txt"),
    beside.appendingPathComponent(graph.deletingPathExtension().lastPathComponent).appendingPathComponent("classes.txt"),
  ] where FileManager.default.fileExists(atPath: candidate.path) {
    let names = try readLabels(candidate.path)
    if names.count == classes { return names }
  }
  return nil
}

/// One class name per line (a last empty line is ignored).
private func readLabels(_ path: String) throws -> [String] {
  guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
    throw CommandError.labels(path: path, reason: "cannot read the labels as UTF-8 text")
  }
  let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
  return lines.last == "" ? Array(lines.dropLast()) : lines
}

/// Results of `DispatchQueue.concurrentPerform` iterations, one slot per index.
final class ResultBox<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private(set) var values: [Result<Value, any Error>?]
  init(count: Int) { values = Array(repeating: nil, count: count) }
  func set(_ index: Int, _ value: Result<Value, any Error>) {
    lock.lock()
    values[index] = value
    lock.unlock()
  }
}
