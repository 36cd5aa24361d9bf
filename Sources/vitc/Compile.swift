import ArgumentParser
import Foundation
import VitEmitC
import VitFrontend
import VitIR
import VitPasses
import VitRuntimeFiles

/// Options shared by `compile` and `build`: what to emit.
struct EmitOptions: ParsableArguments {
  @Option(help: ArgumentHelp("Class names, one per line, built into the binary (default: imagenet-labels.txt or STEM/classes.txt beside the graph, if it fits).", valueName: "file"))
  var labels: String?

  @Option(
    help: ArgumentHelp(
      "How the weights reach the binary: incbin (a .bin pulled in by the assembler, any size), hex (a hex-float C array, exact and diffable, for tiny models) or file (the same as --weights-at-runtime).",
      valueName: "mode"))
  var embedWeights: WeightsEmbedding = .incbin

  @Flag(help: "Leave the weights out of the binary: write them to a vitc weights file (docs/weights-file.md) that the binary maps at run time with --weights FILE (for boards that keep models on storage).")
  var weightsAtRuntime = false

  /// How the weights reach the binary, after --weights-at-runtime.
  var embedding: WeightsEmbedding { weightsAtRuntime ? .file : embedWeights }

  func validate() throws {
    if weightsAtRuntime && embedWeights != .incbin {
      throw ValidationError("--weights-at-runtime leaves the weights out of the binary; it does not go with --embed-weights \(embedWeights.rawValue)")
    }
  }

  @Option(help: ArgumentHelp("The GEMM: builtin (vitc's kernels on weights packed at compile time) or openblas (cblas_sgemm; needs libopenblas-dev).", valueName: "gemm"))
  var blas: GEMMBackend = .builtin
}

extension WeightsEmbedding: ExpressibleByArgument {}
extension GEMMBackend: ExpressibleByArgument {}

/// Compiles a model to C files in `directory`, named after `stem`. Returns what was emitted.
func compileModel(_ model: ModelOptions, _ emit: EmitOptions, prune: String, stem: String, labels: String?) throws -> EmittedModel {
  let loaded = try model.load(prune: prune)
  let (graph, weights) = (loaded.graph, loaded.weights)
  let provenance = EmitC.Provenance(
    version: vitcVersion, graphFile: model.graph,
    weights: model.weights ?? "--random-weights \(model.randomWeights!)", schedule: loaded.schedule.spec)
  let classNames = try loadLabels(graphPath: model.graph, explicit: labels, classes: graph.outputType.dims.last?.bound ?? 0)
  var emitted = try EmitC.emit(
    graph, weights: weights, provenance: provenance, stem: stem, labels: classNames, embedding: emit.embedding, gemm: emit.blas)
  for (file, contents) in try RuntimeFiles.all() { emitted.files[file] = contents }
  return emitted
}

/// Writes every file or none: into a fresh directory beside the target, then moved in place.
func writeFiles(_ files: [String: [UInt8]], into directory: String) throws {
  let fileManager = FileManager.default
  do {
    try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true)
  } catch {
    throw CommandError.cannotWrite(path: directory, reason: "cannot create the directory")
  }
  let staging = directory + "/.vitc-staging-\(ProcessInfo.processInfo.processIdentifier)"
  defer { try? fileManager.removeItem(atPath: staging) }
  try? fileManager.removeItem(atPath: staging)
  try fileManager.createDirectory(atPath: staging, withIntermediateDirectories: true)
  for (name, contents) in files {
    guard fileManager.createFile(atPath: staging + "/" + name, contents: Data(contents)) else {
      throw CommandError.cannotWrite(path: directory + "/" + name, reason: "cannot create the file")
    }
  }
  for name in files.keys.sorted() {
    if rename(staging + "/" + name, directory + "/" + name) != 0 {
      throw CommandError.cannotWrite(path: directory + "/" + name, reason: String(cString: strerror(errno)))
    }
  }
}

struct Compile: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Compile a model to C: the model, its header, its weights and the runtime.",
    discussion: """
      -o out/model.c writes out/model.c, out/model.h, the weights (out/model_weights.S and \
      out/model_weights.bin, or out/model_weights.c with --embed-weights hex), and the runtime \
      (vit_runtime.h, vit_runtime.c, vit_gemm.c, ...), out/model_main.c and the shared driver body \
      main.c beside them. Build with `vitc build`, or by hand: cc -std=c11 -O3 -Wa,-Iout \
      out/model_main.c out/model.c out/model_weights.S out/vit_*.c -lm -lpthread. The C \
      is the same for every target; --target only chooses the build command printed at the end \
      (the compiler and flags `vitc build --target` would use).
      """)

  @OptionGroup var model: ModelOptions
  @OptionGroup var pruning: PruneOptions
  @OptionGroup var emit: EmitOptions
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
      let stem = cFileStem(url.deletingPathExtension().lastPathComponent)
      let emitted = try compileModel(model, emit, prune: pruning.prune, stem: stem, labels: emit.labels)
      try writeFiles(emitted.files, into: url.deletingLastPathComponent().path)
      print("wrote \(emitted.files.count) files to \(url.deletingLastPathComponent().relativePath)/: \(emitted.files.keys.sorted().joined(separator: ", "))")
      print("arena \(grouped(emitted.arenaBytes)) bytes, weights \(grouped(emitted.weightBytes)) bytes")
      let directory = url.deletingLastPathComponent().relativePath
      let invocation = CompilerInvocation(
        target: targetOptions.target, cc: nil, directory: directory, threads: true, vectorMath: true,
        openblas: emit.blas == .openblas, isStatic: false)
      let sources = emitted.files.keys.filter(EmitC.isCompiledSource).sorted().map { directory + "/" + $0 }
      print("build for \(targetOptions.target.rawValue) with: \(invocation.commandLine(sources: sources, output: directory + "/" + stem))")
    }
  }
}

/// A file stem that is also a valid C header name.
func cFileStem(_ stem: String) -> String {
  String(stem.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" ? $0 : "_" })
}
