import ArgumentParser
import Foundation
import VitDriver
import VitIR

/// The graph and where its weights come from, shared by the subcommands that need weights.
struct ModelOptions: ParsableArguments {
  @Argument(help: "The model graph (.graph file), or a checkpoint whose graph is inferred from its tensors (see vitc graph).")
  var graph: String

  @Option(help: ArgumentHelp("Weights with timm's tensor names: safetensors, or a PyTorch checkpoint as torch.save writes it (a state dict, or one under 'model', 'state_dict' or 'module'); F32, F16 or BF16. compile and build without weights make a binary that loads them at run time (docs/runtime-weights.md).", valueName: "file"))
  var weights: String?

  @Option(help: ArgumentHelp("With a checkpoint in place of the graph: timm's config.json (see vitc graph).", valueName: "file"))
  var config: String?

  @Option(help: ArgumentHelp("With a checkpoint in place of the graph: attention heads (default: width / 64).", valueName: "n"))
  var heads: Int?

  @Flag(help: "Accept NaN and infinite weights (refused by default, naming the tensor and index).")
  var allowNonFinite = false

  @Flag(help: "Refuse weights files holding tensors the graph does not read (by default a warning names them).")
  var strict = false

  @Option(
    help: ArgumentHelp(
      "Use deterministic random weights from this seed instead of --weights (docs/random-weights.md).",
      valueName: "seed"))
  var randomWeights: UInt64?

  func validate() throws {
    if weights != nil && randomWeights != nil {
      throw ValidationError("give one of --weights FILE and --random-weights SEED, not both")
    }
  }

  /// For the commands that run the model here (run, eval, calibrate): weights are needed.
  /// (`compile` and `build` without weights make a binary that loads them at run time.)
  func requireWeights() throws {
    if weights == nil && randomWeights == nil && !GraphInference.isWeightsFile(graph) {
      throw ValidationError("give exactly one of --weights FILE and --random-weights SEED")
    }
  }

  var source: WeightsSource {
    weights.map { .file($0) } ?? randomWeights.map { .random(seed: $0) } ?? .none
  }

  /// The compile session for these options and a pruning spec. Tensors of the weights file
  /// that the graph does not read are named on stderr (an error with --strict).
  func session(prune: String, precision: Precision = .f32) throws -> CompileSession {
    var inference = try config.map { try GraphInference.settings(config: $0) } ?? GraphInference.Settings()
    if let heads { inference.heads = heads }
    var session = try CompileSession(graph: graph, weights: source, prune: prune, inference: inference) { printError($0) }
    session.allowNonFinite = allowNonFinite
    session.precision = precision
    let unused = try session.unusedTensors()
    if !unused.isEmpty, let weights {
      if strict { throw DriverError.unusedTensors(path: weights, names: unused) }
      printError("\(weights): warning: \(DriverError.unusedText(unused))")
    }
    return session
  }
}

extension Precision: ExpressibleByArgument {}

/// The pruning schedule and the arithmetic of the linears, shared by every subcommand that
/// builds or reads a graph.
struct PruneOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Token pruning: none, dyvit:RHO, evit:RHO[,nofuse], asvit[:T1,T2,T3], bat:RHO[,clusters=F], tome:R or tome:R0,R1,…; @L1,L2,… sets the blocks (docs/methods.md).",
      valueName: "spec"))
  var prune: String = "none"

  @Option(
    help: ArgumentHelp(
      "The blocks' linear layers' arithmetic: f32; int8 (weights per output channel, activations per token, int32 sums); or bf16 (both operands rounded to bfloat16, float32 sums; half the weight bytes; on CPUs without bf16 products a little slower than f32). The patch embedding, the head and token selection stay f32 (docs/precision.md).",
      valueName: "precision"))
  var precision: Precision = .f32
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
