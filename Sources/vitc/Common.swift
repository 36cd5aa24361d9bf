import ArgumentParser
import Foundation
import VitFrontend
import VitIR

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

  /// Loads the graph and its weights.
  func load() throws -> (Graph, [String: Tensor]) {
    let graph = try GraphLoader.load(path: self.graph)
    if let seed = randomWeights {
      return (graph, RandomWeights.generate(for: graph, seed: seed))
    }
    let file = try SafetensorsFile(path: weights!)
    return (graph, try WeightBinding.bind(graph, to: file))
  }
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

/// Class names for a model: `explicit` if given (an error if it does not fit), else
/// imagenet-labels.txt beside the graph when it has exactly as many lines as the model has
/// classes, else nil.
func loadLabels(graphPath: String, explicit: String?, classes: Int) throws -> [String]? {
  let path =
    explicit
    ?? URL(fileURLWithPath: graphPath).deletingLastPathComponent()
    .appendingPathComponent("imagenet-labels.txt").path
  guard FileManager.default.fileExists(atPath: path) else {
    if explicit != nil { throw CommandError.labels(path: path, reason: "no such file") }
    return nil
  }
  guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
    throw CommandError.labels(path: path, reason: "cannot read the labels as UTF-8 text")
  }
  let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
  let names = lines.last == "" ? Array(lines.dropLast()) : lines
  if names.count == classes { return names }
  if explicit != nil {
    throw CommandError.labels(path: path, reason: "\(names.count) labels for a model with \(classes) classes")
  }
  return nil
}
