// libFuzzer harness: an evaluation set (docs/eval-set.md) from its two files. The input is
// split as: byte 0 → image side (1…16), byte 1 → the number of labels L, then L label bytes,
// then the zero-run encoded images. Labels are checked against 10 classes.
// tools/fuzz.sh evalset SECONDS
import VitIR

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEvalSet(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let bytes = Array(UnsafeBufferPointer(start: data, count: size))
  guard bytes.count >= 2 else { return 0 }
  let side = Int(bytes[0] % 17)  // 0 is refused: the check is part of what is fuzzed
  let labelCount = min(Int(bytes[1]), bytes.count - 2)
  let labels = Array(bytes[2..<(2 + labelCount)])
  let images = Array(bytes[(2 + labelCount)...])
  do {
    let set = try EvalSet.decode(
      labels: labels, images: images, side: side, classes: 10, labelsPath: "fuzz/test-labels.u8",
      imagesPath: "fuzz/test-images.rle")
    precondition(set.images.count == set.labels.count && set.images.allSatisfy { $0.count == side * side })
    precondition(set.labels.allSatisfy { $0 < 10 })
    for index in set.images.indices { _ = set.rgb(index) }
  } catch {
    checkMessage(error)
  }
  return 0
}
