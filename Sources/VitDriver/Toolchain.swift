import Foundation

/// What `vitc build` compiles for. The emitted C is the same for every target: the runtime picks
/// its kernels from the compiler's predefined macros (Runtime/README.md), so a target is a
/// compiler and its flags.
public enum BuildTarget: String, Sendable, CaseIterable {
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
  public var defaultCompiler: String {
    switch self {
    case .host, .generic: "clang"
    case .aarch64: "aarch64-linux-gnu-gcc"
    case .armv7: "arm-linux-gnueabihf-gcc"
    }
  }

  /// The Debian triple of a cross target: clang's --target, and the sysroot under /usr.
  public var triple: String? {
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
  public var emulator: String? {
    switch self {
    case .host, .generic: nil
    case .aarch64: "qemu-aarch64"
    case .armv7: "qemu-arm"
    }
  }
}

/// How `vitc build` compiles and links.
public struct BuildOptions: Sendable {
  public var target: BuildTarget = .host
  /// The C compiler (a name looked up in PATH, or a path); nil is the target's default.
  public var compiler: String? = nil
  public var threads = true
  public var vectorMath = true
  public var isStatic = false
  /// Where the runtime's object files are kept between builds (nil: compiled every time).
  public var cache: ObjectCache? = ObjectCache.standard()
  public init() {}
}

/// The compiler command lines for a target: flags for each translation unit, flags for the link.
public struct CompilerInvocation: Sendable {
  public var compiler: String
  /// Flags for `cc -c`: language, optimisation, target, warnings, include paths, macros.
  public var compileFlags: [String]
  /// Flags for the link: the target's, -static, -pthread.
  public var linkFlags: [String]
  public var libraries: [String]
  /// The compiler came from --cc (it may simply not be a C11 compiler vitc supports).
  public var chosenByUser: Bool

  public init(_ options: BuildOptions, directory: String, openblas: Bool) {
    compiler = options.compiler ?? options.target.defaultCompiler
    chosenByUser = options.compiler != nil
    var targetFlags: [String] = []
    // clang is a cross compiler already; it needs only the target (it finds Debian's
    // gcc-cross installation and sysroot by itself).
    if let clangTarget = options.target.clangTarget, Self.isClang(compiler) { targetFlags.append("--target=\(clangTarget)") }
    targetFlags += options.target.flags
    compileFlags = ["-std=c11", "-O3"] + targetFlags + ["-Wall", "-Wextra", "-Werror", "-I", directory, "-Wa,-I\(directory)"]
    if !options.threads { compileFlags.append("-DVIT_NO_THREADS") }
    if options.vectorMath { compileFlags.append("-DVIT_VECTOR_MATH") }
    if openblas { compileFlags.append("-DVIT_BLAS_OPENBLAS") }
    if options.threads { compileFlags.append("-pthread") }
    linkFlags = targetFlags.filter { $0 != "-pedantic" && !$0.hasPrefix("-D") }
    if options.isStatic { linkFlags.append("-static") }
    if options.threads { linkFlags.append("-pthread") }
    libraries = (openblas ? ["-lopenblas"] : []) + ["-lm"]
    if options.threads {
      // glibc ≥ 2.34 has pthreads in libc.a and an empty libpthread.a. With an older glibc a
      // static link must take all of libpthread.a, or the weak pthread symbols stay null.
      libraries += options.isStatic ? ["-Wl,--whole-archive", "-lpthread", "-Wl,--no-whole-archive"] : ["-lpthread"]
    }
  }

  static func isClang(_ compiler: String) -> Bool {
    URL(fileURLWithPath: compiler).lastPathComponent.hasPrefix("clang")
  }

  /// The whole build as one shell line (for `vitc compile`'s hint): compile and link at once.
  public func commandLine(sources: [String], output: String) -> String {
    let flags = compileFlags + linkFlags.filter { !compileFlags.contains($0) }
    return ([compiler] + flags + sources + ["-o", output] + libraries).map(Self.quoted).joined(separator: " ")
  }

  private static func quoted(_ word: String) -> String {
    word.allSatisfy { $0.isLetter || $0.isNumber || "-_=./,+:*".contains($0) } ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
  }
}

/// Errors of the C toolchain.
public enum BuildError: Error, CustomStringConvertible {
  case compilerNotFound(String)
  case crossCompilerNotFound(String, target: BuildTarget)
  case crossLibcNotFound(String, target: BuildTarget)
  case hostCompiler(String, target: BuildTarget)
  /// `chosenByUser`: the compiler came from --cc; otherwise a failure of vitc's own choice is
  /// a vitc bug.
  case compilerFailed(String, status: Int32, output: String, chosenByUser: Bool)

  public var description: String {
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

/// Runs the C toolchain: checks the compiler, compiles each translation unit (the shared
/// runtime's from the object cache when it holds them), links.
public struct Toolchain: Sendable {
  public var invocation: CompilerInvocation
  public var target: BuildTarget
  public var isStatic: Bool
  public var cache: ObjectCache?

  public init(invocation: CompilerInvocation, target: BuildTarget, isStatic: Bool, cache: ObjectCache? = ObjectCache.standard()) {
    self.invocation = invocation
    self.target = target
    self.isStatic = isStatic
    self.cache = cache
  }

  /// The compiler must be runnable, and a cross target's Debian libc must be there for the
  /// compilers that rely on it (the default cross gcc, and clang).
  public func check() throws {
    let compiler = invocation.compiler
    guard Self.resolve(compiler) != nil else {
      throw target.triple == nil ? BuildError.compilerNotFound(compiler) : BuildError.crossCompilerNotFound(compiler, target: target)
    }
    #if arch(x86_64)
      if target.triple != nil, ["gcc", "cc"].contains(URL(fileURLWithPath: compiler).lastPathComponent) {
        throw BuildError.hostCompiler(compiler, target: target)
      }
    #endif
    if let triple = target.triple, !invocation.chosenByUser || CompilerInvocation.isClang(compiler) {
      let sysroot = "/usr/\(triple)"
      let needed = sysroot + "/include/stdio.h"
      guard FileManager.default.fileExists(atPath: needed) else { throw BuildError.crossLibcNotFound(needed, target: target) }
      if isStatic && !FileManager.default.fileExists(atPath: sysroot + "/lib/libc.a") {
        throw BuildError.crossLibcNotFound(sysroot + "/lib/libc.a", target: target)
      }
    }
  }

  /// Compiles `sources` (file names in `directory`) and links them into `output`. Sources in
  /// `shared` (the runtime, byte-identical for every model) go through the object cache.
  public func build(sources: [String], shared: Set<String>, in directory: String, output: String) throws {
    let objects = sources.map { directory + "/" + $0 + ".o" }
    let failures = FailureBox()
    DispatchQueue.concurrentPerform(iterations: sources.count) { index in
      do {
        let source = directory + "/" + sources[index]
        if shared.contains(sources[index]), let cache {
          try cache.object(for: source, in: directory, key: keyMaterial) { object in try compile(source, to: object) }
            .copy(to: objects[index])
        } else {
          try compile(source, to: objects[index])
        }
      } catch {
        failures.record(index, error)
      }
    }
    if let error = failures.first { throw error }
    try run(invocation.linkFlags + objects + ["-o", output] + invocation.libraries)
  }

  /// What, besides the sources, decides an object file: the compiler (path, size, time) and flags.
  private var keyMaterial: String {
    let path = Self.resolve(invocation.compiler) ?? invocation.compiler
    let attributes = try? FileManager.default.attributesOfItem(atPath: URL(fileURLWithPath: path).resolvingSymlinksInPath().path)
    let size = attributes?[.size] as? Int ?? 0
    let time = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
    return ([path, "\(size)", "\(time)"] + invocation.compileFlags.filter { !$0.hasPrefix("-I") && !$0.hasPrefix("-Wa,-I") && !$0.hasPrefix("/") })
      .joined(separator: "\u{0}")
  }

  private func compile(_ source: String, to object: String) throws {
    try run(invocation.compileFlags + ["-c", source, "-o", object])
  }

  /// The executable a compiler name or path stands for, looked up in PATH like a shell does.
  public static func resolve(_ compiler: String) -> String? {
    let fileManager = FileManager.default
    if compiler.contains("/") { return fileManager.isExecutableFile(atPath: compiler) ? compiler : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
      let candidate = String(directory) + "/" + compiler
      if fileManager.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }

  private func run(_ arguments: [String]) throws {
    let compiler = invocation.compiler
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
        compiler, status: process.terminationStatus, output: String(decoding: output, as: UTF8.self), chosenByUser: invocation.chosenByUser)
    }
  }
}

/// The first error of concurrent iterations, by index.
final class FailureBox: @unchecked Sendable {
  private let lock = NSLock()
  private var errors: [(Int, any Error)] = []
  func record(_ index: Int, _ error: any Error) {
    lock.lock()
    errors.append((index, error))
    lock.unlock()
  }
  var first: (any Error)? { errors.min { $0.0 < $1.0 }?.1 }
}
