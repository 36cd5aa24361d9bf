import Foundation
import VitIR

/// Mistakes in a `--prune SPEC` (docs/methods.md). Each message quotes the spec, points at the
/// column of the offending part, and says what would be accepted.
public enum ScheduleError: Error, Equatable, CustomStringConvertible {
  /// A method name vitc does not know.
  case unknownMethod(String, spec: String, column: Int)
  /// A number that does not parse.
  case notANumber(String, what: String, spec: String, column: Int)
  /// A keep ratio or cluster fraction outside (0, 1].
  case ratioOutOfRange(Double, what: String, spec: String, column: Int)
  /// An argument the method needs is missing.
  case missingArgument(String, spec: String)
  /// An argument that belongs to another method (`dyvit:0.7,nofuse`) or to none.
  case foreignArgument(String, method: String, owner: String?, spec: String, column: Int)
  /// AS-ViT thresholds whose count differs from the locations'.
  case thresholdCount(found: Int, locations: Int, spec: String)
  /// A location the model does not have.
  case locationOutsideModel(Int, depth: Int, spec: String, column: Int)
  /// Locations not strictly ascending.
  case locationsOutOfOrder(spec: String, column: Int)
  /// An argument given twice (`evit:0.7,nofuse,nofuse`).
  case repeatedArgument(String, spec: String, column: Int)
  /// More per-block r values than the model has blocks.
  case tooManyMerges(found: Int, depth: Int, spec: String, column: Int)
  /// `@locations` where the method has none (`none@3`) or takes a per-block list instead.
  case locationsNotTaken(String, spec: String, column: Int)
  /// A negative ToMe r.
  case negativeMerges(Int, spec: String, column: Int)
  /// A parameter the schedule needs is missing from the weights (predictors, thresholds).
  case missingTensor(String, method: String, path: String)
  /// A learned threshold in the weights that is not one number.
  case thresholdNotScalar(String, shape: [Int], path: String)

  public var description: String {
    switch self {
    case .unknownMethod(let name, let spec, let column):
      "--prune '\(spec)':\(column): error: unknown method '\(name)'; methods: none, dyvit, evit, asvit, bat, tome"
    case .notANumber(let text, let what, let spec, let column):
      "--prune '\(spec)':\(column): error: \(what) '\(text)' is not a number"
    case .ratioOutOfRange(let value, let what, let spec, let column):
      "--prune '\(spec)':\(column): error: \(what) \(formatReal(value)) is outside (0, 1]"
    case .missingArgument(let what, let spec):
      "--prune '\(spec)': error: missing \(what)"
    case .foreignArgument(let argument, let method, let owner, let spec, let column):
      "--prune '\(spec)':\(column): error: '\(argument)' is not an argument of \(method)"
        + (owner.map { " (it belongs to \($0))" } ?? "")
    case .thresholdCount(let found, let locations, let spec):
      "--prune '\(spec)': error: \(found) threshold\(found == 1 ? "" : "s") for \(locations) location\(locations == 1 ? "" : "s")"
    case .locationOutsideModel(let location, let depth, let spec, let column):
      "--prune '\(spec)':\(column): error: location \(location) is outside the model (blocks 0 … \(depth - 1))"
    case .locationsOutOfOrder(let spec, let column):
      "--prune '\(spec)':\(column): error: locations must be strictly ascending"
    case .repeatedArgument(let argument, let spec, let column):
      "--prune '\(spec)':\(column): error: '\(argument)' is given twice"
    case .tooManyMerges(let found, let depth, let spec, let column):
      "--prune '\(spec)':\(column): error: \(found) per-block merge counts for a model of \(depth) blocks"
    case .locationsNotTaken(let what, let spec, let column):
      "--prune '\(spec)':\(column): error: \(what)"
    case .negativeMerges(let r, let spec, let column):
      "--prune '\(spec)':\(column): error: ToMe's r must be 0 or more, found \(r)"
    case .missingTensor(let name, let method, let path):
      "\(path): error: \(method) needs the tensor '\(name)', which the weights do not have"
    case .thresholdNotScalar(let name, let shape, let path):
      "\(path): error: '\(name)' should hold one threshold, it has shape [\(shape.map(String.init).joined(separator: ","))]"
    }
  }
}

/// Reads `--prune SPEC` (docs/methods.md):
///
///     none | dyvit:RHO | evit:RHO[,nofuse] | asvit[:T1,T2,T3] | bat:RHO[,clusters=F]
///     | tome:R | tome:R0,R1,…  (one r per block)       each optionally followed by @L1,L2,…
public enum ScheduleParser {
  /// Where AS-ViT's thresholds come from when the spec gives none: called with the number of
  /// stages; nil means the official initial values (`MethodKind.asvitInitialThresholds`).
  public typealias ThresholdSource = (_ stages: Int) throws(ScheduleError) -> [Double]

  /// The schedule `spec` means for a model of `depth` blocks, fully resolved.
  /// `backbone` chooses the default locations (`MethodKind.defaultLocations(depth:backbone:)`).
  public static func parse(
    _ spec: String, depth: Int, backbone: Backbone = .deit, learnedThresholds: ThresholdSource? = nil
  ) throws(ScheduleError) -> Schedule {
    let trimmed = spec
    // Split off @locations.
    var body = Substring(trimmed)
    var locationText: Substring? = nil
    if let at = trimmed.firstIndex(of: "@") {
      body = trimmed[..<at]
      locationText = trimmed[trimmed.index(after: at)...]
    }
    let name: Substring
    var arguments: [(text: String, column: Int)] = []
    if let colon = body.firstIndex(of: ":") {
      name = body[..<colon]
      var column = trimmed.distance(from: trimmed.startIndex, to: colon) + 2
      for part in body[body.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false) {
        arguments.append((String(part), column))
        column += part.count + 1
      }
    } else {
      name = body
    }
    guard let kind = MethodKind(rawValue: String(name)) else {
      throw .unknownMethod(String(name), spec: spec, column: 1)
    }

    var locations = kind.defaultLocations(depth: depth, backbone: backbone)
    var locationsGiven = false
    if let locationText {
      var column = trimmed.distance(from: trimmed.startIndex, to: locationText.startIndex) + 1
      var parsed: [Int] = []
      for part in locationText.split(separator: ",", omittingEmptySubsequences: false) {
        guard let value = Int(part) else { throw .notANumber(String(part), what: "location", spec: spec, column: column) }
        guard value >= 0, value < depth else {
          throw .locationOutsideModel(value, depth: depth, spec: spec, column: column)
        }
        if let last = parsed.last, value <= last { throw .locationsOutOfOrder(spec: spec, column: column) }
        parsed.append(value)
        column += part.count + 1
      }
      locations = parsed
      locationsGiven = true
    }
    for location in locations where location >= depth {
      throw .locationOutsideModel(location, depth: depth, spec: spec, column: 1)
    }

    func number(_ argument: (text: String, column: Int), _ what: String) throws(ScheduleError) -> Double {
      guard let value = Double(argument.text), value.isFinite else {
        throw .notANumber(argument.text, what: what, spec: spec, column: argument.column)
      }
      return value
    }
    func ratio(_ argument: (text: String, column: Int), _ what: String) throws(ScheduleError) -> Double {
      let value = try number(argument, what)
      guard value > 0, value <= 1 else { throw .ratioOutOfRange(value, what: what, spec: spec, column: argument.column) }
      return value
    }
    /// The error for an argument this method does not take, naming the method it belongs to.
    func foreign(_ argument: (text: String, column: Int)) -> ScheduleError {
      let owner: String? =
        argument.text == "nofuse" ? "evit" : argument.text.hasPrefix("clusters=") ? "bat" : nil
      return .foreignArgument(
        argument.text, method: kind.rawValue, owner: owner == kind.rawValue ? nil : owner, spec: spec, column: argument.column)
    }

    let result: Schedule.Method
    switch kind {
    case .none:
      if let first = arguments.first { throw foreign(first) }
      if locationsGiven { throw .locationsNotTaken("'none' prunes nowhere and takes no @locations", spec: spec, column: 5) }
      result = .none
      locations = []
    case .dyvit:
      guard let first = arguments.first else { throw .missingArgument("the keep ratio (dyvit:RHO)", spec: spec) }
      if arguments.count > 1 { throw foreign(arguments[1]) }
      result = .dyvit(rho: try ratio(first, "keep ratio"))
    case .evit:
      guard let first = arguments.first else { throw .missingArgument("the keep ratio (evit:RHO)", spec: spec) }
      var fuse = true
      for extra in arguments.dropFirst() {
        guard extra.text == "nofuse" else { throw foreign(extra) }
        guard fuse else { throw .repeatedArgument(extra.text, spec: spec, column: extra.column) }
        fuse = false
      }
      result = .evit(rho: try ratio(first, "keep ratio"), fuse: fuse)
    case .asvit:
      if arguments.isEmpty {
        result = .asvit(thresholds: try learnedThresholds?(locations.count) ?? MethodKind.asvitInitialThresholds(stages: locations.count))
      } else {
        var thresholds: [Double] = []
        for argument in arguments {
          if argument.text == "nofuse" || argument.text.hasPrefix("clusters=") { throw foreign(argument) }
          thresholds.append(try number(argument, "threshold"))
        }
        guard thresholds.count == locations.count else {
          throw .thresholdCount(found: thresholds.count, locations: locations.count, spec: spec)
        }
        result = .asvit(thresholds: thresholds)
      }
    case .bat:
      guard let first = arguments.first else { throw .missingArgument("the keep ratio (bat:RHO)", spec: spec) }
      var fraction = 0.2
      var seen = false
      for extra in arguments.dropFirst() {
        guard extra.text.hasPrefix("clusters=") else { throw foreign(extra) }
        guard !seen else { throw .repeatedArgument("clusters=", spec: spec, column: extra.column) }
        seen = true
        let value = (String(extra.text.dropFirst("clusters=".count)), extra.column + "clusters=".count)
        fraction = try ratio(value, "cluster fraction")
      }
      result = .bat(rho: try ratio(first, "keep ratio"), clusterFraction: fraction)
    default:  // tome
      guard !arguments.isEmpty else { throw .missingArgument("the merges per block (tome:R)", spec: spec) }
      var values: [Int] = []
      for argument in arguments {
        if argument.text == "nofuse" || argument.text.hasPrefix("clusters=") { throw foreign(argument) }
        guard let value = Int(argument.text) else {
          throw .notANumber(argument.text, what: "merge count", spec: spec, column: argument.column)
        }
        guard value >= 0 else { throw .negativeMerges(value, spec: spec, column: argument.column) }
        values.append(value)
      }
      if values.count == 1 {
        result = .tome(r: Array(repeating: values[0], count: locations.count))
      } else {
        // A per-block list of r: block i merges r_i.
        guard !locationsGiven else {
          throw .locationsNotTaken(
            "a per-block list of r gives every block its own r; it takes no @locations", spec: spec,
            column: trimmed.distance(from: trimmed.startIndex, to: trimmed.firstIndex(of: "@")!) + 1)
        }
        guard values.count <= depth else {
          throw .tooManyMerges(found: values.count, depth: depth, spec: spec, column: arguments[depth].column)
        }
        result = .tome(r: values)
        locations = Array(0..<values.count)
      }
    }
    return Schedule(method: result, locations: locations, spec: spec)
  }
}
