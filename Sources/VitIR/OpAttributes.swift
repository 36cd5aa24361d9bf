/// The attributes of an op, typed by what its kind takes: passes, backends and the interpreter
/// read them by pattern matching (`case .attention(let heads, let scale)`), so a misspelt name
/// or a wrong type is a compile error, not a trap. Kinds that take the same attributes share a
/// case (`attention`, `cls_attention` and `asvit_scores` all take heads and scale).
///
/// The text form, `name=value` in the signature's order, is `named`; `init(kind:named:at:)`
/// reads it back. Only the printer and the front end need it.
public enum OpAttributes: Hashable, Sendable {
  /// No attributes (`add`, `linear`, `gather_tokens`, …).
  case none
  /// `patch_embed`: the patch size, kernel and stride of the convolution.
  case patchEmbed(patch: Int)
  /// `reshape`: the static target shape.
  case reshape(shape: [Int])
  /// `scale`: the constant factor.
  case scale(factor: Double)
  /// `layernorm`: the epsilon added to the variance.
  case layernorm(eps: Double)
  /// `split_heads`, `tome_metric`: the number of heads.
  case heads(Int)
  /// `attention`, `cls_attention`, `asvit_scores`: heads and the logit scale.
  case attention(heads: Int, scale: Double)
  /// `row`: which row.
  case row(index: Int)
  /// `topk_keep`: how many scores to keep.
  case topkKeep(k: Int)
  /// `threshold_keep`: the score threshold, and the pruning stage that names the run-time count.
  case thresholdKeep(threshold: Double, stage: Int)
  /// `patch_owner`: the patch count P of the owner map.
  case patchOwner(patches: Int)
  /// `bat_merge`: attentive tokens kept, clusters of the others, similar pairs merged.
  case batMerge(k: Int, clusters: Int, pairs: Int)
  /// `bipartite_merge`: how many tokens ToMe merges away.
  case bipartiteMerge(r: Int)
  /// `trace_stage`: the block after whose selection the stage is recorded.
  case traceStage(block: Int)
  /// `conv2d`: the stride and the zero padding on each side.
  case conv2d(stride: Int, pad: Int)
  /// `batchnorm`: the epsilon added to the running variance.
  case batchnorm(eps: Double)

  /// A linear-family op (`OpKind.isLinear`) whose arithmetic is not f32: written
  /// `precision=int8`. Only the Quantize pass (or a hand-written graph) sets it; f32 is `.none`.
  case precision(Precision)

  // Token layout (TokenLayout): prefix tokens other than one class token.

  /// The attributes of an op that reads rows as tokens (`OpKind.readsTokenRows`) in a sequence
  /// whose first `prefix` rows are prefix tokens, when that is not 1 (one class token, the
  /// default, is the plain attributes). Written `prefix=N` after the kind's own attributes.
  indirect case prefixed(OpAttributes, prefix: Int)

  /// The number of prefix tokens the op sees (1 unless `prefixed`).
  public var prefix: Int {
    if case .prefixed(_, let prefix) = self { return prefix }
    return 1
  }

  /// The arithmetic of a linear-family op (f32 unless `.precision`).
  public var precision: Precision {
    if case .precision(let precision) = self { return precision }
    return .f32
  }

  /// The kind's own attributes, without the prefix count.
  public var base: OpAttributes {
    if case .prefixed(let base, _) = self { return base }
    return self
  }

  /// `base` with `prefix` prefix tokens: the plain attributes for 1, `prefixed` otherwise, so
  /// that each op has one spelling.
  public func withPrefix(_ prefix: Int) -> OpAttributes {
    prefix == 1 ? base : .prefixed(base, prefix: prefix)
  }

  /// The attributes as `name=value` pairs, in the order of the kind's signature (the text form).
  public var named: [(name: String, value: Attribute)] {
    switch self {
    case .none: []
    case .patchEmbed(let patch): [("patch", .int(patch))]
    case .reshape(let shape): [("shape", .ints(shape))]
    case .scale(let factor): [("factor", .real(factor))]
    case .layernorm(let eps): [("eps", .real(eps))]
    case .heads(let heads): [("heads", .int(heads))]
    case .attention(let heads, let scale): [("heads", .int(heads)), ("scale", .real(scale))]
    case .row(let index): [("index", .int(index))]
    case .topkKeep(let k): [("k", .int(k))]
    case .thresholdKeep(let threshold, let stage): [("threshold", .real(threshold)), ("stage", .int(stage))]
    case .patchOwner(let patches): [("patches", .int(patches))]
    case .batMerge(let k, let clusters, let pairs):
      [("k", .int(k)), ("clusters", .int(clusters)), ("pairs", .int(pairs))]
    case .bipartiteMerge(let r): [("r", .int(r))]
    case .traceStage(let block): [("block", .int(block))]
    case .conv2d(let stride, let pad): [("stride", .int(stride)), ("pad", .int(pad))]
    case .batchnorm(let eps): [("eps", .real(eps))]
    case .prefixed(let base, let prefix): base.named + [("prefix", .int(prefix))]
    case .precision(let precision): [("precision", .word(precision.rawValue))]
    }
  }

  /// Whether these are attributes `kind` takes (the same names as its signature; a prefix count
  /// other than 1 on kinds that read token rows).
  public func fit(_ kind: OpKind) -> Bool {
    if case .prefixed(let base, let prefix) = self {
      if case .prefixed = base { return false }
      return kind.readsTokenRows && prefix != 1 && base.fit(kind)
    }
    if case .precision(let precision) = self { return kind.isLinear && precision != .f32 }
    return named.map(\.name) == kind.signature.attributes.map(\.name)
  }

  /// Reads the text form: checks `values` against the kind's signature (no unknown or missing
  /// name, each of the right kind) and builds the typed attributes.
  public init(
    kind: OpKind, named values: [String: Attribute], at location: SourceLocation?
  ) throws(IRError) {
    let signature = kind.signature
    var values = values
    var prefix = 1
    if kind.readsTokenRows, let written = values.removeValue(forKey: "prefix") {
      guard case .int(let count) = written else {
        throw .attributeKind(kind, "prefix", expected: "an integer", found: written, at: location)
      }
      guard count >= 0, count <= Limits.maxPrefixTokens else {
        throw .attributeValue(
          kind, "prefix", found: written, expected: "0 … \(Limits.maxPrefixTokens) prefix tokens", at: location)
      }
      prefix = count
    }
    var precision = Precision.f32
    if kind.isLinear, let written = values.removeValue(forKey: "precision") {
      guard case .word(let word) = written, let chosen = Precision(rawValue: word) else {
        throw .attributeValue(
          kind, "precision", found: written,
          expected: Precision.allCases.map(\.rawValue).joined(separator: ", "), at: location)
      }
      precision = chosen
    }
    for name in values.keys.sorted() where !signature.attributes.contains(where: { $0.name == name }) {
      throw .unknownAttribute(kind, name, at: location)
    }
    var ints: [String: Int] = [:]
    var reals: [String: Double] = [:]
    var lists: [String: [Int]] = [:]
    for (name, attributeKind) in signature.attributes {
      guard let value = values[name] else { throw .missingAttribute(kind, name, at: location) }
      switch (attributeKind, value) {
      case (.int, .int(let int)): ints[name] = int
      case (.real, .real(let real)): reals[name] = real
      case (.ints, .ints(let list)): lists[name] = list
      case (.int, _): throw .attributeKind(kind, name, expected: "an integer", found: value, at: location)
      case (.real, _): throw .attributeKind(kind, name, expected: "a number", found: value, at: location)
      case (.ints, _):
        throw .attributeKind(kind, name, expected: "a list of integers", found: value, at: location)
      }
    }
    // The signature guarantees each name below, with its kind.
    func int(_ name: String) -> Int { ints[name]! }
    func real(_ name: String) -> Double { reals[name]! }
    switch kind {
    case .patchEmbed: self = .patchEmbed(patch: int("patch"))
    case .reshape: self = .reshape(shape: lists["shape"]!)
    case .scale: self = .scale(factor: real("factor"))
    case .layernorm: self = .layernorm(eps: real("eps"))
    case .splitHeads, .tomeMetric: self = .heads(int("heads"))
    case .attention, .clsAttention, .asvitScores: self = .attention(heads: int("heads"), scale: real("scale"))
    case .row: self = .row(index: int("index"))
    case .topkKeep: self = .topkKeep(k: int("k"))
    case .thresholdKeep: self = .thresholdKeep(threshold: real("threshold"), stage: int("stage"))
    case .patchOwner: self = .patchOwner(patches: int("patches"))
    case .batMerge: self = .batMerge(k: int("k"), clusters: int("clusters"), pairs: int("pairs"))
    case .bipartiteMerge: self = .bipartiteMerge(r: int("r"))
    case .traceStage: self = .traceStage(block: int("block"))
    case .conv2d: self = .conv2d(stride: int("stride"), pad: int("pad"))
    case .batchnorm: self = .batchnorm(eps: real("eps"))
    case .relu, .auxHeadMax: self = .none
    case .concat, .add, .linear, .gelu, .softmax, .transpose, .matmul, .mergeHeads, .linearGelu, .linearAdd,
      .patchTokens, .dyvitMix, .keepScore, .unitSizes, .gatherTokens, .gatherFuseTokens, .channelScale,
      .meanTokens, .linearScaleAdd:
      self = .none
    }
    precondition(fit(kind), "OpAttributes and the signature of '\(kind.rawValue)' disagree")
    self = precision == .f32 ? withPrefix(prefix) : .precision(precision)
  }
}

extension Op {
  /// Traps: the attributes do not fit the kind, which `Graph.append` rules out.
  public func attributesMismatch() -> Never {
    preconditionFailure("'\(kind.rawValue)' with attributes \(attributes)")
  }
}
