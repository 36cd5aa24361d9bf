import VitIR

/// Errors of the driver itself (files it writes, labels, the interpreter's inputs). One message
/// switch; every message is one line that names the file it is about.
public enum DriverError: Error, CustomStringConvertible {
  case cannotWrite(path: String, reason: String)
  /// An output would replace a file the same run reads.
  case outputIsInput(path: String, input: String)
  /// An output path names a directory; vitc never removes or replaces one.
  case outputIsDirectory(path: String)
  case labels(path: String, reason: String)
  case noImages(directory: String)
  case weightsNeeded
  /// A way of carrying weights that needs them (`--embed-weights hex`, `--weights-at-runtime`)
  /// without weights, or the run-time loading mode with them.
  case embeddingNeedsWeights(String)
  /// `--strict`: tensors the graph does not read.
  case unusedTensors(path: String, names: [String])
  case unsupportedInput(TensorType)
  case notAnImageModel(TensorType)

  /// "3 tensors the graph does not read: a, b, c" (the first 5 named).
  public static func unusedText(_ names: [String]) -> String {
    let shown = names.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
    return "\(names.count) tensor\(names.count == 1 ? "" : "s") the graph does not read: \(shown)" + (names.count > 5 ? ", …" : "")
  }

  public var description: String {
    switch self {
    case .cannotWrite(let path, let reason): "\(path): error: cannot write: \(reason)"
    case .outputIsInput(let path, let input):
      "\(path): error: this output would overwrite the \(input) this command reads; choose another path"
    case .outputIsDirectory(let path): "\(path): error: is a directory; vitc writes a file here and never replaces a directory"
    case .labels(let path, let reason): "\(path): error: \(reason)"
    case .noImages(let directory): "\(directory): error: no .ppm images in the directory"
    case .unusedTensors(let path, let names):
      "\(path): error: \(Self.unusedText(names)) (--strict)"
    case .weightsNeeded: "error: this needs weights: give --weights FILE or --random-weights SEED"
    case .embeddingNeedsWeights(let mode) where mode == "load":
      "error: weights given at compile time are built into the binary; without --weights the binary loads them at run time"
    case .embeddingNeedsWeights(let mode):
      "error: --embed-weights \(mode) (or --weights-at-runtime) carries weights given with --weights or --random-weights; without them the binary loads the user's safetensors at run time (--weights FILE)"
    case .unsupportedInput(let type): "error: 'vitc run' needs a graph with one input of static shape, found \(type)"
    case .notAnImageModel(let type):
      "error: --image needs a square image input f32[3,S,S], the graph takes \(type); use --input"
    }
  }
}
