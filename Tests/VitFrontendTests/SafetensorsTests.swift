import Foundation
import TestSupport
import Testing
import VitIR

@testable import VitFrontend

@Suite struct SafetensorsTests {
  @Test func halfConversionsAreExact() {
    #expect(halfToFloat(0x3c00) == 1)
    #expect(halfToFloat(0xc100) == -2.5)
    #expect(halfToFloat(0x7bff) == 65504)
    #expect(halfToFloat(0x0001) == 0x1p-24)  // smallest subnormal
    #expect(halfToFloat(0x8000).sign == .minus)
    #expect(halfToFloat(0x7c00) == .infinity)
    #expect(halfToFloat(0xfc00) == -.infinity)
    #expect(halfToFloat(0x7e00).isNaN)
    for bits in stride(from: UInt16(0), to: 0x7c00, by: 7) {
      #expect(floatToHalf(halfToFloat(bits)) == bits)
    }
  }

  @Test(arguments: ["F32", "F16", "BF16"])
  func roundTripsEachDType(dtype: String) throws {
    let values: [Float] = [1, -2.5, 0.15625, 3, -0, 96, 0.5, 1e-3]
    let bytes = SafetensorsWriter.encode(
      [("b", Tensor(shape: [2, 4], scalars: values)), ("a", Tensor(shape: [1], scalars: [7]))], dtype: dtype)
    let file = try SafetensorsFile(bytes: bytes, path: "t.safetensors")
    #expect(file.names == ["a", "b"])
    #expect(file.entries["b"]?.dtype == dtype)
    let tensor = try file.tensor("b")
    #expect(tensor.shape == [2, 4])
    let tolerance: Float = dtype == "F32" ? 0 : dtype == "F16" ? 1e-3 : 1e-2
    for (read, written) in zip(tensor.scalars, values) {
      #expect(abs(read - written) <= tolerance * max(1, abs(written)))
    }
    #expect(try file.tensor("a").scalars == [7])
  }

  @Test func bf16IsTheTopHalfOfF32() throws {
    // 0x3fc0 = 1.5; written by hand, not by our writer.
    let header = Array(#"{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#.utf8)
    var bytes: [UInt8] = [UInt8(header.count), 0, 0, 0, 0, 0, 0, 0] + header
    bytes += [0xc0, 0x3f, 0x80, 0xbf]  // 1.5, -1.0
    #expect(try SafetensorsFile(bytes: bytes, path: "b.safetensors").tensor("x").scalars == [1.5, -1])
  }

  func error(_ bytes: [UInt8]) -> String? {
    do {
      _ = try SafetensorsFile(bytes: bytes, path: "w.safetensors").tensor("x")
      return nil
    } catch {
      return error.description
    }
  }

  func file(_ header: String, data: Int) -> [UInt8] {
    let json = Array(header.utf8)
    var length = UInt64(json.count)
    var bytes: [UInt8] = []
    for _ in 0..<8 {
      bytes.append(UInt8(length & 0xff))
      length >>= 8
    }
    return bytes + json + [UInt8](repeating: 0, count: data)
  }

  @Test func badFilesGetOneClearLine() {
    let good = SafetensorsWriter.encode([("x", Tensor(shape: [4], scalars: [1, 2, 3, 4]))])
    #expect(error([1, 2, 3]) == "w.safetensors: error: not a safetensors file: 3 bytes, shorter than the 8-byte header length")
    #expect(error(Array(good.prefix(20)))?.hasPrefix("w.safetensors: error: truncated or corrupt safetensors: header length") == true)
    #expect(error(Array(good.dropLast(4))) == "w.safetensors: error: tensor 'x': data_offsets [0, 16] lie outside the 12-byte data section (truncated file?)")
    #expect(error(file("{not json", data: 0)) == "w.safetensors: error: corrupt safetensors header: the header is not valid JSON: expected a string key at byte 9")
    #expect(error(file("[1,2]", data: 0)) == "w.safetensors: error: corrupt safetensors header: the header is not a JSON object")
    #expect(error(file(#"{"x":{"shape":[1],"data_offsets":[0,4]}}"#, data: 4)) == "w.safetensors: error: corrupt safetensors header: entry 'x' has no string 'dtype'")
    #expect(error(file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: 4)) == "w.safetensors: error: tensor 'x': 4 bytes do not hold F32 [2] (2 × 4 bytes)")
    #expect(error(file(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: 4))?.contains("lie outside") == true)
    #expect(error(file(#"{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: 8)) == "w.safetensors: error: tensor 'x' has dtype I64; vitc reads F32, F16 and BF16")
    #expect(error(file(#"{"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 4)) == "w.safetensors: error: no tensor 'x'")
    #expect(throws: InputError.fileNotFound(path: "no/such.safetensors")) { try SafetensorsFile(path: "no/such.safetensors") }
  }

  @Test func bindingNamesTheTensorAndTheDeclaration() throws {
    let graph = try GraphLoader.parse(
      "graph g(x: f32[2,4]) -> f32[2,3] {\n  param @w: f32[3,4]\n  y = linear(x, @w)\n  return y\n}\n", file: "g.graph")
    let wrongShape = try SafetensorsFile(bytes: SafetensorsWriter.encode([("w", Tensor(zeros: [4, 3]))]), path: "w.safetensors")
    #expect(throws: BindingError.self) { try WeightBinding.bind(graph, to: wrongShape) }
    do {
      _ = try WeightBinding.bind(graph, to: wrongShape)
    } catch {
      #expect(error.description == "w.safetensors: error: tensor 'w' has shape [4,3], but the graph at g.graph:2:9 declares f32[3,4]")
    }
    let missing = try SafetensorsFile(bytes: SafetensorsWriter.encode([("v", Tensor(zeros: [3, 4]))]), path: "w.safetensors")
    do {
      _ = try WeightBinding.bind(graph, to: missing)
      Issue.record("binding should fail")
    } catch {
      #expect(error.description == "w.safetensors: error: no tensor 'w', which the graph at g.graph:2:9 declares")
    }
    let good = try SafetensorsFile(bytes: SafetensorsWriter.encode([("w", Tensor(shape: [3, 4], scalars: (0..<12).map(Float.init))), ("extra", Tensor(zeros: [1]))]), path: "w.safetensors")
    #expect(try WeightBinding.bind(graph, to: good)["w"]?.scalars[11] == 11)
  }

  /// The timm fixture binds to samples/tiny.graph unchanged: timm's names and shapes.
  @Test func timmFileBindsToTheTinyGraph() throws {
    let graph = try GraphLoader.load(path: samplePath("tiny.graph"))
    let file = try SafetensorsFile(path: repositoryRoot.appendingPathComponent("Tests/Fixtures/timm-tiny/weights.safetensors").path)
    #expect(Set(file.entries.values.map(\.dtype)) == ["F32", "F16", "BF16"])
    let weights = try WeightBinding.bind(graph, to: file)
    #expect(weights.count == graph.parameters.count)
    #expect(weights["pos_embed"]?.shape == [1, 197, 64])
  }
}
