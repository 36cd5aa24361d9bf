import Testing

@testable import VitIR

@Suite struct ShapeInferenceTests {
  func infer(_ kind: OpKind, _ operands: [TensorType], _ attributes: OpAttributes = .none, results: Int = 1) throws -> [TensorType] {
    try ShapeInference.resultTypes(kind, operands: operands, attributes: attributes, resultCount: results, at: nil)
  }

  let n = Dim.dynamic(symbol: .named("n"), bound: 197)

  @Test func attentionShapesFollowTheTokenDim() throws {
    let qkv = TensorType([n, .fixed(1152)])
    let parts = try infer(.splitHeads, [qkv], .heads(6), results: 3)
    #expect(parts == Array(repeating: TensorType([.fixed(6), n, .fixed(64)]), count: 3))
    let kT = try infer(.transpose, [parts[1]])[0]
    #expect(kT == TensorType([.fixed(6), .fixed(64), n]))
    let scores = try infer(.matmul, [parts[0], kT])[0]
    #expect(scores == TensorType([.fixed(6), n, n]))
    let context = try infer(.matmul, [scores, parts[2]])[0]
    #expect(try infer(.mergeHeads, [context])[0] == TensorType([n, .fixed(384)]))
    #expect(try infer(.row, [TensorType([n, .fixed(384)])], .row(index: 0))[0] == TensorType(fixed: [384]))
  }

  @Test func patchEmbedCountsPatchesRowMajor() throws {
    let out = try infer(
      .patchEmbed, [TensorType(fixed: [3, 64, 48]), TensorType(fixed: [96, 3, 8, 8]), TensorType(fixed: [96])],
      .patchEmbed(patch: 8))
    #expect(out == [TensorType(fixed: [48, 96])])
  }

  @Test func mismatchesAreErrors() {
    #expect(throws: IRError.self) {
      try infer(.add, [TensorType(fixed: [2, 3]), TensorType(fixed: [3, 2])])
    }
    #expect(throws: IRError.self) {
      try infer(.reshape, [TensorType(fixed: [1, 1, 384])], .reshape(shape: [1, 385]))
    }
    #expect(throws: IRError.self) {
      try infer(.splitHeads, [TensorType(fixed: [197, 100])], .heads(6), results: 3)
    }
    #expect(throws: IRError.self) {
      try infer(.matmul, [TensorType(fixed: [2, 4, 5]), TensorType(fixed: [2, 4, 5])])
    }
    #expect(throws: IRError.self) {
      try infer(.concat, [TensorType([n, .fixed(4)]), TensorType(fixed: [1, 4])])
    }
    #expect(throws: IRError.self) {
      try infer(.layernorm, [TensorType(fixed: [4, 8]), TensorType(fixed: [8]), TensorType(fixed: [8])], .layernorm(eps: -1))
    }
  }

  @Test func dynamicTypesBindConcreteShapes() {
    let type = TensorType([.fixed(6), n, n])
    var symbols: [TokenCount: Int] = [:]
    #expect(type.bind([6, 50, 50], into: &symbols))
    #expect(symbols == [.named("n"): 50])
    var again: [TokenCount: Int] = [:]
    #expect(!type.bind([6, 50, 51], into: &again))
    var tooMany: [TokenCount: Int] = [:]
    #expect(!type.bind([6, 198, 198], into: &tooMany))
    #expect(type.boundCount == 6 * 197 * 197)
    #expect(type.description == "f32[6,n<=197,n<=197]")
  }
}

@Suite struct GraphTests {
  @Test func builderNamesValuesUniquelyAndVerifies() throws {
    var graph = Graph(name: "g", outputType: TensorType(fixed: [4]))
    let x = graph.addInput(name: "x", type: TensorType(fixed: [4]))
    let a = try graph.append(.gelu, [x], resultNames: ["x"], block: 0)[0]
    let b = try graph.append(.scale, [a], attributes: .scale(factor: 2), resultNames: ["x"], block: 1)[0]
    graph.output = b
    #expect(graph[a].name == "x.1")
    #expect(graph[b].name == "x.2")
    try Verifier.check(graph)
    #expect(
      Printer.print(graph) == """
        graph g(x: f32[4]) -> f32[4] {
          block 0 {
            x.1: f32[4] = gelu(x)
          }
          block 1 {
            x.2: f32[4] = scale(x.1, factor=2.0)
          }
          return x.2
        }

        """)
  }

  @Test func verifierRejectsBlocksOutOfOrderAndMissingOutput() throws {
    var graph = Graph(name: "g", outputType: TensorType(fixed: [4]))
    let x = graph.addInput(name: "x", type: TensorType(fixed: [4]))
    let a = try graph.append(.gelu, [x], block: 3)[0]
    #expect(throws: IRError.invalidGraph("the graph has no defined output")) { try Verifier.check(graph) }
    let b = try graph.append(.gelu, [a], block: 2)[0]
    graph.output = b
    #expect(throws: IRError.self) { try Verifier.check(graph) }
  }

  @Test func parametersAreStaticAndUnique() throws {
    var graph = Graph(name: "g", outputType: TensorType(fixed: [4]))
    try graph.addParameter(name: "w", type: TensorType(fixed: [4]))
    #expect(throws: IRError.self) { try graph.addParameter(name: "w", type: TensorType(fixed: [4])) }
    #expect(throws: IRError.self) {
      try graph.addParameter(name: "d", type: TensorType([.dynamic(symbol: .named("n"), bound: 3)]))
    }
    #expect(graph.parameterCount == 4)
  }
}

@Suite struct TraceTests {
  @Test func jsonHasTheDocumentedShape() {
    let trace = Trace(
      method: "dyvit:0.7", stages: [.init(block: 3, tokens: 3, patches: [[5], [0, 7]])],
      logits: [1.5, -0.1, 3.14159274, .infinity])
    #expect(
      trace.json() == """
        {"method": "dyvit:0.7", "stages": [
          {"block": 3, "tokens": 3, "patches": [[5],[0,7]]}
        ],
         "logits": [1.5, -0.100000001, 3.14159274, "inf"]}

        """)
    #expect(Trace(method: "none", stages: [], logits: [2]).json() == "{\"method\": \"none\", \"stages\": [],\n \"logits\": [2]}\n")
  }
}

@Suite struct LimitTests {
  @Test func messageTextIsBoundedAndPrintable() {
    #expect(MessageText.clean("plain name.1") == "plain name.1")
    #expect(MessageText.clean("a\nb\tc\r\u{1B}[0m\u{85}\u{2028}") == "a\\nb\\tc\\r\\u{1B}[0m\\u{85}\\u{2028}")
    let long = String(repeating: "é", count: 1000)
    #expect(MessageText.clean(long) == String(repeating: "é", count: 200) + "…(1000 characters)")
    #expect(MessageText.clean(String(repeating: "x", count: 200)) == String(repeating: "x", count: 200))
  }

  @Test func sizesAreCheckedWithoutOverflow() throws {
    #expect(ShapeInference.elementCount([1 << 40, 1 << 40]) == nil)
    #expect(ShapeInference.elementCount([3, 4]) == 12)
    try ShapeInference.checkSize(TensorType(fixed: [1 << 28]), what: "t", at: nil)
    #expect(throws: IRError.tensorTooLarge("t", at: nil)) {
      try ShapeInference.checkSize(TensorType(fixed: [(1 << 28) + 1]), what: "t", at: nil)
    }
    #expect(throws: IRError.tensorTooLarge("t", at: nil)) {
      try ShapeInference.checkSize(TensorType([.dynamic(symbol: .named("n"), bound: 1 << 40), .fixed(1 << 40)]), what: "t", at: nil)
    }
    // A concat whose rows sum past the bound is refused as a result.
    let half = TensorType(fixed: [1 << 26, 4])
    #expect(throws: IRError.self) {
      try ShapeInference.resultTypes(.concat, operands: [half, half], attributes: .none, resultCount: 1, at: nil)
    }
  }

  @Test func realAttributesMustBeFiniteFloat32() {
    for value in [Double.nan, .infinity, -1e39] {
      let error = #expect(throws: IRError.self) {
        try ShapeInference.resultTypes(
          .scale, operands: [TensorType(fixed: [4])], attributes: .scale(factor: value), resultCount: 1, at: nil)
      }
      #expect(error?.description == "error: attribute 'factor' of 'scale' is \(value), which is not a finite float32 number")
    }
    #expect(throws: Never.self) {
      try ShapeInference.resultTypes(
        .scale, operands: [TensorType(fixed: [4])], attributes: .scale(factor: 3e38), resultCount: 1, at: nil)
    }
  }

  @Test func uniqueNamesStayTheSameAndLinear() throws {
    var graph = Graph(name: "g", outputType: TensorType(fixed: [4]))
    let x = graph.addInput(name: "x", type: TensorType(fixed: [4]))
    var names: [String] = []
    var value = x
    for _ in 0..<3 {
      value = try graph.append(.gelu, [value], resultNames: ["x"])[0]
      names.append(graph[value].name)
    }
    // A user's own 'x.5' is skipped when the suffixes reach it.
    value = try graph.append(.gelu, [value], resultNames: ["x.5"])[0]
    names.append(graph[value].name)
    for _ in 0..<3 {
      value = try graph.append(.gelu, [value], resultNames: ["x"])[0]
      names.append(graph[value].name)
    }
    #expect(names == ["x.1", "x.2", "x.3", "x.5", "x.4", "x.6", "x.7"])
  }
}

@Suite struct OpAttributesTests {
  /// One example of the attributes each kind takes.
  static func example(_ kind: OpKind) -> OpAttributes {
    switch kind {
    case .patchEmbed: .patchEmbed(patch: 16)
    case .reshape: .reshape(shape: [1, 384])
    case .scale: .scale(factor: 0.125)
    case .layernorm: .layernorm(eps: 1e-6)
    case .splitHeads, .tomeMetric: .heads(6)
    case .attention, .clsAttention, .asvitScores: .attention(heads: 6, scale: 0.125)
    case .row: .row(index: 0)
    case .topkKeep: .topkKeep(k: 137)
    case .thresholdKeep: .thresholdKeep(threshold: 0.25, stage: 2)
    case .patchOwner: .patchOwner(patches: 196)
    case .batMerge: .batMerge(k: 138, clusters: 12, pairs: 11)
    case .bipartiteMerge: .bipartiteMerge(r: 8)
    case .traceStage: .traceStage(block: 3)
    case .conv2d: .conv2d(stride: 2, pad: 3)
    case .batchnorm: .batchnorm(eps: 1e-5)
    default: .none
    }
  }

  @Test(arguments: OpKind.allCases) func textFormReadsBackAsTheSameAttributes(kind: OpKind) throws {
    let attributes = Self.example(kind)
    #expect(attributes.fit(kind))
    #expect(attributes.named.map(\.name) == kind.signature.attributes.map(\.name))
    let text = Dictionary(uniqueKeysWithValues: attributes.named.map { ($0.name, $0.value) })
    #expect(try OpAttributes(kind: kind, named: text, at: nil) == attributes)
  }

  @Test func attributesOfAnotherKindDoNotFit() {
    #expect(!OpAttributes.heads(6).fit(.attention))
    #expect(!OpAttributes.none.fit(.layernorm))
    #expect(OpAttributes.attention(heads: 6, scale: 0.125).fit(.clsAttention))
  }

  @Test func textFormIsCheckedAgainstTheSignature() {
    #expect(throws: IRError.unknownAttribute(.layernorm, "epsilon", at: nil)) {
      try OpAttributes(kind: .layernorm, named: ["eps": .real(1e-6), "epsilon": .real(1)], at: nil)
    }
    #expect(throws: IRError.missingAttribute(.attention, "scale", at: nil)) {
      try OpAttributes(kind: .attention, named: ["heads": .int(6)], at: nil)
    }
    #expect(throws: IRError.attributeKind(.topkKeep, "k", expected: "an integer", found: .real(1.5), at: nil)) {
      try OpAttributes(kind: .topkKeep, named: ["k": .real(1.5)], at: nil)
    }
  }
}

@Suite struct TokenCountTests {
  @Test(arguments: ["n0", "k0", "n11", "k3", "n", "k", "n01", "k-1", "m2", "tokens"])
  func spellingReadsBackAsItself(spelling: String) {
    #expect(TokenCount(spelling: spelling).spelling == spelling)
  }

  @Test func stagesPairTokensAndKept() {
    #expect(TokenCount(spelling: "n3") == .tokens(stage: 3))
    #expect(TokenCount(spelling: "k3") == .kept(stage: 3))
    #expect(TokenCount(spelling: "n01") == .named("n01"))
    #expect(TokenCount(spelling: "n") == .named("n"))
    #expect(TokenCount.tokens(stage: 3).withoutClassToken == .kept(stage: 3))
    #expect(TokenCount.kept(stage: 3).withClassToken == .tokens(stage: 3))
    #expect(TokenCount.named("n").withoutClassToken == nil)
    #expect(TokenCount.tokens(stage: 3).withClassToken == nil)
  }

  @Test func patchTokensOfAStageCountAreItsKeptCount() throws {
    let rows = Dim.dynamic(symbol: .tokens(stage: 1), bound: 197)
    let patches = try ShapeInference.resultTypes(
      .patchTokens, operands: [TensorType([rows, .fixed(8)])], attributes: .none, resultCount: 1, at: nil)
    #expect(patches == [TensorType([.dynamic(symbol: .kept(stage: 1), bound: 196), .fixed(8)])])
    #expect(patches[0].description == "f32[k1<=196,8]")
  }
}

/// The prefix tokens a graph's stem puts before its patches (TokenLayout), and how pruning ops
/// state them (`prefix=N`).
@Suite struct TokenLayoutTests {
  /// A stem of 16 patches of width 8, then `build` puts tokens around them; one block reads x.
  static func stem(_ build: (inout Graph, ValueID) throws -> ValueID) throws -> Graph {
    var graph = Graph(name: "t", outputType: TensorType(fixed: [8]))
    let image = graph.addInput(name: "image", type: TensorType(fixed: [3, 32, 32]))
    let weight = try graph.addParameter(name: "w", type: TensorType(fixed: [8, 3, 8, 8]))
    let bias = try graph.addParameter(name: "b", type: TensorType(fixed: [8]))
    let patches = try graph.append(.patchEmbed, [image, weight, bias], attributes: .patchEmbed(patch: 8))[0]
    let x = try build(&graph, patches)
    let y = try graph.append(.gelu, [x], block: 0)[0]
    graph.output = try graph.append(.row, [y], attributes: .row(index: 0))[0]
    return graph
  }

  static func token(_ graph: inout Graph, _ name: String, rows: Int = 1) throws -> ValueID {
    try graph.addParameter(name: name, type: TensorType(fixed: [rows, 8]))
  }

  @Test func prefixIsReadOffTheStem() throws {
    let none = try Self.stem { g, p in try g.append(.add, [p, try Self.token(&g, "pos", rows: 16)])[0] }
    #expect(TokenLayout(of: none) == TokenLayout(prefix: 0, patches: 16))
    let cls = try Self.stem { g, p in
      let x = try g.append(.concat, [try Self.token(&g, "cls"), p])[0]
      return try g.append(.add, [x, try Self.token(&g, "pos", rows: 17)])[0]
    }
    #expect(TokenLayout(of: cls) == TokenLayout(prefix: 1, patches: 16))
    // DeiT-III: the position embedding before the class token.
    let deit3 = try Self.stem { g, p in
      let x = try g.append(.add, [p, try Self.token(&g, "pos", rows: 16)])[0]
      return try g.append(.concat, [try Self.token(&g, "cls"), x])[0]
    }
    #expect(TokenLayout(of: deit3)?.prefix == 1)
    let distilled = try Self.stem { g, p in
      let prefix = try g.append(.concat, [try Self.token(&g, "cls"), try Self.token(&g, "dist")])[0]
      return try g.append(.concat, [prefix, p])[0]
    }
    #expect(TokenLayout(of: distilled) == TokenLayout(prefix: 2, patches: 16))
    let nested = try Self.stem { g, p in
      try g.append(.concat, [try Self.token(&g, "cls"), try g.append(.concat, [try Self.token(&g, "dist"), p])[0]])[0]
    }
    #expect(TokenLayout(of: nested)?.prefix == 2)
    // Rows after the patches are no layout vitc prunes.
    let after = try Self.stem { g, p in try g.append(.concat, [p, try Self.token(&g, "extra")])[0] }
    #expect(TokenLayout(of: after) == nil)
  }

  @Test func prefixAttributeReadsBackAndDefaultsToOne() throws {
    #expect(try OpAttributes(kind: .gatherTokens, named: ["prefix": .int(2)], at: nil) == .prefixed(.none, prefix: 2))
    #expect(try OpAttributes(kind: .gatherTokens, named: ["prefix": .int(1)], at: nil) == OpAttributes.none)
    #expect(try OpAttributes(kind: .bipartiteMerge, named: ["r": .int(3), "prefix": .int(0)], at: nil) == .prefixed(.bipartiteMerge(r: 3), prefix: 0))
    #expect(OpAttributes.prefixed(.bipartiteMerge(r: 3), prefix: 0).named.map(\.name) == ["r", "prefix"])
    #expect(OpAttributes.bipartiteMerge(r: 3).withPrefix(0).prefix == 0)
    // One spelling for each op: prefix 1 is the plain attributes; kinds that do not read token
    // rows take no prefix.
    #expect(!OpAttributes.prefixed(.none, prefix: 1).fit(.gatherTokens))
    #expect(!OpAttributes.prefixed(.heads(2), prefix: 2).fit(.tomeMetric))
    #expect(throws: IRError.unknownAttribute(.tomeMetric, "prefix", at: nil)) {
      try OpAttributes(kind: .tomeMetric, named: ["heads": .int(2), "prefix": .int(2)], at: nil)
    }
    #expect(throws: IRError.attributeValue(.gatherTokens, "prefix", found: .int(-1), expected: "0 … 64 prefix tokens", at: nil)) {
      try OpAttributes(kind: .gatherTokens, named: ["prefix": .int(-1)], at: nil)
    }
  }

  func infer(_ kind: OpKind, _ operands: [TensorType], _ attributes: OpAttributes, results: Int = 1) throws -> [TensorType] {
    try ShapeInference.resultTypes(kind, operands: operands, attributes: attributes, resultCount: results, at: nil)
  }

  @Test func countsAreOverThePatchTokens() throws {
    let x = TensorType(fixed: [18, 8])
    let owner = TensorType([.fixed(16)], dtype: .i32)
    #expect(try infer(.patchTokens, [x], .prefixed(.none, prefix: 2)) == [TensorType(fixed: [16, 8])])
    #expect(try infer(.patchTokens, [TensorType(fixed: [16, 8])], .prefixed(.none, prefix: 0)) == [TensorType(fixed: [16, 8])])
    #expect(
      try infer(.gatherTokens, [x, TensorType([.fixed(5)], dtype: .i32), owner], .prefixed(.none, prefix: 2), results: 2)
        == [TensorType(fixed: [7, 8]), owner])
    #expect(try infer(.clsAttention, [TensorType(fixed: [18, 24])], .prefixed(.attention(heads: 2, scale: 0.5), prefix: 2)) == [TensorType(fixed: [16])])
    // Class attention needs a class token.
    #expect(throws: IRError.self) {
      try infer(.clsAttention, [TensorType(fixed: [16, 24])], .prefixed(.attention(heads: 2, scale: 0.5), prefix: 0))
    }
    // ToMe merges at most half the patch tokens.
    let size = TensorType(fixed: [18])
    #expect(
      try infer(.bipartiteMerge, [x, TensorType(fixed: [18, 4]), size, owner], .prefixed(.bipartiteMerge(r: 8), prefix: 2), results: 3)[0]
        == TensorType(fixed: [10, 8]))
    #expect(throws: IRError.self) {
      try infer(.bipartiteMerge, [x, TensorType(fixed: [18, 4]), size, owner], .prefixed(.bipartiteMerge(r: 9), prefix: 2), results: 3)
    }
  }

  @Test func layerScaleAndAveragePoolShapes() throws {
    #expect(try infer(.channelScale, [TensorType(fixed: [17, 8]), TensorType(fixed: [8])], .none) == [TensorType(fixed: [17, 8])])
    #expect(throws: IRError.self) { try infer(.channelScale, [TensorType(fixed: [17, 8]), TensorType(fixed: [17])], .none) }
    #expect(try infer(.meanTokens, [TensorType(fixed: [16, 8])], .prefixed(.none, prefix: 0)) == [TensorType(fixed: [8])])
    #expect(try infer(.meanTokens, [TensorType(fixed: [17, 8])], .none) == [TensorType(fixed: [8])])
    #expect(throws: IRError.self) { try infer(.meanTokens, [TensorType(fixed: [2, 8])], .prefixed(.none, prefix: 2)) }
  }
}
