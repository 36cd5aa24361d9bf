// libFuzzer harness: a PyTorch checkpoint opened (ZIP directory, data.pkl through the
// state-dict pickle machine, tensors against their storages) and every tensor converted to
// float32. tools/fuzz.sh checkpoint SECONDS
import VitIR

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  do {
    let file = try TorchCheckpoint.read(bytes: bytes, path: "fuzz.pth")
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
