import Foundation
import VitEmitC
import VitIR
import VitRuntimeFiles

/// What to emit besides the model: how the weights travel, the GEMM, the class names.
public struct EmitOptions: Sendable {
  public var embedding: WeightsEmbedding = .incbin
  public var gemm: GEMMBackend = .builtin
  /// A labels file given by the user (default: the ones beside the graph, if they fit).
  public var labels: String? = nil
  public init() {}
}

/// Every file of a compiled model, by final name: the model's own and the shared runtime's.
public struct EmittedProgram: Sendable {
  public var model: EmittedModel
  /// File name → contents, the runtime's included.
  public var files: [String: [UInt8]]
  /// The runtime's files (byte-identical for every model).
  public var sharedFiles: Set<String>

  /// The translation units and assembler files, sorted (not main.c: `<stem>_main.c` includes it).
  public var sources: [String] { files.keys.filter(EmitC.isCompiledSource).sorted() }
}

/// What `build` made.
public struct BuildReport: Sendable {
  public var output: String
  public var binaryBytes: Int
  /// Weights carried inside the binary (0 with --weights-at-runtime or without weights).
  public var embeddedWeightBytes: Int
  public var arenaBytes: Int
  /// All static memory of the model object (arena, scratch, integer maps), as its header states.
  public var staticBytes: Int
  /// With --weights-at-runtime: the weights file written beside the binary, and its size.
  public var weightsFile: (path: String, bytes: Int)?
  /// Without weights: the binary loads them at run time (--weights FILE).
  public var loadsWeights = false
}

extension CompileSession {
  /// The C for the planned graph, every file named after `stem` (`model` → model.c, model.h …).
  /// With no weights source the model loads its weights at run time (`WeightsEmbedding.load`).
  public func emit(stem: String, options: EmitOptions = EmitOptions()) throws -> EmittedProgram {
    let provenance = EmitC.Provenance(
      version: vitcVersion, graphFile: graphPath, weights: weightsSource.provenance, schedule: schedule.spec)
    let classNames = try labels(explicit: options.labels)
    var emitted: EmittedModel
    if weightsSource == .none {
      guard options.embedding == .incbin || options.embedding == .load else { throw DriverError.embeddingNeedsWeights(options.embedding.rawValue) }
      emitted = try EmitC.emitLoadingWeights(
        try graph(at: .planned), provenance: provenance, stem: stem, labels: classNames, gemm: options.gemm,
        thresholdsFromWeights: thresholdsFromWeights)
    } else {
      guard options.embedding != .load else { throw DriverError.embeddingNeedsWeights(options.embedding.rawValue) }
      let loaded = try model(at: .planned)
      emitted = try EmitC.emit(
        loaded.graph, weights: loaded.weights, provenance: provenance, stem: stem, labels: classNames,
        embedding: options.embedding, gemm: options.gemm)
    }
    var files = emitted.files
    let runtime = try RuntimeFiles.all()
    for (file, contents) in runtime { files[file] = contents }
    emitted.files = [:]
    return EmittedProgram(model: emitted, files: files, sharedFiles: Set(runtime.keys))
  }

  /// The inputs this session reads, for `Output.check`.
  public var inputs: [(path: String, what: String)] {
    var inputs = [(graphPath, "graph")]
    if case .file(let path) = weightsSource { inputs.append((path, "weights file")) }
    return inputs
  }

  /// Emits the C into a temporary folder, compiles and links it into `output` (and, with
  /// --weights-at-runtime, `output.weights` beside it); `keepSources` also keeps the C.
  public func build(output: String, options: BuildOptions, emit: EmitOptions = EmitOptions(), keepSources: String? = nil) throws -> BuildReport {
    let fileManager = FileManager.default
    let work = fileManager.temporaryDirectory.appendingPathComponent("vitc-build-\(UUID().uuidString)").path
    let invocation = CompilerInvocation(options, directory: work, openblas: emit.gemm == .openblas)
    let toolchain = Toolchain(invocation: invocation, target: options.target, isStatic: options.isStatic, cache: options.cache)
    // Before anything is emitted: a missing (cross) compiler is the likeliest error here.
    try toolchain.check()
    let readInputs = inputs + (emit.labels.map { [($0, "labels file")] } ?? [])
    try Output.check(output, against: readInputs)
    let weightsOutput = output + ".weights"
    if emit.embedding == .file { try Output.check(weightsOutput, against: readInputs) }

    defer { try? fileManager.removeItem(atPath: work) }
    let program = try self.emit(stem: "model", options: emit)
    try Output.write(files: program.files, into: work)
    if let keepSources { try Output.write(files: program.files, into: keepSources) }
    let binary = work + "/model.bin.out"
    try toolchain.build(sources: program.sources, shared: program.sharedFiles, in: work, output: binary)

    let destination = URL(fileURLWithPath: output)
    try? fileManager.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
    // The binary lands in place by rename (a failed build leaves the previous one whole); the
    // temporary folder may be on another file system, so it is first copied beside the output.
    var moves = [(binary, output)]
    if emit.embedding == .file { moves.append((work + "/model_weights.bin", weightsOutput)) }
    for (from, to) in moves {
      let staged = to + ".vitc-tmp-\(ProcessInfo.processInfo.processIdentifier)"
      try? fileManager.removeItem(atPath: staged)
      do {
        try fileManager.copyItem(atPath: from, toPath: staged)
      } catch {
        throw DriverError.cannotWrite(path: to, reason: "\(error.localizedDescription)")
      }
      try Output.rename(staged, to: to)
    }
    let size = (try? fileManager.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
    let model = program.model
    return BuildReport(
      output: output, binaryBytes: size, embeddedWeightBytes: model.embeddedWeightBytes,
      arenaBytes: model.arenaBytes, staticBytes: model.staticBytes,
      weightsFile: emit.embedding == .file ? (weightsOutput, model.weightBytes + WeightsFile.headerBytes) : nil,
      loadsWeights: model.loadsWeights)
  }
}

/// The version printed by `--version` and in the provenance of every generated file.
public let vitcVersion = "0.1.0"
