/// Result types of each op kind from its operand types and attributes. The rules are the ones
/// documented on `OpKind`; this is the only place that knows them, so the graph builder, the
/// verifier and every pass agree.
public enum ShapeInference {
  /// Checks an op against its kind's signature and returns the types of its results.
  public static func resultTypes(
    _ kind: OpKind, operands: [TensorType], attributes: OpAttributes, resultCount: Int,
    at location: SourceLocation?
  ) throws(IRError) -> [TensorType] {
    try checkArity(kind, operandCount: operands.count, resultCount: resultCount, at: location)
    precondition(attributes.fit(kind), "'\(kind.rawValue)' given the attributes \(attributes)")
    for (name, value) in attributes.named {
      if case .real(let real) = value, !(abs(real) <= Double(Float.greatestFiniteMagnitude)) {
        throw .nonFiniteAttribute(kind, name, real, at: location)
      }
    }
    let rule = Rule(
      kind: kind, operands: operands, attributes: attributes.base, prefix: attributes.prefix, location: location)
    let results = try rule.infer(resultCount: resultCount)
    for result in results { try checkSize(result, what: "the result \(result) of '\(kind.rawValue)'", at: location) }
    return results
  }

  /// Checks the numbers of operands and results against the kind's signature (the first thing
  /// a reader of text checks, before the attributes).
  public static func checkArity(
    _ kind: OpKind, operandCount: Int, resultCount: Int, at location: SourceLocation?
  ) throws(IRError) {
    let signature = kind.signature
    guard signature.operandRange.contains(operandCount) else {
      throw .operandCount(kind, expected: signature.operandRange, found: operandCount, at: location)
    }
    if let expected = signature.results, expected != resultCount {
      throw .resultCount(
        kind, expected: expected == 1 ? "one value" : "\(expected) values", found: resultCount,
        at: location)
    }
  }

  /// The element count of `dims` (bounds for dynamic dims), or nil when it overflows `Int`.
  public static func elementCount(_ dims: [Int]) -> Int? {
    var count = 1
    for dim in dims {
      let (product, overflow) = count.multipliedReportingOverflow(by: dim)
      if overflow { return nil }
      count = product
    }
    return count
  }

  /// Throws `tensorTooLarge` when `type` at its bound holds more than `Limits.maxTensorBytes`.
  public static func checkSize(_ type: TensorType, what: String, at location: SourceLocation?) throws(IRError) {
    guard let count = elementCount(type.dims.map(\.bound)), count <= Limits.maxTensorBytes / 4 else {
      throw .tensorTooLarge(what, at: location)
    }
  }
}

/// One inference; helpers throw errors that name the operand.
private struct Rule {
  let kind: OpKind
  let operands: [TensorType]
  let attributes: OpAttributes
  /// Prefix tokens before the patch tokens, for kinds that read token rows (1 otherwise).
  let prefix: Int
  let location: SourceLocation?

  func operandName(_ index: Int) -> String { kind.signature.operands[index] }

  func mismatch(_ index: Int, _ expected: String) -> IRError {
    .operandType(kind, operand: operandName(index), found: operands[index], expected: expected, at: location)
  }

  func rank(_ index: Int, _ expected: Int) throws(IRError) -> [Dim] {
    let dims = operands[index].dims
    if dims.count != expected { throw mismatch(index, "a rank-\(expected) tensor") }
    return dims
  }

  func staticShape(_ index: Int) throws(IRError) -> [Int] {
    guard let shape = operands[index].fixedShape else {
      throw .dynamicUnsupported(kind, operand: operandName(index), found: operands[index], at: location)
    }
    return shape
  }

  /// A token sequence `f32[n, C]` with a static width.
  func tokens(_ index: Int) throws(IRError) -> [Dim] {
    let dims = operands[index].dims
    guard dims.count == 2, dims[1].fixedValue != nil, operands[index].dtype == .f32 else {
      throw mismatch(index, "a token sequence f32[n,C]")
    }
    return dims
  }

  /// A rank-1 tensor of `dtype`; returns its length.
  func vector(_ index: Int, _ dtype: DType) throws(IRError) -> Dim {
    guard operands[index].rank == 1, operands[index].dtype == dtype else {
      throw mismatch(index, "a vector \(dtype.rawValue)[m]")
    }
    return operands[index].dims[0]
  }

  /// A patch-owner map `i32[P]`.
  func ownerMap(_ index: Int) throws(IRError) -> TensorType {
    guard operands[index].rank == 1, operands[index].dtype == .i32, let _ = operands[index].dims[0].fixedValue else {
      throw mismatch(index, "a patch-owner map i32[P]")
    }
    return operands[index]
  }

  /// `dim − by`. Run-time token counts come in pairs (`TokenCount`): `tokens(s)` rows of a
  /// sequence and `kept(s)` = tokens(s) − 1 of its patch tokens (what `threshold_keep` of stage s selects).
  func fewer(_ dim: Dim, by amount: Int, operand: Int) throws(IRError) -> Dim {
    if amount == 0 { return dim }
    switch dim {
    case .fixed(let value):
      guard value > amount else { throw mismatch(operand, "more than \(amount) row\(amount == 1 ? "" : "s")") }
      return .fixed(value - amount)
    case .dynamic(let symbol, let bound) where amount == 1 && symbol.withoutClassToken != nil:
      return .dynamic(symbol: symbol.withoutClassToken!, bound: bound - 1)
    case .dynamic:
      throw .dynamicUnsupported(kind, operand: operandName(operand), found: operands[operand], at: location)
    }
  }

  /// `dim + by`, the inverse of `fewer` for run-time counts (kept(s) + 1 = tokens(s)).
  func more(_ dim: Dim, by amount: Int, operand: Int) throws(IRError) -> Dim {
    if amount == 0 { return dim }
    switch dim {
    case .fixed(let value):
      return .fixed(value + amount)
    case .dynamic(let symbol, let bound) where amount == 1 && symbol.withClassToken != nil:
      return .dynamic(symbol: symbol.withClassToken!, bound: bound + 1)
    case .dynamic:
      throw .dynamicUnsupported(kind, operand: operandName(operand), found: operands[operand], at: location)
    }
  }

  func mismatchedAttributes() -> Never {
    preconditionFailure("'\(kind.rawValue)' given the attributes \(attributes)")
  }

  /// `value`, the attribute `name`, when it is a positive integer no larger than any tensor.
  func positive(_ name: String, _ value: Int) throws(IRError) -> Int {
    if value <= 0 || value > Limits.maxTensorBytes {
      throw .attributeValue(
        kind, name, found: .int(value), expected: "a positive integer up to \(Limits.maxTensorBytes)", at: location)
    }
    return value
  }

  func infer(resultCount: Int) throws(IRError) -> [TensorType] {
    switch kind {
    case .patchEmbed:
      let image = try staticShape(0)
      let weight = try staticShape(1)
      guard case .patchEmbed(let patchAttribute) = attributes else { mismatchedAttributes() }
      let patch = try positive("patch", patchAttribute)
      guard image.count == 3 else { throw mismatch(0, "an image f32[channels,height,width]") }
      guard image[1] % patch == 0, image[2] % patch == 0 else {
        throw mismatch(0, "height and width divisible by the patch size \(patch)")
      }
      let expectedWeight = "f32[C,\(image[0]),\(patch),\(patch)]"
      guard weight.count == 4, weight[1] == image[0], weight[2] == patch, weight[3] == patch else {
        throw mismatch(1, expectedWeight)
      }
      let width = weight[0]
      guard operands[2].dims == [.fixed(width)] else { throw mismatch(2, "f32[\(width)]") }
      return [TensorType(fixed: [(image[1] / patch) * (image[2] / patch), width])]

    case .reshape:
      let shape = try staticShape(0)
      guard case .reshape(let target) = attributes else { mismatchedAttributes() }
      if target.contains(where: { $0 <= 0 }) || ShapeInference.elementCount(target) != shape.reduce(1, *) {
        throw .attributeValue(
          kind, "shape", found: .ints(target),
          expected: "positive dims with \(shape.reduce(1, *)) elements, like \(operands[0])",
          at: location)
      }
      return [TensorType(fixed: target)]

    case .concat:
      let a = try rank(0, 2)
      let b = try rank(1, 2)
      let rowsA = try staticShape(0)[0]
      let rowsB = try staticShape(1)[0]
      guard a[1] == b[1] else { throw mismatch(1, "rows of width \(a[1]) like '\(operandName(0))'") }
      return [TensorType([.fixed(rowsA + rowsB), a[1]])]

    case .add:
      guard operands[0] == operands[1] else { throw mismatch(1, "\(operands[0]) like 'a'") }
      return [operands[0]]

    case .scale, .gelu:
      return [operands[0]]

    case .softmax:
      guard operands[0].rank >= 1 else { throw mismatch(0, "a tensor of rank 1 or more") }
      return [operands[0]]

    case .layernorm:
      guard let width = operands[0].dims.last else { throw mismatch(0, "a tensor of rank 1 or more") }
      guard !width.isDynamic else {
        throw .dynamicUnsupported(kind, operand: "x", found: operands[0], at: location)
      }
      let parameter = TensorType([width])
      if operands[1] != parameter { throw mismatch(1, "\(parameter), the width of 'x'") }
      if operands[2] != parameter { throw mismatch(2, "\(parameter), the width of 'x'") }
      if case .layernorm(let eps) = attributes, !(Float(eps) > 0) {
        throw .attributeValue(kind, "eps", found: .real(eps), expected: "a positive number (as float32)", at: location)
      }
      return [operands[0]]

    case .linear, .linearGelu, .linearAdd, .linearScaleAdd:
      guard let inWidth = operands[0].dims.last, !inWidth.isDynamic else {
        throw mismatch(0, "a tensor whose last dimension is static")
      }
      let weight = try rank(1, 2)
      guard let outWidth = weight[0].fixedValue, weight[1] == inWidth else {
        throw mismatch(1, "f32[out,\(inWidth)], as 'x' has width \(inWidth)")
      }
      if operands.count >= 3, operands[2].dims != [.fixed(outWidth)] {
        throw mismatch(2, "f32[\(outWidth)], the output width of 'weight'")
      }
      let result = TensorType(operands[0].dims.dropLast() + [.fixed(outWidth)])
      if kind == .linearAdd, operands[3] != result { throw mismatch(3, "\(result), the linear's result") }
      if kind == .linearScaleAdd {
        if operands[3].dims != [.fixed(outWidth)] { throw mismatch(3, "f32[\(outWidth)], a scale per output channel") }
        if operands[4] != result { throw mismatch(4, "\(result), the linear's result") }
      }
      return [result]

    case .splitHeads:
      let x = try rank(0, 2)
      guard case .heads(let headsAttribute) = attributes else { mismatchedAttributes() }
      let heads = try positive("heads", headsAttribute)
      guard resultCount >= 1 else {
        throw .resultCount(kind, expected: "one value or more", found: resultCount, at: location)
      }
      guard let width = x[1].fixedValue, width % (resultCount * heads) == 0 else {
        throw mismatch(0, "a static width divisible by \(resultCount) parts × \(heads) heads")
      }
      let headWidth = width / (resultCount * heads)
      return Array(repeating: TensorType([.fixed(heads), x[0], .fixed(headWidth)]), count: resultCount)

    case .transpose:
      guard operands[0].rank >= 2 else { throw mismatch(0, "a tensor of rank 2 or more") }
      var dims = operands[0].dims
      dims.swapAt(dims.count - 1, dims.count - 2)
      return [TensorType(dims)]

    case .matmul:
      let a = operands[0].dims
      let b = operands[1].dims
      guard a.count >= 2 else { throw mismatch(0, "a tensor of rank 2 or more") }
      guard b.count == a.count, b.dropLast(2) == a.dropLast(2), b[b.count - 2] == a[a.count - 1]
      else {
        let batch = a.dropLast(2).map { "\($0)," }.joined()
        throw mismatch(1, "f32[\(batch)\(a[a.count - 1]),m] to multiply \(operands[0])")
      }
      return [TensorType(a.dropLast() + [b[b.count - 1]])]

    case .mergeHeads:
      let x = try rank(0, 3)
      guard let heads = x[0].fixedValue, let headWidth = x[2].fixedValue else {
        throw mismatch(0, "f32[heads,n,d] with static heads and d")
      }
      return [TensorType([x[1], .fixed(heads * headWidth)])]

    case .attention:
      let x = try rank(0, 2)
      guard case .attention(let headsAttribute, _) = attributes else { mismatchedAttributes() }
      let heads = try positive("heads", headsAttribute)
      guard let width = x[1].fixedValue, width % (3 * heads) == 0 else {
        throw mismatch(0, "f32[n,3·C] with C divisible by \(heads) heads")
      }
      if operands.count > 1, operands[1] != TensorType([x[0]]) {
        throw mismatch(1, "f32[\(x[0])], a size per token")
      }
      return [TensorType([x[0], .fixed(width / 3)])]

    case .patchTokens:
      let x = try tokens(0)
      return [TensorType([try fewer(x[0], by: prefix, operand: 0), x[1]])]

    case .dyvitMix:
      let x = try tokens(0)
      guard let width = x[1].fixedValue, width % 2 == 0 else { throw mismatch(0, "f32[m,C] with an even C") }
      return [operands[0]]

    case .keepScore:
      let x = try tokens(0)
      guard x[1] == .fixed(2) else { throw mismatch(0, "f32[m,2], keep and drop logits") }
      return [TensorType([x[0]])]

    case .clsAttention, .asvitScores, .tomeMetric:
      let x = try tokens(0)
      let headsAttribute: Int
      switch attributes {
      case .attention(let heads, _), .heads(let heads): headsAttribute = heads
      default: mismatchedAttributes()
      }
      let heads = try positive("heads", headsAttribute)
      guard let width = x[1].fixedValue, width % (3 * heads) == 0 else {
        throw mismatch(0, "f32[n,3·C] with C divisible by \(heads) heads")
      }
      if kind == .asvitScores, operands[1] != TensorType([x[0], .fixed(width / 3)]) {
        throw mismatch(1, "f32[\(x[0]),\(width / 3)], the attention's context")
      }
      if kind == .tomeMetric { return [TensorType([x[0], .fixed(width / 3 / heads)])] }
      guard prefix >= 1 else {
        throw .attributeValue(kind, "prefix", found: .int(prefix), expected: "at least 1: row 0 is the class token whose attention it reads", at: location)
      }
      return [TensorType([try fewer(x[0], by: prefix, operand: 0)])]

    case .topkKeep:
      let scores = try vector(0, .f32)
      guard case .topkKeep(let kAttribute) = attributes else { mismatchedAttributes() }
      let k = try positive("k", kAttribute)
      guard let m = scores.fixedValue, k <= m else {
        throw .attributeValue(kind, "k", found: .int(k), expected: "at most the \(scores) scores", at: location)
      }
      return [TensorType([.fixed(k)], dtype: .i32)]

    case .thresholdKeep:
      let scores = try vector(0, .f32)
      guard case .thresholdKeep(_, let stage) = attributes else { mismatchedAttributes() }
      return [TensorType([.dynamic(symbol: .kept(stage: stage), bound: scores.bound)], dtype: .i32)]

    case .patchOwner:
      guard case .patchOwner(let patches) = attributes else { mismatchedAttributes() }
      return [TensorType([.fixed(try positive("patches", patches))], dtype: .i32)]

    case .unitSizes:
      let x = try tokens(0)
      return [TensorType([x[0]])]

    case .gatherTokens, .gatherFuseTokens:
      let x = try tokens(0)
      let keep = try vector(1, .i32)
      let owner = try ownerMap(kind == .gatherTokens ? 2 : 3)
      if kind == .gatherFuseTokens {
        let scores = TensorType([try fewer(x[0], by: prefix, operand: 0)])
        if operands[2] != scores { throw mismatch(2, "\(scores), a score per patch token of 'x'") }
      }
      guard keep.bound <= x[0].bound - prefix else { throw mismatch(1, "at most \(x[0].bound - prefix) indices") }
      let rows = try more(keep, by: kind == .gatherTokens ? prefix : prefix + 1, operand: 1)
      return [TensorType([rows, x[1]]), owner]

    case .batMerge:
      let x = try tokens(0)
      guard let n = x[0].fixedValue else {
        throw .dynamicUnsupported(kind, operand: "x", found: operands[0], at: location)
      }
      let scores = TensorType([.fixed(n - prefix)])
      if operands[1] != scores { throw mismatch(1, "\(scores), a score per patch token of 'x'") }
      let owner = try ownerMap(2)
      guard case .batMerge(let k, let clusters, let pairs) = attributes else { mismatchedAttributes() }
      guard k >= 1, k <= n - prefix else {
        throw .attributeValue(kind, "k", found: .int(k), expected: "1 … \(n - prefix) attentive tokens", at: location)
      }
      let inattentive = n - prefix - k
      guard clusters >= (inattentive > 0 ? 1 : 0), clusters <= inattentive else {
        throw .attributeValue(
          kind, "clusters", found: .int(clusters), expected: "1 … \(inattentive) clusters of the inattentive tokens",
          at: location)
      }
      guard pairs >= 0, pairs <= k / 2 else {
        throw .attributeValue(kind, "pairs", found: .int(pairs), expected: "0 … \(k / 2) disjoint pairs", at: location)
      }
      return [TensorType([.fixed(prefix + k - pairs + clusters), x[1]]), owner]

    case .bipartiteMerge:
      let x = try tokens(0)
      guard let n = x[0].fixedValue else {
        throw .dynamicUnsupported(kind, operand: "x", found: operands[0], at: location)
      }
      guard operands[1].rank == 2, operands[1].dims[0] == x[0] else { throw mismatch(1, "f32[\(n),d], a row per token") }
      if operands[2] != TensorType([x[0]]) { throw mismatch(2, "f32[\(n)], a size per token") }
      let owner = try ownerMap(3)
      guard case .bipartiteMerge(let r) = attributes else { mismatchedAttributes() }
      guard r >= 1, r <= (n - prefix) / 2 else {
        throw .attributeValue(kind, "r", found: .int(r), expected: "1 … \((n - prefix) / 2) merges", at: location)
      }
      return [TensorType([.fixed(n - r), x[1]]), TensorType([.fixed(n - r)]), owner]

    case .traceStage:
      _ = try tokens(0)
      return [try ownerMap(1)]

    case .conv2d:
      let x = try staticShape(0)
      let weight = try staticShape(1)
      guard case .conv2d(let strideAttribute, let pad) = attributes else { mismatchedAttributes() }
      let stride = try positive("stride", strideAttribute)
      guard x.count == 3 else { throw mismatch(0, "a feature map f32[channels,height,width]") }
      guard weight.count == 4, weight[1] == x[0], weight[2] == weight[3] else {
        throw mismatch(1, "f32[Co,\(x[0]),k,k], as 'x' has \(x[0]) channels")
      }
      let kernel = weight[2]
      guard pad >= 0, pad < kernel else {
        throw .attributeValue(kind, "pad", found: .int(pad), expected: "0 … \(kernel - 1) for a \(kernel)x\(kernel) kernel", at: location)
      }
      guard x[1] + 2 * pad >= kernel, x[2] + 2 * pad >= kernel else {
        throw mismatch(0, "a map of at least \(kernel - 2 * pad)x\(kernel - 2 * pad) for a \(kernel)x\(kernel) kernel with pad \(pad)")
      }
      if operands.count > 2, operands[2].dims != [.fixed(weight[0])] { throw mismatch(2, "f32[\(weight[0])]") }
      let outH = (x[1] + 2 * pad - kernel) / stride + 1
      let outW = (x[2] + 2 * pad - kernel) / stride + 1
      return [TensorType(fixed: [weight[0], outH, outW])]

    case .batchnorm:
      let x = try staticShape(0)
      guard x.count == 3 else { throw mismatch(0, "a feature map f32[channels,height,width]") }
      let parameter = TensorType(fixed: [x[0]])
      for index in 1...4 where operands[index] != parameter {
        throw mismatch(index, "\(parameter), one per channel of 'x'")
      }
      if case .batchnorm(let eps) = attributes, !(Float(eps) > 0) {
        throw .attributeValue(kind, "eps", found: .real(eps), expected: "a positive number (as float32)", at: location)
      }
      return [operands[0]]

    case .relu:
      return [operands[0]]

    case .auxHeadMax:
      let x = try tokens(0)
      let weight = try rank(1, 2)
      guard let classes = weight[0].fixedValue, weight[1] == x[1] else {
        throw mismatch(1, "f32[K,\(x[1])], as 'x' has width \(x[1])")
      }
      if operands[2].dims != [.fixed(classes)] { throw mismatch(2, "f32[\(classes)], the output width of 'weight'") }
      _ = try fewer(x[0], by: 1, operand: 0)  // at least one patch token
      return [TensorType(fixed: [classes])]

    case .channelScale:
      guard let width = operands[0].dims.last?.fixedValue, operands[0].dtype == .f32 else {
        throw mismatch(0, "f32[...,C] with a static C")
      }
      if operands[1] != TensorType([.fixed(width)]) { throw mismatch(1, "f32[\(width)], a scale per channel") }
      return [operands[0]]

    case .meanTokens:
      let x = try tokens(0)
      guard x[0].bound > prefix else { throw mismatch(0, "more than \(prefix) row\(prefix == 1 ? "" : "s"), the prefix tokens") }
      return [TensorType([x[1]])]

    case .row:
      let x = try rank(0, 2)
      guard case .row(let index) = attributes else { mismatchedAttributes() }
      guard index >= 0, index < x[0].bound, x[0].isDynamic == false || index == 0 else {
        throw .attributeValue(
          kind, "index", found: .int(index), expected: "a row of \(operands[0])", at: location)
      }
      return [TensorType([x[1]])]
    }
  }
}
