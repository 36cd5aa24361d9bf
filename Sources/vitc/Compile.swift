import ArgumentParser
import Foundation
import VitDriver
import VitEmitC

/// Options shared by `compile` and `build`: what to emit.
struct EmitFlags: ParsableArguments {
  @Option(help: ArgumentHelp("Class names, one per line, built into the binary (default: imagenet-labels.txt or STEM/classes.txt beside the graph, if it fits).", valueName: "file"))
  var labels: String?

  @Option(
    help: ArgumentHelp(
      "How the weights reach the binary: incbin (a .bin pulled in by the assembler, any size), hex (a hex-float C array, exact and diffable, for tiny models) or file (the same as --weights-at-runtime).",
      valueName: "mode"))
  var embedWeights: WeightsEmbedding = .incbin

  @Flag(help: "Leave the weights out of the binary: write them to a vitc weights file (docs/weights-file.md) that the binary maps at run time with --weights FILE (for boards that keep models on storage).")
  var weightsAtRuntime = false

  @Option(help: ArgumentHelp("The GEMM: builtin (vitc's kernels on weights packed at compile time) or openblas (cblas_sgemm; needs libopenblas-dev).", valueName: "gemm"))
  var blas: GEMMBackend = .builtin

  func validate() throws {
    if weightsAtRuntime && embedWeights != .incbin {
      throw ValidationError("--weights-at-runtime leaves the weights out of the binary; it does not go with --embed-weights \(embedWeights.rawValue)")
    }
  }

  var options: EmitOptions {
    var options = EmitOptions()
    options.embedding = weightsAtRuntime ? .file : embedWeights
    options.gemm = blas
    options.labels = labels
    return options
  }
}

/// `--embed-weights`: the ways of carrying weights given at compile time (`load`, the mode of
/// a model compiled without weights, is what leaving out --weights selects).
extension WeightsEmbedding: ExpressibleByArgument {
  public init?(argument: String) {
    guard argument != Self.load.rawValue, let value = Self(rawValue: argument) else { return nil }
    self = value
  }

  public static var allValueStrings: [String] { allCases.filter { $0 != .load }.map(\.rawValue) }
}
extension GEMMBackend: ExpressibleByArgument {}

struct Compile: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Compile a model to C: the model, its header, its weights and the runtime.",
    discussion: """
      -o out/model.c writes out/model.c, out/model.h, the weights (out/model_weights.S and \
      out/model_weights.bin, or out/model_weights.c with --embed-weights hex), the driver glue \
      out/model_main.c (which includes the shared main.c) and the runtime (vit_*.h, vit_*.c) \
      beside them; every file is named after the model's stem or is the same for every model, \
      so several models can share a folder. Build with `vitc build`, or by hand with the \
      command it prints. Without --weights and --random-weights the model loads its weights \
      when it runs (BIN --weights FILE: safetensors with the graph's tensor names, F32, F16 or \
      BF16), bit for bit as if they had been compiled in; the runtime's vit_weights.c is the \
      loader (docs/runtime-weights.md). The C is the same for every target; --target only \
      chooses the build command printed at the end (the compiler and flags `vitc build \
      --target` would use).
      """)

  @OptionGroup var model: ModelOptions
  @OptionGroup var pruning: PruneOptions
  @OptionGroup var emit: EmitFlags
  @OptionGroup var targetOptions: TargetOptions

  @Option(name: .shortAndLong, help: ArgumentHelp("The model's C file; the other files go beside it.", valueName: "file.c"))
  var output: String

  func validate() throws {
    guard output.hasSuffix(".c"), URL(fileURLWithPath: output).lastPathComponent.count > 2 else {
      throw ValidationError("-o must name a .c file, like out/model.c")
    }
  }

  func run() throws {
    try reportingErrors {
      let url = URL(fileURLWithPath: output)
      let directory = url.deletingLastPathComponent().relativePath
      let stem = cFileStem(url.deletingPathExtension().lastPathComponent)
      let session = try model.session(prune: pruning.prune, precision: pruning.precision)
      let program = try session.emit(stem: stem, options: emit.options)
      let inputs = session.inputs + (emit.labels.map { [($0, "labels file")] } ?? [])
      for name in program.files.keys { try Output.check(directory + "/" + name, against: inputs) }
      try Output.write(files: program.files, into: directory)
      print("wrote \(program.files.count) files to \(directory)/: \(program.files.keys.sorted().joined(separator: ", "))")
      let loads = program.model.loadsWeights
      if loads {
        print("static memory \(grouped(program.model.staticBytes)) bytes (arena \(grouped(program.model.arenaBytes)); the weights' \(grouped(program.model.weightBytes)) bytes included: the binary loads them at run time)")
      } else {
        print("static memory \(grouped(program.model.staticBytes)) bytes (arena \(grouped(program.model.arenaBytes))), weights \(grouped(program.model.weightBytes)) bytes")
      }
      var options = BuildOptions()
      options.target = targetOptions.target
      let invocation = CompilerInvocation(options, directory: directory, openblas: emit.blas == .openblas)
      let sources = program.sources.map { directory + "/" + $0 }
      print("build for \(targetOptions.target.rawValue) with: \(invocation.commandLine(sources: sources, output: directory + "/" + stem))")
      if loads { print("run with: \(directory)/\(stem) --weights WEIGHTS.safetensors IMAGE.ppm (safetensors with the graph's tensor names, F32, F16 or BF16)") }
    }
  }
}

/// A file stem that is also a valid C header name.
func cFileStem(_ stem: String) -> String {
  String(stem.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" ? $0 : "_" })
}
