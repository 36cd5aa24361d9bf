import ArgumentParser
import Foundation
import VitDriver

extension SavedDType: ExpressibleByArgument {}

struct SaveWeights: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "save-weights",
    abstract: "Write the tensors a graph reads as a safetensors file.",
    discussion: """
      For a binary compiled without weights (vitc build GRAPH --prune SPEC -o BIN), which loads \
      safetensors at run time (BIN --weights FILE): converts a PyTorch checkpoint, keeps only the \
      tensors the graph and the pruning method read, or writes seeded random weights \
      (--random-weights, DynamicViT's predictors included). With --prune asvit, the thresholds \
      the schedule resolved are written as score_predictor.{s}.keep_threshold. --dtype F16 or \
      BF16 rounds each value to nearest even (halving the file; the binary converts back \
      exactly). The file is written whole or not at all.

      Example:
        vitc save-weights samples/deit-s.graph --random-weights 1 --prune dyvit:0.7 -o deit-s.safetensors
        vitc build samples/deit-s.graph --prune dyvit:0.7 -o deit-s && ./deit-s --weights deit-s.safetensors samples/images/chelsea.ppm
      """)

  @OptionGroup var model: ModelOptions
  @OptionGroup var pruning: PruneOptions

  @Option(help: ArgumentHelp("The float format of the file: F32, F16 or BF16.", valueName: "dtype"))
  var dtype: SavedDType = .f32

  @Option(name: .shortAndLong, help: ArgumentHelp("The safetensors file to write.", valueName: "file"))
  var output: String

  func validate() throws {
    try model.requireWeights()
  }

  func run() throws {
    try reportingErrors {
      let session = try model.session(prune: pruning.prune, precision: pruning.precision)
      try Output.check(output, against: session.inputs)
      let bytes = try session.savedWeights(dtype: dtype)
      try Output.write(bytes, to: output)
      print("wrote \(output): \(grouped(bytes.count)) bytes, \(dtype.rawValue)")
    }
  }
}
