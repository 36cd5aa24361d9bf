// libFuzzer harness: the PPM reader (P6, P3) and, for an image it accepts, timm's evaluation
// transform to 16x16 with DeiT's settings (bicubic resize, centre crop, normalize).
// tools/fuzz.sh ppm SECONDS
import VitIR

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPPM(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  do {
    let image = try PPM.decode(bytes, path: "fuzz.ppm")
    precondition(image.pixels.count == image.width * image.height * 3)
    let tensor = Preprocessing.evaluation(image, crop: 16, transform: .deit)
    precondition(tensor.shape == [3, 16, 16] && tensor.scalars.allSatisfy(\.isFinite))
  } catch {
    checkMessage(error)
  }
  return 0
}
