import ArgumentParser
import Foundation
import VitEmitC

/// What `vitc build` compiles for. The emitted C is the same for every target: the runtime picks
/// its kernels from the compiler's predefined macros (Runtime/README.md), so a target is a
/// compiler and its flags.
enum BuildTarget: String, CaseIterable, ExpressibleByArgument {
  /// This machine: the compiler's best kernels for it (-march=native).
  case host
  /// 64-bit ARM (Raspberry Pi 3/4/5 and Jetson with a 64-bit OS): armv8-a, NEON is baseline.
  case aarch64
  /// 32-bit ARM with hard float (Raspberry Pi OS 32-bit, Cortex-A7/A9/A15/A53 boards): NEON with
  /// VFPv4, the FPU that has vfmaq_f32 (the Debian default, vfpv3-d16, has no NEON at all).
  case armv7
  /// Any C11 compiler and CPU: the portable scalar kernels only (-DVIT_GENERIC), no -march.
  case generic

  /// The compiler used without --cc.
  var defaultCompiler: String {
    switch self {
    case .host, .generic: "clang"
    case .aarch64: "aarch64-linux-gnu-gcc"
    case .armv7: "arm-linux-gnueabihf-gcc"
    }
  }

  /// The Debian triple of a cross target: clang's --target, and the sysroot under /usr.
  var triple: String? {
    switch self {
    case .host, .generic: nil
    case .aarch64: "aarch64-linux-gnu"
    case .armv7: "arm-linux-gnueabihf"
    }
  }

  /// clang's --target. Plain arm-linux-gnueabihf would mean armv6kz (TOOLCHAIN.md).
  var clangTarget: String? {
    switch self {
    case .host, .generic: nil
    case .aarch64: "aarch64-linux-gnu"
    case .armv7: "armv7a-linux-gnueabihf"
    }
  }

  /// The Debian packages that provide the cross compiler and the target's libc (headers, libc.a).
  var debianPackages: String {
    switch self {
    case .host, .generic: "clang or gcc"
    case .aarch64: "gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
    case .armv7: "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross"
    }
  }

  /// The flags that select the instruction set (and, for generic, the strictness).
  var flags: [String] {
    switch self {
    case .host: ["-march=native"]
    case .aarch64: ["-march=armv8-a"]
    case .armv7: ["-march=armv7-a", "-mfpu=neon-vfpv4", "-mfloat-abi=hard"]
    case .generic: ["-DVIT_GENERIC", "-pedantic"]
    }
  }

  /// How to run a binary built for this target on an x86-64 Linux machine (qemu-user).
  var emulator: String? {
    switch self {
    case .host, .generic: nil
    case .aarch64: "qemu-aarch64"
    case .armv7: "qemu-arm"
    }
  }
}

/// `--target`, shared by `build` (which compiles for it) and `compile` (which prints the
/// command that builds its output for it).
struct TargetOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "What to build for: host (this machine, -march=native), aarch64 (armv8-a, NEON), armv7 (armv7-a hard float, NEON with VFPv4) or generic (portable scalar C, -pedantic). See docs/boards.md.",
      valueName: "target"))
  var target: BuildTarget = .host
}

/// The compiler command line for `target`: compiler, flags before the sources, flags after.
struct CompilerInvocation {
  var compiler: String
  var flags: [String]
  var libraries: [String]

  init(target: BuildTarget, cc: String?, directory: String, threads: Bool, vectorMath: Bool, openblas: Bool, isStatic: Bool) {
    compiler = cc ?? target.defaultCompiler
    flags = ["-std=c11", "-O3"]
    // clang is a cross compiler already; it needs only the target (it finds Debian's
    // gcc-cross installation and sysroot by itself).
    if let clangTarget = target.clangTarget, Self.isClang(compiler) { flags.append("--target=\(clangTarget)") }
    flags += target.flags
    flags += ["-Wall", "-Wextra", "-Werror", "-I", directory, "-Wa,-I\(directory)"]
    if !threads { flags.append("-DVIT_NO_THREADS") }
    if vectorMath { flags.append("-DVIT_VECTOR_MATH") }
    if openblas { flags.append("-DVIT_BLAS_OPENBLAS") }
    if isStatic { flags.append("-static") }
    if threads { flags.append("-pthread") }
    libraries = (openblas ? ["-lopenblas"] : []) + ["-lm"]
    if threads {
      // glibc ≥ 2.34 has pthreads in libc.a and an empty libpthread.a. With an older glibc a
      // static link must take all of libpthread.a, or the weak pthread symbols stay null.
      libraries += isStatic ? ["-Wl,--whole-archive", "-lpthread", "-Wl,--no-whole-archive"] : ["-lpthread"]
    }
  }

  static func isClang(_ compiler: String) -> Bool {
    URL(fileURLWithPath: compiler).lastPathComponent.hasPrefix("clang")
  }

  /// The whole command, as a shell line (for `vitc compile`'s hint).
  func commandLine(sources: [String], output: String) -> String {
    ([compiler] + flags + sources + ["-o", output] + libraries).map(Self.quoted).joined(separator: " ")
  }

  private static func quoted(_ word: String) -> String {
    word.allSatisfy { $0.isLetter || $0.isNumber || "-_=./,+:*".contains($0) } ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
  }
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
      ARM targets). The binary needs only libc, libm and libpthread (and libopenblas with \
      --blas openblas), or nothing with --static. Run it with --help to see its options; \
      docs/boards.md says how to run it on a board.
      """)

  @OptionGroup var model: ModelOptions
  @OptionGroup var pruning: PruneOptions
  @OptionGroup var emit: EmitOptions
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
      let target = targetOptions.target
      let fileManager = FileManager.default
      let work = fileManager.temporaryDirectory.appendingPathComponent("vitc-build-\(UUID().uuidString)").path
      let invocation = CompilerInvocation(
        target: target, cc: cc, directory: work, threads: !noThreads, vectorMath: !scalarMath,
        openblas: emit.blas == .openblas, isStatic: `static`)
      // Before anything is emitted: a missing (cross) compiler is the likeliest error here.
      try checkCompiler(invocation.compiler, for: target)

      defer { try? fileManager.removeItem(atPath: work) }
      let emitted = try compileModel(model, emit, prune: pruning.prune, stem: "model", labels: emit.labels)
      try writeFiles(emitted.files, into: work)
      if let keepSources { try writeFiles(emitted.files, into: keepSources) }

      let sources = emitted.files.keys.filter(EmitC.isCompiledSource).sorted().map { work + "/" + $0 }
      let binary = work + "/model.bin.out"
      try runCompiler(invocation.compiler, invocation.flags + sources + ["-o", binary] + invocation.libraries)

      let destination = URL(fileURLWithPath: output)
      try? fileManager.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
      // With --weights-at-runtime the weights file goes beside the binary, as OUTPUT.weights.
      var moves = [(binary, output)]
      if emitted.weightsAtRuntime { moves.append((work + "/model_weights.bin", output + ".weights")) }
      for (from, to) in moves {
        try? fileManager.removeItem(atPath: to)
        do {
          try fileManager.moveItem(atPath: from, toPath: to)
        } catch {
          throw CommandError.cannotWrite(path: to, reason: "\(error.localizedDescription)")
        }
      }
      let size = (try? fileManager.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
      let kind = target.rawValue + (`static` ? ", static" : "")
      let carried = emitted.weightsAtRuntime ? 0 : emitted.weightBytes
      print("built \(output) (\(kind)): \(grouped(size)) bytes (weights \(grouped(carried)), code and data \(grouped(max(0, size - carried)))), arena \(grouped(emitted.arenaBytes)) bytes")
      if emitted.weightsAtRuntime {
        print("weights \(output).weights: \(grouped(emitted.weightBytes + WeightsFile.headerBytes)) bytes; run with --weights \(output).weights")
      }
      if let emulator = target.emulator {
        let libraries = `static` ? "" : " -L /usr/\(target.triple!)"
        print("run it on the board, or here with: \(emulator)\(libraries) \(output) --help")
      }
    }
  }

  /// The compiler must be runnable, and a cross target's Debian libc must be there for the
  /// compilers that rely on it (the default cross gcc, and clang).
  private func checkCompiler(_ compiler: String, for target: BuildTarget) throws {
    guard Self.resolve(compiler) != nil else {
      throw target.triple == nil
        ? BuildError.compilerNotFound(compiler)
        : BuildError.crossCompilerNotFound(compiler, target: target)
    }
    #if arch(x86_64)
      if target.triple != nil, ["gcc", "cc"].contains(URL(fileURLWithPath: compiler).lastPathComponent) {
        throw BuildError.hostCompiler(compiler, target: target)
      }
    #endif
    if let triple = target.triple, cc == nil || CompilerInvocation.isClang(compiler) {
      let sysroot = "/usr/\(triple)"
      let needed = sysroot + "/include/stdio.h"
      guard FileManager.default.fileExists(atPath: needed) else {
        throw BuildError.crossLibcNotFound(needed, target: target)
      }
      if `static` && !FileManager.default.fileExists(atPath: sysroot + "/lib/libc.a") {
        throw BuildError.crossLibcNotFound(sysroot + "/lib/libc.a", target: target)
      }
    }
  }

  /// The executable a compiler name or path stands for, looked up in PATH like a shell does.
  static func resolve(_ compiler: String) -> String? {
    let fileManager = FileManager.default
    if compiler.contains("/") { return fileManager.isExecutableFile(atPath: compiler) ? compiler : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
      let candidate = String(directory) + "/" + compiler
      if fileManager.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }

  private func runCompiler(_ compiler: String, _ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Self.resolve(compiler) ?? compiler)
    process.arguments = arguments
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
      throw BuildError.compilerFailed(
        compiler, status: process.terminationStatus, output: String(decoding: output, as: UTF8.self), chosenByUser: cc != nil)
    }
  }
}

enum BuildError: Error, CustomStringConvertible {
  case compilerNotFound(String)
  case crossCompilerNotFound(String, target: BuildTarget)
  case crossLibcNotFound(String, target: BuildTarget)
  case hostCompiler(String, target: BuildTarget)
  /// `chosenByUser`: the compiler came from --cc (it may simply not be a C11 compiler vitc
  /// supports); otherwise a failure of vitc's own choice is a vitc bug.
  case compilerFailed(String, status: Int32, output: String, chosenByUser: Bool)

  var description: String {
    switch self {
    case .compilerNotFound(let cc): "error: cannot run the C compiler '\(cc)'"
    case .crossCompilerNotFound(let cc, let target):
      "error: cannot run the \(target.rawValue) cross compiler '\(cc)'; on Debian or Ubuntu: apt-get install \(target.debianPackages)"
    case .crossLibcNotFound(let file, let target):
      "error: no \(target.rawValue) C library (\(file) is missing); on Debian or Ubuntu: apt-get install \(target.debianPackages)"
    case .hostCompiler(let cc, let target):
      "error: '\(cc)' compiles for this machine, not for \(target.rawValue); leave out --cc (\(target.defaultCompiler)) or give --cc clang"
    case .compilerFailed(let cc, let status, let output, true):
      "error: the C compiler '\(cc)' (--cc) failed (status \(status)):\n\(output)"
    case .compilerFailed(let cc, let status, let output, false):
      "error: the C compiler '\(cc)' failed (status \(status)); this is a vitc bug, please report it:\n\(output)"
    }
  }
}
