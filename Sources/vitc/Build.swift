import ArgumentParser
import Foundation

struct Build: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Compile a model and link it into a standalone executable.",
    discussion: """
      Emits the C (as `vitc compile` does) into a temporary directory and builds it with \
      -std=c11 -O3 -march=native (never -ffast-math), -Wall -Wextra -Werror. The binary needs \
      only libc, libm and libpthread (and libopenblas with --blas openblas). Run it with --help \
      to see its options.
      """)

  @OptionGroup var model: ModelOptions
  @OptionGroup var pruning: PruneOptions
  @OptionGroup var emit: EmitOptions

  @Option(name: .shortAndLong, help: ArgumentHelp("The executable to write.", valueName: "file"))
  var output: String

  @Option(help: ArgumentHelp("The C compiler: clang or gcc (or a path).", valueName: "cc"))
  var cc: String = "clang"

  @Flag(help: "Build without the thread pool (no pthreads).")
  var noThreads = false

  @Flag(help: "Use libm's expf and erff one element at a time instead of the runtime's vectorised exp and erf (about 1 ulp; see Runtime/README.md).")
  var scalarMath = false

  @Option(help: ArgumentHelp("Also keep the generated C in this directory.", valueName: "dir"))
  var keepSources: String?

  func run() throws {
    try reportingErrors {
      let fileManager = FileManager.default
      let work = fileManager.temporaryDirectory.appendingPathComponent("vitc-build-\(UUID().uuidString)").path
      defer { try? fileManager.removeItem(atPath: work) }
      let emitted = try compileModel(model, emit, prune: pruning.prune, stem: "model", labels: emit.labels)
      try writeFiles(emitted.files, into: work)
      if let keepSources { try writeFiles(emitted.files, into: keepSources) }

      let sources = emitted.files.keys.filter { $0.hasSuffix(".c") || $0.hasSuffix(".S") }.sorted().map { work + "/" + $0 }
      let binary = work + "/model.bin.out"
      var arguments = ["-std=c11", "-O3", "-march=native", "-Wall", "-Wextra", "-Werror", "-I", work, "-Wa,-I\(work)"]
      if noThreads { arguments.append("-DVIT_NO_THREADS") }
      if !scalarMath { arguments.append("-DVIT_VECTOR_MATH") }
      if emit.blas == .openblas { arguments.append("-DVIT_BLAS_OPENBLAS") }
      arguments += sources + ["-o", binary] + (emit.blas == .openblas ? ["-lopenblas"] : []) + ["-lm"]
        + (noThreads ? [] : ["-lpthread"])
      try runCompiler(cc, arguments)

      let destination = URL(fileURLWithPath: output)
      try? fileManager.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
      try? fileManager.removeItem(atPath: output)
      do {
        try fileManager.moveItem(atPath: binary, toPath: output)
      } catch {
        throw CommandError.cannotWrite(path: output, reason: "\(error.localizedDescription)")
      }
      let size = (try? fileManager.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
      print("built \(output): \(grouped(size)) bytes (weights \(grouped(emitted.weightBytes)), code and data \(grouped(max(0, size - emitted.weightBytes)))), arena \(grouped(emitted.arenaBytes)) bytes")
    }
  }

  private func runCompiler(_ compiler: String, _ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [compiler] + arguments
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = errors
    do {
      try process.run()
    } catch {
      throw BuildError.compilerNotFound(compiler)
    }
    let output = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw BuildError.compilerFailed(compiler, status: process.terminationStatus, output: String(decoding: output, as: UTF8.self))
    }
  }
}

enum BuildError: Error, CustomStringConvertible {
  case compilerNotFound(String)
  case compilerFailed(String, status: Int32, output: String)

  var description: String {
    switch self {
    case .compilerNotFound(let cc): "error: cannot run the C compiler '\(cc)'"
    case .compilerFailed(let cc, let status, let output):
      "error: the C compiler '\(cc)' failed (status \(status)); this is a vitc bug, please report it:\n\(output)"
    }
  }
}
