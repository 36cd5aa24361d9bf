// libFuzzer harness: `.graph` text through the lexer, parser, elaboration, shape inference and
// the verifier (GraphLoader.parse). tools/fuzz.sh graph SECONDS
import VitIR

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGraph(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  do {
    _ = try GraphLoader.parse(text, file: "fuzz.graph")
  } catch {
    checkMessage(error)
  }
  return 0
}
