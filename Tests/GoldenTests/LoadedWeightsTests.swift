import Foundation
import TestSupport
import Testing
import VitDriver
import VitEmitC
import VitFrontend
import VitIR

/// A model compiled without weights (`vitc build GRAPH --prune SPEC -o BIN`, no --weights)
/// loads the user's safetensors at run time (`BIN --weights FILE`): bit for bit the binary with
/// the same weights embedded (logits and trace), for every method, F32, F16 and BF16 files, on
/// the host and under qemu; and every wrong file gets its one line.
@Suite struct LoadedWeightsTests {
  /// tiny with each method (AS-ViT both with its thresholds in the spec and read from the
  /// file), the trained fashion sample (F16 weights with real predictors; it has no AS-ViT
  /// thresholds, so the spec gives them) and the tiny LV-ViT.
  static let cases: [(graph: String, spec: String)] =
    ["none", "dyvit:0.7", "evit:0.7", "evit:0.7,nofuse", "asvit", "asvit:0.004,0.005,0.006", "bat:0.7", "tome:8"].map { ("tiny", $0) }
    + ["none", "dyvit:0.7", "evit:0.7,nofuse", "asvit:0.004,0.005,0.006", "bat:0.7", "tome:8"].map { ("fashion", $0) }
    + ["none", "dyvit:0.7", "asvit"].map { ("lvvit-tiny", $0) }

  /// The graph file of a case: a sample, or the tiny LV-ViT of the LV-ViT fixtures.
  static func graphPath(_ graph: String) -> String {
    graph == "lvvit-tiny" ? repositoryPath("Tests/Fixtures/lvvit/tiny.graph") : repositoryPath("samples/\(graph).graph")
  }

  /// AS-ViT's learned thresholds the tiny weights files carry (the official checkpoints' names).
  static let thresholds: [Float] = [0.004, 0.005, 0.006]

  /// A safetensors file with every tensor `graph` reads with `spec`: tiny's seeded random
  /// weights (predictors included) and AS-ViT's thresholds, in `dtype`; fashion's own file.
  static func weightsFile(
    graph: String, spec: String, dtype: String = "F32", thresholds: [Float] = thresholds, in scratch: URL
  ) throws -> String {
    if graph == "fashion" { return repositoryPath("samples/fashion/weights.safetensors") }
    let forSpec = spec == "asvit" ? "asvit:0.1,0.1,0.1" : spec  // any thresholds: only the tensors matter here
    let loaded = try CompileSession(graph: graphPath(graph), weights: .random(seed: 1), prune: forSpec).model()
    var tensors = loaded.weights.map { (name: $0.key, tensor: $0.value) }
    for (stage, value) in thresholds.enumerated() {
      tensors.append(("score_predictor.\(stage).keep_threshold", Tensor(shape: [1], scalars: [value])))
    }
    let file = scratch.appendingPathComponent("weights-\(dtype)-\(thresholds.map { "\($0)" }.joined(separator: "_")).safetensors")
    try Data(SafetensorsWriter.encode(tensors, dtype: dtype)).write(to: file)
    return file.path
  }

  struct Outputs: Equatable {
    var logits: Data
    var trace: Data
  }

  static func run(_ binary: URL, weights: String?, emulator: String? = nil, input: URL, in scratch: URL) throws -> Outputs {
    let logits = scratch.appendingPathComponent("\(binary.lastPathComponent).f32")
    let trace = scratch.appendingPathComponent("\(binary.lastPathComponent).json")
    var arguments = ["--input", input.path, "--out", logits.path, "--trace", trace.path]
    if let weights { arguments += ["--weights", weights] }
    let ran: Outcome
    if let emulator {
      ran = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/env"), [emulator, binary.path] + arguments)
    } else {
      ran = try TestSupport.run(binary, arguments)
    }
    try #require(ran.status == 0, "\(binary.lastPathComponent) failed:\n\(ran.output)")
    return Outputs(logits: try Data(contentsOf: logits), trace: try Data(contentsOf: trace))
  }

  static func build(
    _ graph: String, spec: String, weights: WeightsSource, target: BuildTarget = .host, gemm: GEMMBackend = .builtin,
    precision: Precision = .f32, output: URL
  ) throws -> BuildReport {
    var options = BuildOptions()
    options.target = target
    options.isStatic = target != .host
    options.cache = ObjectCache(directory: testObjectCacheDirectory)
    var emit = EmitOptions()
    emit.gemm = gemm
    var session = try CompileSession(graph: graphPath(graph), weights: weights, prune: spec)
    session.precision = precision
    return try session.build(output: output.path, options: options, emit: emit)
  }

  static func input(for graph: String, in scratch: URL) throws -> URL {
    let parsed = try GraphLoader.load(path: graphPath(graph))
    let size = parsed.type(of: parsed.inputs[0]).fixedShape!.reduce(1, *)
    let file = scratch.appendingPathComponent("input.f32")
    try writeF32(seededInput(size, seed: 5), to: file)
    return file
  }

  @Test(arguments: cases)
  func loadedWeightsAreBitIdenticalToEmbeddedOnes(graph: String, spec: String) throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let weights = try Self.weightsFile(graph: graph, spec: spec, in: scratch)
    let embedded = scratch.appendingPathComponent("embedded"), loading = scratch.appendingPathComponent("loading")
    let embeddedReport = try Self.build(graph, spec: spec, weights: .file(weights), output: embedded)
    let loadingReport = try Self.build(graph, spec: spec, weights: .none, output: loading)
    #expect(loadingReport.loadsWeights && !embeddedReport.loadsWeights)
    #expect(loadingReport.embeddedWeightBytes == 0 && embeddedReport.embeddedWeightBytes > 0)
    let input = try Self.input(for: graph, in: scratch)
    let expected = try Self.run(embedded, weights: nil, input: input, in: scratch)
    let got = try Self.run(loading, weights: weights, input: input, in: scratch)
    #expect(got.logits == expected.logits, "\(graph) \(spec): logits differ")
    #expect(got.trace == expected.trace, "\(graph) \(spec): traces differ")
    if spec == "asvit" {
      // The thresholds came from the file: the same weights with thresholds of 0 (every patch
      // with attention above 0 is kept) keep other tokens.
      let open = try Self.weightsFile(graph: graph, spec: spec, thresholds: [0, 0, 0], in: scratch)
      let other = try Self.run(loading, weights: open, input: input, in: scratch)
      #expect(other.trace != got.trace, "\(graph): the thresholds in the file changed nothing")
    }
  }

  /// The same file in F16 and BF16 (each rounded once, when written): the loaded binary
  /// converts as vitc does, and equals the build that embeds the same file.
  @Test(arguments: ["F16", "BF16"])
  func halfPrecisionFilesConvertAsVitcDoes(dtype: String) throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let weights = try Self.weightsFile(graph: "tiny", spec: "dyvit:0.7", dtype: dtype, in: scratch)
    let embedded = scratch.appendingPathComponent("embedded"), loading = scratch.appendingPathComponent("loading")
    _ = try Self.build("tiny", spec: "dyvit:0.7", weights: .file(weights), output: embedded)
    _ = try Self.build("tiny", spec: "dyvit:0.7", weights: .none, output: loading)
    let input = try Self.input(for: "tiny", in: scratch)
    #expect(try Self.run(loading, weights: weights, input: input, in: scratch) == (try Self.run(embedded, weights: nil, input: input, in: scratch)))
  }

  /// int8 and bf16: the loader converts each such linear's weight at load by the formula vitc
  /// embeds with (vit_quant.h = Int8Quantization, BFloat16), from F32, F16 and BF16 files: bit
  /// for bit the embedded build, on tiny (DynamicViT's predictor stays f32) and on fashion.
  @Test(arguments: [
    ("tiny", "dyvit:0.7", "F32", Precision.int8), ("tiny", "dyvit:0.7", "BF16", .int8), ("fashion", "none", "F32", .int8),
    ("tiny", "tome:8", "F32", .bf16), ("fashion", "dyvit:0.7", "F16", .bf16),
  ])
  func reducedPrecisionWeightsConvertAtLoadAsVitcDoes(graph: String, spec: String, dtype: String, precision: Precision) throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let weights = try Self.weightsFile(graph: graph, spec: spec, dtype: dtype, in: scratch)
    let embedded = scratch.appendingPathComponent("embedded"), loading = scratch.appendingPathComponent("loading")
    let embeddedReport = try Self.build(graph, spec: spec, weights: .file(weights), precision: precision, output: embedded)
    let f32Report = try Self.build(graph, spec: spec, weights: .file(weights), output: scratch.appendingPathComponent("f32"))
    _ = try Self.build(graph, spec: spec, weights: .none, precision: precision, output: loading)
    // The blocks' linears hold a quarter (int8, plus a scale and a sum per column) or half
    // (bf16) of their float32 bytes; the stem and head stay float32.
    let bound = precision == .int8 ? f32Report.embeddedWeightBytes / 2 : f32Report.embeddedWeightBytes * 3 / 4
    #expect(embeddedReport.embeddedWeightBytes < bound)
    let input = try Self.input(for: graph, in: scratch)
    #expect(try Self.run(loading, weights: weights, input: input, in: scratch) == (try Self.run(embedded, weights: nil, input: input, in: scratch)))
  }

  /// OpenBLAS reads the weights unpacked: the loader then stores them as they are.
  @Test func openBLASBuildLoadsUnpackedWeights() throws {
    try requireSystemPackages("libopenblas-dev")
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let weights = try Self.weightsFile(graph: "tiny", spec: "evit:0.7", in: scratch)
    let embedded = scratch.appendingPathComponent("embedded"), loading = scratch.appendingPathComponent("loading")
    _ = try Self.build("tiny", spec: "evit:0.7", weights: .file(weights), gemm: .openblas, output: embedded)
    _ = try Self.build("tiny", spec: "evit:0.7", weights: .none, gemm: .openblas, output: loading)
    let input = try Self.input(for: "tiny", in: scratch)
    #expect(try Self.run(loading, weights: weights, input: input, in: scratch) == (try Self.run(embedded, weights: nil, input: input, in: scratch)))
  }

  /// aarch64 under qemu: the loaded and the embedded cross builds agree bit for bit too.
  @Test(arguments: ["dyvit:0.7", "asvit"])
  func loadedWeightsMatchUnderEmulation(spec: String) throws {
    try requireSystemPackages("gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "qemu-user")
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let weights = try Self.weightsFile(graph: "tiny", spec: spec, in: scratch)
    let embedded = scratch.appendingPathComponent("embedded"), loading = scratch.appendingPathComponent("loading")
    _ = try Self.build("tiny", spec: spec, weights: .file(weights), target: .aarch64, output: embedded)
    _ = try Self.build("tiny", spec: spec, weights: .none, target: .aarch64, output: loading)
    let input = try Self.input(for: "tiny", in: scratch)
    let expected = try Self.run(embedded, weights: nil, emulator: "qemu-aarch64", input: input, in: scratch)
    #expect(try Self.run(loading, weights: weights, emulator: "qemu-aarch64", input: input, in: scratch) == expected)
  }

  /// A vitc weights file written with the same graph and schedule (--weights-at-runtime) has the
  /// same layout: the loading binary takes it too. Not for AS-ViT with thresholds from the
  /// weights: that file has none.
  @Test func vitcWeightsFileOfTheSameLayoutIsAccepted() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let weights = try Self.weightsFile(graph: "tiny", spec: "dyvit:0.7", in: scratch)
    let loading = scratch.appendingPathComponent("loading"), embedded = scratch.appendingPathComponent("embedded")
    _ = try Self.build("tiny", spec: "dyvit:0.7", weights: .none, output: loading)
    _ = try Self.build("tiny", spec: "dyvit:0.7", weights: .file(weights), output: embedded)
    let writer = scratch.appendingPathComponent("writer")
    let wrote = try vitc(["build", "samples/tiny.graph", "--weights", weights, "--prune", "dyvit:0.7", "--weights-at-runtime", "-o", writer.path])
    try #require(wrote.status == 0, "\(wrote.output)")
    let input = try Self.input(for: "tiny", in: scratch)
    #expect(try Self.run(loading, weights: writer.path + ".weights", input: input, in: scratch) == (try Self.run(embedded, weights: nil, input: input, in: scratch)))
  }

  /// Each wrong file: one line on stderr naming the file and what is wrong, exit status 2,
  /// nothing on stdout.
  @Test func wrongFilesGetTheirLine() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let goodPath = try Self.weightsFile(graph: "tiny", spec: "evit:0.7", in: scratch)
    let loading = scratch.appendingPathComponent("loading")
    _ = try Self.build("tiny", spec: "evit:0.7", weights: .none, output: loading)
    let asvit = scratch.appendingPathComponent("asvit")
    _ = try Self.build("tiny", spec: "asvit", weights: .none, output: asvit)
    let loaded = try CompileSession(graph: repositoryPath("samples/tiny.graph"), weights: .random(seed: 1), prune: "evit:0.7").model()
    let tensors = loaded.weights.map { (name: $0.key, tensor: $0.value) }
    func file(_ tensors: [(name: String, tensor: Tensor)], dtype: String = "F32") -> [UInt8] { SafetensorsWriter.encode(tensors, dtype: dtype) }

    func refusal(_ bytes: [UInt8]?, binary: URL? = nil) throws -> String {
      var arguments = ["samples/images/chelsea.ppm"]
      var path = ""
      if let bytes {
        path = scratch.appendingPathComponent("w-\(UUID().uuidString).safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        arguments += ["--weights", path]
      }
      let outcome = try TestSupport.run(binary ?? loading, arguments)
      #expect(outcome.status == 2, "\(outcome.output)")
      #expect(outcome.stdout.isEmpty)
      let lines = outcome.stderr.split(separator: "\n")
      #expect(lines.count == 1, "\(outcome.stderr)")
      if bytes != nil { #expect(outcome.stderr.hasPrefix(path + ": error: "), "\(outcome.stderr)") }
      return outcome.stderr
    }

    let good = try [UInt8](Data(contentsOf: URL(fileURLWithPath: goodPath)))
    #expect(try refusal(nil).contains("this model was compiled without weights: give --weights F"))
    // A tensor missing.
    #expect(try refusal(file(tensors.filter { $0.name != "blocks.1.mlp.fc2.bias" })).contains("no tensor 'blocks.1.mlp.fc2.bias', which the model reads"))
    // A shape off by one.
    var shaped = tensors.filter { $0.name != "norm.weight" }
    let norm = loaded.weights["norm.weight"]!
    shaped.append(("norm.weight", Tensor(shape: [norm.shape[0] + 1], scalars: norm.scalars + [1])))
    #expect(try refusal(file(shaped)).contains("tensor 'norm.weight' has shape [\(norm.shape[0] + 1)], but the model declares [\(norm.shape[0])]"))
    // The good file with its JSON header edited (the length field rewritten).
    let headerLength = good[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    let header = String(decoding: good[8..<(8 + headerLength)], as: UTF8.self)
    func edited(_ from: String, _ to: String) throws -> [UInt8] {
      let text = header.replacingOccurrences(of: from, with: to)
      try #require(text != header, "no '\(from)' in the header")
      let length = UInt64(text.utf8.count)
      return (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) } + Array(text.utf8) + Array(good[(8 + headerLength)...])
    }
    // A dtype the model cannot use: the same bytes called I32.
    #expect(try refusal(edited("\"norm.weight\":{\"dtype\":\"F32\"", "\"norm.weight\":{\"dtype\":\"I32\"")).contains("tensor 'norm.weight' is I32; the model reads F32, F16 or BF16"))
    // Truncated: the last tensor's offsets now lie outside the data.
    #expect(try refusal(Array(good.prefix(good.count - 100))).contains("lie outside the"))
    // A header that lies about offsets: the first tensor said to start 4 bytes later.
    let lie = try refusal(edited("\"data_offsets\":[0,", "\"data_offsets\":[4,"))
    #expect(lie.contains("bytes do not hold F32 with that shape"), "\(lie)")
    // Two tensors said to share bytes.
    let shared = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
    let sharing = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(shared.utf8.count) >> (8 * UInt64($0))) } + Array(shared.utf8) + [UInt8](repeating: 0, count: 12)
    #expect(try refusal(sharing).contains("tensors 'a' and 'b' overlap in the data section"))
    // NaN in a weight.
    var poisoned = tensors.filter { $0.name != "head.bias" }
    var bias = loaded.weights["head.bias"]!.scalars
    bias[7] = .nan
    poisoned.append(("head.bias", Tensor(shape: [bias.count], scalars: bias)))
    #expect(try refusal(file(poisoned)).contains("tensor 'head.bias' holds NaN at index 7"))
    // A name given twice.
    #expect(try refusal(edited("\"norm.bias\":", "\"norm.weight\":")).contains("'norm.weight' appears twice"))
    // Not a safetensors file at all: text, and a zip (a PyTorch checkpoint).
    #expect(try refusal(Array("{\"not\": \"weights\"}\n".utf8)).contains("starts with text"))
    #expect(try refusal([0x50, 0x4b, 0x03, 0x04] + [UInt8](repeating: 0x7f, count: 60)).contains("a zip file"))
    #expect(try refusal([1, 2, 3]).contains("shorter than the 8-byte header length"))
    // AS-ViT reading its thresholds from the file: a file without them.
    #expect(try refusal(file(tensors), binary: asvit).contains("no tensor 'score_predictor.0.keep_threshold', which the model reads"))
  }

  /// Tensors the model does not read are named on stderr (training-only ones are not), and the
  /// run goes on.
  @Test func unusedTensorsAreReported() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let loading = scratch.appendingPathComponent("loading")
    _ = try Self.build("tiny", spec: "none", weights: .none, output: loading)
    let loaded = try CompileSession(graph: repositoryPath("samples/tiny.graph"), weights: .random(seed: 1)).model()
    var tensors = loaded.weights.map { (name: $0.key, tensor: $0.value) }
    tensors.append(("blocks.0.attn.q_bias", Tensor(shape: [2], scalars: [1, 2])))
    tensors.append(("bn.num_batches_tracked", Tensor(shape: [1], scalars: [3])))
    let path = scratch.appendingPathComponent("extra.safetensors")
    try Data(SafetensorsWriter.encode(tensors)).write(to: path)
    let ran = try TestSupport.run(loading, ["samples/images/chelsea.ppm", "--weights", path.path])
    #expect(ran.status == 0, "\(ran.output)")
    #expect(ran.stderr == "\(path.path): warning: 1 tensor the model does not read: blocks.0.attn.q_bias\n")
  }
}
