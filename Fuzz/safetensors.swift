// libFuzzer harness: a safetensors file opened (header, JSON, layout) and every tensor
// converted to float32 (dtype, shape, finiteness). tools/fuzz.sh safetensors SECONDS
import VitIR

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  do {
    let file = try SafetensorsFile(bytes: bytes, path: "fuzz.safetensors")
    for name in file.names {
      do {
        let tensor = try file.tensor(name)
        precondition(tensor.scalars.allSatisfy(\.isFinite))
      } catch {
        checkMessage(error)
      }
    }
  } catch {
    checkMessage(error)
  }
  return 0
}
