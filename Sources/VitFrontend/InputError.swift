import VitIR

/// Errors reading a user's data files: weights (safetensors), images (PPM) and raw inputs.
/// Every message names the file as the user gave it, says what was found and what was expected.
public enum InputError: Error, Equatable, CustomStringConvertible {
  /// The file does not exist.
  case fileNotFound(path: String)
  /// The file exists but cannot be read.
  case unreadable(path: String, reason: String)
  /// A safetensors file shorter than its 8-byte header length.
  case safetensorsTooShort(path: String, size: Int)
  /// The header length points past the end of the file.
  case safetensorsHeaderLength(path: String, length: UInt64, fileSize: Int)
  /// The JSON header is not valid or not of the expected form.
  case safetensorsHeader(path: String, reason: String)
  /// The same tensor name twice in the header.
  case safetensorsDuplicate(path: String, tensor: String)
  /// Two tensors whose bytes overlap, or bytes of the data section that no tensor holds.
  case safetensorsLayout(path: String, reason: String)
  /// A NaN or infinite value in a tensor, at a flat (row-major) index.
  case nonFiniteWeight(path: String, tensor: String, index: Int, value: Float)
  /// A tensor's data_offsets do not lie inside the data section, or do not match its size.
  case safetensorsOffsets(path: String, tensor: String, reason: String)
  /// A dtype vitc does not convert (F32, F16 and BF16 are read).
  case unsupportedDType(path: String, tensor: String, dtype: String)
  /// The file holds no tensor of that name.
  case tensorNotFound(path: String, tensor: String)
  /// Not a PPM (P6 or P3) file.
  case notPPM(path: String)
  /// A PPM header field is missing or malformed.
  case badPPMHeader(path: String, reason: String)
  /// maxval above 255 (16-bit PPM).
  case unsupportedPPMDepth(path: String, maxval: Int)
  /// More pixels than `Limits.maxImagePixels`.
  case imageTooLarge(path: String, width: Int, height: Int)
  /// A longer side more than `Limits.maxImageAspect` times the shorter.
  case imageAspect(path: String, width: Int, height: Int)
  /// Fewer pixel bytes than the header promises.
  case truncatedPPM(path: String, expected: Int, found: Int)
  /// A P3 sample that is not a number or exceeds maxval.
  case badPPMSample(path: String, index: Int, reason: String)
  /// A raw .f32 input whose size does not fit the model's input shape.
  case rawInputSize(path: String, expectedBytes: Int, shape: [Int], foundBytes: Int)
  /// An evaluation set (docs/eval-set.md) whose files do not fit together.
  case badEvalSet(path: String, reason: String)
  /// A PyTorch checkpoint (`torch.save`'s zip) that vitc cannot or will not read.
  case checkpoint(path: String, reason: String)

  public var description: String {
    switch self {
    case .fileNotFound(let path):
      "\(MessageText.path(path)): error: no such file"
    case .unreadable(let path, let reason):
      "\(MessageText.path(path)): error: cannot read: \(reason)"
    case .safetensorsTooShort(let path, let size):
      "\(MessageText.path(path)): error: not a safetensors file: \(size) bytes, shorter than the 8-byte header length"
    case .safetensorsHeaderLength(let path, let length, let fileSize):
      "\(MessageText.path(path)): error: truncated or corrupt safetensors: header length \(length) runs past the end of the \(fileSize)-byte file"
    case .safetensorsHeader(let path, let reason):
      "\(MessageText.path(path)): error: corrupt safetensors header: \(reason)"
    case .safetensorsDuplicate(let path, let tensor):
      "\(MessageText.path(path)): error: corrupt safetensors header: tensor '\(clean(tensor))' is named twice"
    case .safetensorsLayout(let path, let reason):
      "\(MessageText.path(path)): error: corrupt safetensors: \(reason)"
    case .nonFiniteWeight(let path, let tensor, let index, let value):
      "\(MessageText.path(path)): error: tensor '\(clean(tensor))' holds \(value) at index \(index) (row-major), the first non-finite value; vitc refuses NaN and infinite weights (--allow-non-finite accepts them)"
    case .safetensorsOffsets(let path, let tensor, let reason):
      "\(MessageText.path(path)): error: tensor '\(clean(tensor))': \(reason)"
    case .unsupportedDType(let path, let tensor, let dtype):
      "\(MessageText.path(path)): error: tensor '\(clean(tensor))' has dtype \(clean(dtype)); vitc reads F32, F16 and BF16"
    case .tensorNotFound(let path, let tensor):
      "\(MessageText.path(path)): error: no tensor '\(clean(tensor))'"
    case .notPPM(let path):
      "\(MessageText.path(path)): error: not a PPM image (expected the magic number P6 or P3)"
    case .badPPMHeader(let path, let reason):
      "\(MessageText.path(path)): error: bad PPM header: \(reason)"
    case .unsupportedPPMDepth(let path, let maxval):
      "\(MessageText.path(path)): error: maximum value \(maxval)\(maxval > 255 && maxval <= 65535 ? " (a 16-bit PPM)" : ""): only 8-bit PPM is supported (maximum value 1 to 255)"
    case .imageTooLarge(let path, let width, let height):
      "\(MessageText.path(path)): error: image of \(width)x\(height) pixels is too large: vitc reads at most \(Limits.maxImagePixels) pixels"
    case .imageAspect(let path, let width, let height):
      "\(MessageText.path(path)): error: image of \(width)x\(height) pixels is too elongated: the longer side may be at most \(Limits.maxImageAspect) times the shorter"
    case .truncatedPPM(let path, let expected, let found):
      "\(MessageText.path(path)): error: truncated PPM: expected \(expected) bytes of pixels, found \(found)"
    case .badPPMSample(let path, let index, let reason):
      "\(MessageText.path(path)): error: PPM sample \(index): \(reason)"
    case .badEvalSet(let path, let reason):
      "\(MessageText.path(path)): error: not an evaluation set (docs/eval-set.md): \(reason)"
    case .checkpoint(let path, let reason):
      "\(MessageText.path(path)): error: PyTorch checkpoint: \(reason)"
    case .rawInputSize(let path, let expectedBytes, let shape, let foundBytes):
      "\(MessageText.path(path)): error: expected \(expectedBytes) bytes (float32 \(formatShapeText(shape))), found \(foundBytes)"
    }
  }
}

/// User text (paths, tensor names) inside a message: bounded and printable.
func clean(_ text: String) -> String { MessageText.clean(text) }

func formatShapeText(_ shape: [Int]) -> String {
  "[" + shape.map(String.init).joined(separator: ",") + "]"
}

/// Reads a whole file, with the errors above.
func readBytes(_ path: String) throws(InputError) -> [UInt8] {
  guard FileManagerShim.exists(path) else { throw .fileNotFound(path: path) }
  guard let bytes = FileManagerShim.contents(path) else {
    throw .unreadable(path: path, reason: "permission denied or not a regular file")
  }
  return bytes
}
