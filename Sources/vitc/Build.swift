import ArgumentParser
import Foundation
import VitDriver

extension BuildTarget: ExpressibleByArgument {}

/// `--target`, shared by `build` (which compiles for it) and `compile` (which prints the
/// command that builds its output for it).
struct TargetOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "What to build for: host (this machine, -march=native), aarch64 (armv8-a, NEON), armv7 (armv7-a hard float, NEON with VFPv4) or generic (portable scalar C, -pedantic). See docs/boards.md.",
      valueName: "target"))
  var target: BuildTarget = .host
}

struct Build: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Compile a model and link it into a standalone executable.",
    discussion: """
      Emits the C (as `vitc compile` does) into a temporary directory and builds it with \
      -std=c11 -O3 (never -ffast-math), -Wall -Wextra -Werror and the target's flags: \
      host: clang -march=native; aarch64: aarch64-linux-gnu-gcc -march=armv8-a; armv7: \
      arm-linux-gnueabihf-gcc -march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard; generic: \
      clang -DVIT_GENERIC -pedantic. --cc replaces the compiler (clang gets --target=… for the \
      ARM targets). The runtime's object files are compiled once per compiler and flags and \
      kept in ~/.cache/vitc (VITC_CACHE_DIR sets the folder; VITC_CACHE_DIR= turns it off). \
      The binary needs only libc, libm and libpthread (and libopenblas with --blas openblas), \
      or nothing with --static. It is written whole or not at all, never over a directory or \
      an input. Without --weights and --random-weights the binary loads its weights when it \
      runs (BIN --weights FILE.safetensors IMAGE; docs/runtime-weights.md). Run it with --help \
      to see its options; docs/boards.md says how to run it on a \
      board.
      """)

  @OptionGroup var model: ModelOptions
  @OptionGroup var pruning: PruneOptions
  @OptionGroup var emit: EmitFlags
  @OptionGroup var targetOptions: TargetOptions

  @Option(name: .shortAndLong, help: ArgumentHelp("The executable to write.", valueName: "file"))
  var output: String

  @Option(help: ArgumentHelp("The C compiler, or a path to it (default: clang for host and generic, aarch64-linux-gnu-gcc, arm-linux-gnueabihf-gcc).", valueName: "cc"))
  var cc: String?

  @Flag(help: "Link statically (-static): the binary then runs on any Linux of its architecture, with no libraries installed.")
  var `static` = false

  @Flag(help: "Build without the thread pool (no pthreads).")
  var noThreads = false

  @Flag(help: "Use libm's expf and erff one element at a time instead of the runtime's vectorised exp and erf (about 1 ulp; see Runtime/README.md).")
  var scalarMath = false

  @Option(help: ArgumentHelp("Also keep the generated C in this directory.", valueName: "dir"))
  var keepSources: String?

  func validate() throws {
    if emit.blas == .openblas && targetOptions.target != .host {
      throw ValidationError("--blas openblas needs --target host (there is no OpenBLAS for the other targets here)")
    }
  }

  func run() throws {
    try reportingErrors {
      var options = BuildOptions()
      options.target = targetOptions.target
      options.compiler = cc
      options.threads = !noThreads
      options.vectorMath = !scalarMath
      options.isStatic = `static`
      let report = try model.session(prune: pruning.prune, precision: pruning.precision).build(
        output: output, options: options, emit: emit.options, keepSources: keepSources)
      let target = targetOptions.target
      let kind = target.rawValue + (`static` ? ", static" : "") + (pruning.precision == .f32 ? "" : ", \(pruning.precision.rawValue) linears")
      let code = max(0, report.binaryBytes - report.embeddedWeightBytes)
      print("built \(output) (\(kind)): \(grouped(report.binaryBytes)) bytes (weights \(grouped(report.embeddedWeightBytes)), code and data \(grouped(code))), static memory \(grouped(report.staticBytes)) bytes (arena \(grouped(report.arenaBytes)))")
      if report.loadsWeights {
        print("the weights are loaded at run time: \(output) --weights WEIGHTS.safetensors IMAGE.ppm (safetensors with the graph's tensor names, F32, F16 or BF16)")
      }
      if let weights = report.weightsFile {
        print("weights \(weights.path): \(grouped(weights.bytes)) bytes; run with --weights \(weights.path)")
      }
      if let emulator = target.emulator {
        let libraries = `static` ? "" : " -L /usr/\(target.triple!)"
        print("run it on the board, or here with: \(emulator)\(libraries) \(output) --help")
      }
    }
  }
}
