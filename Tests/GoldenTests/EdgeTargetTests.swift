import Foundation
import TestSupport
import Testing
import VitIR

/// `vitc build --target aarch64|armv7 --static` (cross gcc, NEON kernels) run under qemu-user,
/// and `--target generic` (portable scalar C, -pedantic) run natively, each held to the host
/// build of the same model on the same input: the trace (tokens and original patches per
/// stage) equal, the logits within 1e-4·max(1, max|logit|). Not bitwise: aarch64 and armv7
/// contract a*b+c into FMA, and the kernels block their sums differently.
///
/// Needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, gcc-arm-linux-gnueabihf,
/// libc6-dev-armhf-cross and qemu-user (tools/install-test-packages.sh installs them); without
/// them each test fails with one line naming the missing package.
@Suite struct EdgeTargetTests {
  /// Every method on tiny. Each case also builds the generic target, with gcc and clang in turn.
  static let cases: [(spec: String, genericCC: String)] = [
    ("none", "gcc"), ("dyvit:0.7", "clang"), ("evit:0.7", "gcc"), ("evit:0.7,nofuse", "clang"),
    ("asvit:0.004,0.005,0.006", "gcc"), ("bat:0.7", "clang"), ("tome:8", "gcc"),
  ]

  /// The cross targets: vitc's name, qemu-user's command, the ELF e_machine of their binaries.
  static let crossTargets: [(target: String, emulator: String, machine: UInt16)] = [
    ("aarch64", "qemu-aarch64", 0xB7), ("armv7", "qemu-arm", 0x28),
  ]

  @Test(arguments: cases)
  func crossAndGenericBuildsMatchTheHost(spec: String, genericCC: String) throws {
    try Self.requireCrossTools()
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let input = scratch.appendingPathComponent("input.f32")
    try writeF32(seededInput(3 * 224 * 224, seed: 5), to: input)

    let host = try Self.buildAndRun(spec: spec, ["--target", "host"], in: scratch, name: "host", input: input)
    #expect(spec == "none" || !host.stages.isEmpty, "host (\(spec)): no pruning stage in the trace")

    for cross in Self.crossTargets {
      let binary = try Self.build(spec: spec, ["--target", cross.target, "--static"], in: scratch, name: cross.target)
      #expect(try Self.elfMachine(binary) == cross.machine, "\(cross.target): not an \(cross.target) ELF binary")
      // Static: qemu runs it without -L (a dynamic binary would not find its loader).
      let result = try Self.run(binary, emulator: cross.emulator, input: input, trace: scratch.appendingPathComponent("\(cross.target).json"))
      Self.compare(result, to: host, what: "\(cross.target) (\(spec))")
    }

    let generic = try Self.buildAndRun(spec: spec, ["--target", "generic", "--cc", genericCC], in: scratch, name: "generic", input: input)
    Self.compare(generic, to: host, what: "generic with \(genericCC) (\(spec))")
  }

  /// int8 (and bf16) on the boards: aarch64 (the armv8-a baseline, so NEON without the dot product; the
  /// SDOT kernel is Runtime/tests' to check, under qemu with +dotprod), armv7 and the generic
  /// target, each held to the host's int8 build on DeiT-S's shape cut to 3 blocks. Integer
  /// products are exact everywhere, but the float32 between the linears is blocked differently
  /// on each instruction set, so quantized values near a rounding boundary can land a step
  /// apart (docs/precision.md, "Exactness"): the criteria are PruningGoldenTests.compareReducedPrecision's.
  @Test(arguments: [("dyvit:0.5@1,2", "int8"), ("tome:30", "bf16")])
  func reducedPrecisionCrossAndGenericBuildsMatchTheHost(spec: String, precision: String) throws {
    try Self.requireCrossTools()
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let graph = try deitSCutTo(3, in: scratch)
    let input = scratch.appendingPathComponent("input.f32")
    try writeF32(seededInput(3 * 224 * 224, seed: 5), to: input)
    let int8 = ["--precision", precision]
    let host = try Self.buildAndRun(spec: spec, int8 + ["--target", "host"], in: scratch, name: "host", input: input, graph: graph)
    var results: [(String, Result)] = []
    for cross in Self.crossTargets {
      let binary = try Self.build(spec: spec, int8 + ["--target", cross.target, "--static"], in: scratch, name: cross.target, graph: graph)
      results.append((cross.target, try Self.run(binary, emulator: cross.emulator, input: input, trace: scratch.appendingPathComponent("\(cross.target).json"))))
    }
    results.append(("generic", try Self.buildAndRun(spec: spec, int8 + ["--target", "generic"], in: scratch, name: "generic", input: input, graph: graph)))
    func stages(_ result: Result) -> [Trace.Stage] {
      result.stages.map { Trace.Stage(block: $0["block"] as? Int ?? -1, tokens: $0["tokens"] as? Int ?? -1, patches: $0["patches"] as? [[Int]] ?? []) }
    }
    for (name, result) in results {
      #expect(result.stages.count == host.stages.count, "int8 \(name) (\(spec)): \(result.stages.count) stages, host \(host.stages.count)")
      PruningGoldenTests.compareReducedPrecision(
        stages(result), stages(host), result.logits.map { Float($0) }, host.logits.map { Float($0) }, what: "\(name) against the host (\(spec))")
    }
  }

  /// A cross compiler that is not there: one line on stderr naming the Debian package, exit
  /// status 1, no output file.
  @Test(arguments: [("aarch64", "gcc-aarch64-linux-gnu"), ("armv7", "gcc-arm-linux-gnueabihf")])
  func missingCrossCompilerIsOneLineNamingThePackage(target: String, package: String) throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let binary = scratch.appendingPathComponent("model")
    let outcome = try vitc([
      "build", "samples/tiny.graph", "--random-weights", "1", "--target", target, "--static",
      "--cc", "/nonexistent/\(target)-gcc", "-o", binary.path,
    ])
    #expect(outcome.status == 1)
    let lines = outcome.stderr.split(separator: "\n")
    #expect(lines.count == 1, "stderr: \(outcome.stderr)")
    #expect(outcome.stderr.contains("apt-get install \(package)"), "stderr: \(outcome.stderr)")
    #expect(outcome.stderr.contains("/nonexistent/\(target)-gcc"))
    #expect(!FileManager.default.fileExists(atPath: binary.path))
    #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty)
  }

  /// `vitc compile` takes --target too: the C is the same, and it prints that target's build
  /// command.
  @Test func compileAcceptsTheTargetAndPrintsItsBuildCommand() throws {
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outcome = try vitc([
      "compile", "samples/tiny.graph", "--random-weights", "1", "--target", "armv7", "-o", scratch.appendingPathComponent("model.c").path,
    ])
    #expect(outcome.status == 0, "\(outcome.output)")
    let line = outcome.stdout.split(separator: "\n").first { $0.hasPrefix("build for armv7 with: ") }
    #expect(line?.contains("arm-linux-gnueabihf-gcc -std=c11 -O3 -march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard") == true, "\(outcome.stdout)")
    #expect(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("model_weights.S").path))
  }

  // MARK: helpers

  /// What one binary printed to its trace: the stages and the logits.
  struct Result {
    var stages: [[String: Any]]
    var logits: [Double]
  }

  /// The runtime's kernel harness (Runtime/tests/test_kernels.c: every kernel against naive
  /// double-precision C on odd shapes, and bitwise across thread counts) cross-built with the
  /// NEON microkernels and run under qemu. -DVIT_TEST_QUICK leaves out the 197-row shapes,
  /// which take 40 s under emulation; Runtime/tests/run_tests.sh runs them all.
  @Test(arguments: [
    ("aarch64-linux-gnu-gcc", "qemu-aarch64", ["-march=armv8-a"]),
    ("arm-linux-gnueabihf-gcc", "qemu-arm", ["-march=armv7-a", "-mfpu=neon-vfpv4", "-mfloat-abi=hard"]),
  ])
  func neonKernelsMatchTheReferenceUnderEmulation(compiler: String, emulator: String, flags: [String]) throws {
    try Self.requireCrossTools()
    let scratch = try scratchDirectory()
    defer { try? FileManager.default.removeItem(at: scratch) }
    let binary = scratch.appendingPathComponent("test_kernels")
    let runtime = repositoryRoot.appendingPathComponent("Runtime")
    let sources = ["tests/test_kernels.c", "src/vit_threads.c", "src/vit_math.c", "src/vit_gemm.c", "src/vit_attention.c"].map { runtime.appendingPathComponent($0).path }
    let env = URL(fileURLWithPath: "/usr/bin/env")
    var arguments: [String] = [compiler, "-std=c11", "-O2", "-static", "-DVIT_TEST_QUICK", "-Wall", "-Wextra", "-Werror"]
    arguments += flags
    arguments += ["-I", runtime.appendingPathComponent("include").path]
    arguments += sources
    arguments += ["-o", binary.path, "-lm", "-pthread"]
    let built = try TestSupport.run(env, arguments)
    try #require(built.status == 0, "\(compiler) failed:\n\(built.output)")
    let ran = try TestSupport.run(env, [emulator, binary.path])
    #expect(ran.status == 0, "\(ran.output)")
    let lines = ran.stdout.split(separator: "\n")
    #expect(lines.first?.contains("gemm=neon") == true, "\(lines.first ?? "")")
    let summary = lines.last.map(String.init) ?? ""
    #expect(summary.hasSuffix(" passed, 0 failed") && (Int(summary.split(separator: " ")[0]) ?? 0) > 500, "\(summary)")
  }

  static func requireCrossTools() throws {
    try requireSystemPackages(
      "gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "gcc-arm-linux-gnueabihf", "libc6-dev-armhf-cross", "qemu-user")
  }

  static func build(spec: String, _ options: [String], in scratch: URL, name: String, graph: String = "samples/tiny.graph") throws -> URL {
    let binary = scratch.appendingPathComponent(name)
    let built = try vitc(["build", graph, "--random-weights", "1", "--prune", spec] + options + ["-o", binary.path])
    try #require(built.status == 0, "vitc build \(options.joined(separator: " ")) --prune \(spec) failed:\n\(built.output)")
    return binary
  }

  static func buildAndRun(
    spec: String, _ options: [String], in scratch: URL, name: String, input: URL, graph: String = "samples/tiny.graph"
  ) throws -> Result {
    let binary = try build(spec: spec, options, in: scratch, name: name, graph: graph)
    return try run(binary, emulator: nil, input: input, trace: scratch.appendingPathComponent("\(name).json"))
  }

  /// Runs a model binary (under `emulator` if given) with two threads and reads its trace.
  static func run(_ binary: URL, emulator: String?, input: URL, trace: URL) throws -> Result {
    let arguments = ["--input", input.path, "--trace", trace.path, "--threads", "2"]
    let ran: Outcome
    if let emulator {
      ran = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/env"), [emulator, binary.path] + arguments)
    } else {
      ran = try TestSupport.run(binary, arguments)
    }
    try #require(ran.status == 0, "\(emulator.map { $0 + " " } ?? "")\(binary.lastPathComponent) failed (status \(ran.status)):\n\(ran.output)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: trace)) as? [String: Any])
    let stages = try #require(json["stages"] as? [[String: Any]])
    let logits = try #require(json["logits"] as? [Any]).map { ($0 as? Double) ?? .nan }
    return Result(stages: stages, logits: logits)
  }

  /// The trace exactly, the logits within the tolerance.
  static func compare(_ result: Result, to host: Result, what: String) {
    #expect(result.stages.count == host.stages.count, "\(what): \(result.stages.count) stages, host \(host.stages.count)")
    for (index, (mine, theirs)) in zip(result.stages, host.stages).enumerated() {
      let same =
        mine["block"] as? Int == theirs["block"] as? Int && mine["tokens"] as? Int == theirs["tokens"] as? Int
        && mine["patches"] as? [[Int]] == theirs["patches"] as? [[Int]]
      #expect(same, "\(what): stage \(index) differs from the host's (block \(theirs["block"] ?? "?"), tokens \(mine["tokens"] ?? "?") vs \(theirs["tokens"] ?? "?"))")
      if !same { return }
    }
    #expect(result.logits.count == host.logits.count && !host.logits.isEmpty, "\(what): \(result.logits.count) logits, host \(host.logits.count)")
    let scale = max(1, host.logits.map { abs($0) }.max() ?? 0)
    let worst = zip(result.logits, host.logits).map { abs($0 - $1) }.max() ?? .nan
    #expect(worst <= 1e-4 * scale, "\(what): max |Δlogit| \(worst) against the host, max |logit| \(scale)")
  }

  /// e_machine of an ELF file (little-endian), or nil if it is not ELF.
  static func elfMachine(_ url: URL) throws -> UInt16? {
    let handle = try FileHandle(forReadingFrom: url)
    defer { try? handle.close() }
    let header = [UInt8](try handle.read(upToCount: 20) ?? Data())
    guard header.count == 20, header[0..<4] == [0x7F, 0x45, 0x4C, 0x46] else { return nil }
    return UInt16(header[18]) | UInt16(header[19]) << 8
  }
}
