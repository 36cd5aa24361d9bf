import Foundation
import TestSupport
import Testing
import VitFrontend
import VitIR
import VitPasses


@Suite struct FlopCountTests {
  /// SEMANTICS.md §7.1 and §7.2: fvcore for DeiT-T/S/B, torchprofile for DeiT-S.
  @Test(arguments: [
    ("deit-t.graph", 1_258_411_200, nil),
    ("deit-s.graph", 4_608_338_304, 4_603_567_752),
    ("deit-b.graph", 17_582_740_224, nil),
  ] as [(String, Int, Int?)])
  func samplesMatchThePapers(file: String, fvcore: Int, torchprofile: Int?) throws {
    let graph = try GraphLoader.load(path: repositoryRoot.appendingPathComponent("samples/\(file)").path)
    #expect(FlopCounter.report(graph, convention: .fvcore).totalMACs == fvcore)
    if let torchprofile {
      #expect(FlopCounter.report(graph, convention: .torchprofile).totalMACs == torchprofile)
    }
  }

  /// The per-block split follows the closed form of §7.1: 12NC² + 2N²C + 10NC per block.
  @Test func perBlockRowsFollowTheClosedForm() throws {
    let graph = try GraphLoader.load(path: repositoryRoot.appendingPathComponent("samples/deit-s.graph").path)
    let report = FlopCounter.report(graph, convention: .fvcore)
    let (n, c) = (197, 384)
    #expect(report.rows.map(\.name) == ["stem"] + (0..<12).map { "block \($0)" } + ["head"])
    #expect(report.rows[0].macs == 196 * c * 768)
    for row in report.rows[1...12] {
      #expect(row.macs == 12 * n * c * c + 2 * n * n * c + 10 * n * c)
      #expect(row.tokens == 197)
    }
    #expect(report.rows[13].macs == 5 * n * c + c * 1000)
    #expect(report.parameters == 22_050_664)
  }

  /// LayerScale and the mean over tokens: torchprofile counts their `mul` and `mean`, one per
  /// output element; fvcore counts neither. A graph without a class token counts 196 tokens.
  @Test func layerScaleAndMeanTokens() throws {
    var text = try String(contentsOfFile: repositoryRoot.appendingPathComponent("samples/deit-s.graph").path, encoding: .utf8)
    let before = FlopCounter.report(try GraphLoader.parse(text, file: "deit-s.graph"), convention: .torchprofile).totalMACs
    text = text.replacingOccurrences(
      of: "x = x + linear(h, @blocks.{i}.mlp.fc2.weight, @blocks.{i}.mlp.fc2.bias)",
      with: "x = x + channel_scale(linear(h, @blocks.{i}.mlp.fc2.weight, @blocks.{i}.mlp.fc2.bias), @blocks.{i}.norm2.weight)")
    let scaled = try GraphLoader.parse(text, file: "deit-s.graph")
    #expect(FlopCounter.report(scaled, convention: .torchprofile).totalMACs == before + 12 * 197 * 384)
    #expect(FlopCounter.report(scaled, convention: .fvcore).totalMACs == 4_608_338_304)
    let pooled = text.replacingOccurrences(of: "index=0)", with: "index=0) + mean_tokens(x)")
    try #require(pooled != text)
    let graph = try GraphLoader.parse(pooled, file: "deit-s.graph")
    #expect(FlopCounter.report(graph, convention: .torchprofile).totalMACs == before + 12 * 197 * 384 + 384)
  }

  /// A dynamic token count is counted at its bound.
  @Test func dynamicDimsCountAtTheirBound() throws {
    let source = """
      graph g(x: f32[n<=10,4]) -> f32[n<=10,3] {
        param @w: f32[3,4]
        y = linear(x, @w)
        return y
      }
      """
    let graph = try GraphLoader.parse(source, file: "g.graph")
    #expect(FlopCounter.report(graph, convention: .fvcore).totalMACs == 10 * 4 * 3)
  }

  /// The polynomial form gives what the per-op counts give, for any run-time counts: AS-ViT on
  /// DeiT-S (its n{s} and k{s}) and a static schedule (a constant).
  @Test func polynomialAgreesWithTheReport() throws {
    let parsed = try GraphLoader.load(path: repositoryPath("samples/deit-s.graph"))
    let schedule = try ScheduleParser.parse("asvit:0.001,0.002,0.003", depth: 12)
    let graph = try Pipeline.run(parsed, through: .fusedEpilogues, schedule: schedule)
    for convention in FlopConvention.allCases {
      let polynomial = FlopCounter.polynomial(of: graph, convention: convention)
      #expect(polynomial.symbols == [.tokens(stage: 0), .tokens(stage: 1), .tokens(stage: 2)])  // k{s} sizes only the index lists
      for stages in [[197, 197, 197], [150, 90, 12], [2, 2, 2], [120, 60, 30]] {
        let counts = FlopCounter.counts(of: graph, stages: stages)
        #expect(polynomial.evaluated { counts[$0]! } == FlopCounter.report(graph, convention: convention, counts: counts).totalMACs)
      }
    }
    let dyvit = try Pipeline.run(parsed, through: .pruned, schedule: try ScheduleParser.parse("dyvit:0.7", depth: 12))
    let constant = FlopCounter.polynomial(of: dyvit, convention: .fvcore)
    #expect(constant.symbols.isEmpty)
    #expect(constant.evaluated { _ in 0 } == FlopCounter.report(dyvit, convention: .fvcore).totalMACs)
  }

  @Test func polynomialArithmetic() {
    let (nCount, kCount) = (TokenCount.tokens(stage: 0), TokenCount.kept(stage: 0))
    let n = MacPolynomial(Dim.dynamic(symbol: nCount, bound: 9)), k = MacPolynomial(Dim.dynamic(symbol: kCount, bound: 8))
    let p = 2 * n * n + 3 * n * k - n + 5 - 5
    #expect(p.sortedTerms.map(\.monomial) == [[nCount], [kCount, nCount], [nCount, nCount]])
    #expect(p.evaluated { $0 == nCount ? 4 : 3 } == 2 * 16 + 3 * 12 - 4)
    #expect((n - n).terms.isEmpty)
    #expect(MacPolynomial(Dim.fixed(7)) == 7)
  }
}
