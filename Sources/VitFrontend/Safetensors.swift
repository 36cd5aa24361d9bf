import VitIR

/// A safetensors file (the format timm and Hugging Face publish weights in): an 8-byte
/// little-endian header length N, N bytes of JSON mapping tensor names to
/// `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the data after the
/// header), then the data. Every entry is checked against the file when it is opened.
public struct SafetensorsFile: Sendable {
  public struct Entry: Sendable, Equatable {
    public var name: String
    /// As written in the file: "F32", "F16", "BF16", "I64", …
    public var dtype: String
    public var shape: [Int]
    /// Absolute byte range in the file.
    public var byteRange: Range<Int>
  }

  /// Bytes per element of the dtypes the format defines.
  static let elementSizes: [String: Int] = [
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
  ]

  public let path: String
  public let entries: [String: Entry]
  private let bytes: [UInt8]

  /// Tensor names, sorted.
  public var names: [String] { entries.keys.sorted() }

  /// Reads and checks the file at `path`.
  public init(path: String) throws(InputError) {
    try self.init(bytes: try readBytes(path), path: path)
  }

  /// Tensors already located and checked by another reader (a PyTorch checkpoint's storages
  /// are stored in place in its zip, so they are read the same way).
  init(path: String, bytes: [UInt8], entries: [String: Entry]) {
    self.path = path
    self.bytes = bytes
    self.entries = entries
  }

  /// Checks `bytes` as the contents of a file called `path` (for messages).
  public init(bytes: [UInt8], path: String) throws(InputError) {
    self.path = path
    self.bytes = bytes
    guard bytes.count >= 8 else { throw .safetensorsTooShort(path: path, size: bytes.count) }
    var length: UInt64 = 0
    for i in 0..<8 { length |= UInt64(bytes[i]) << (8 * UInt64(i)) }
    guard length <= UInt64(bytes.count - 8) else {
      // A text file (JSON, a git-lfs pointer, HTML) starts with printable bytes, which make an
      // absurd length: say what the file is rather than that it is short.
      if bytes[0..<8].allSatisfy({ (0x20..<0x7f).contains($0) || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) {
        throw .safetensorsHeader(
          path: path,
          reason: "the file starts with text ('\(clean(String(decoding: bytes[0..<8], as: UTF8.self)))'), not the 8-byte little-endian header length (not a safetensors file?)")
      }
      throw .safetensorsHeaderLength(path: path, length: length, fileSize: bytes.count)
    }
    let dataStart = 8 + Int(length)
    let dataSize = bytes.count - dataStart
    let json: JSONValue
    do {
      json = try StrictJSON.parse(bytes[8..<dataStart])
    } catch {
      if error.reason.hasPrefix("duplicate key"), let name = Self.duplicateTopLevelKey(bytes[8..<dataStart]) {
        throw .safetensorsDuplicate(path: path, tensor: name)
      }
      throw .safetensorsHeader(path: path, reason: "the header is not valid JSON: \(error.reason) at byte \(8 + error.offset)")
    }
    guard case .object(let members) = json else {
      throw .safetensorsHeader(path: path, reason: "the header is not a JSON object")
    }
    var entries: [String: Entry] = [:]
    for (name, value) in members where name != "__metadata__" {
      let quoted = clean(name)
      guard case .object(let fields) = value else {
        throw .safetensorsHeader(path: path, reason: "entry '\(quoted)' is not an object")
      }
      func field(_ key: String) -> JSONValue? { fields.first(where: { $0.key == key })?.value }
      guard case .string(let dtype)? = field("dtype") else {
        throw .safetensorsHeader(path: path, reason: "entry '\(quoted)' has no string 'dtype'")
      }
      guard let shape = Self.integers(field("shape")), shape.allSatisfy({ $0 >= 0 }) else {
        throw .safetensorsHeader(path: path, reason: "entry '\(quoted)' has no list of sizes 'shape'")
      }
      guard let offsets = Self.integers(field("data_offsets")), offsets.count == 2 else {
        throw .safetensorsHeader(path: path, reason: "entry '\(quoted)' has no 'data_offsets' [begin, end]")
      }
      let (begin, end) = (offsets[0], offsets[1])
      guard begin >= 0, begin <= end, end <= dataSize else {
        throw .safetensorsOffsets(
          path: path, tensor: name,
          reason: "data_offsets [\(begin), \(end)] lie outside the \(dataSize)-byte data section (truncated file?)")
      }
      if let size = Self.elementSizes[dtype] {
        let elements = ShapeInference.elementCount(shape)
        guard let elements, elements.multipliedReportingOverflow(by: size).partialValue == end - begin,
          elements <= Int.max / 8
        else {
          throw .safetensorsOffsets(
            path: path, tensor: name,
            reason: "\(end - begin) bytes do not hold \(clean(dtype)) \(formatShapeText(shape)) (\(elements.map(String.init) ?? "too many") × \(size) bytes)")
        }
      }
      entries[name] = Entry(name: name, dtype: dtype, shape: shape, byteRange: (dataStart + begin)..<(dataStart + end))
    }
    try Self.checkLayout(entries.values, dataStart: dataStart, dataSize: dataSize, path: path)
    self.entries = entries
  }

  /// The first name given twice at the top level of a header (for the message; the strict parser
  /// found a duplicate key somewhere).
  private static func duplicateTopLevelKey(_ header: ArraySlice<UInt8>) -> String? {
    guard let json = try? StrictJSON.parse(header, allowDuplicates: true), case .object(let members) = json else {
      return nil
    }
    var seen: Set<String> = []
    return members.first(where: { !seen.insert($0.key).inserted })?.key
  }

  /// As the format requires (and Hugging Face's reader checks): tensors do not overlap and
  /// together cover the data section, with no byte before, between or after them.
  private static func checkLayout(
    _ entries: some Collection<Entry>, dataStart: Int, dataSize: Int, path: String
  ) throws(InputError) {
    let sorted = entries.sorted { ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name) < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name) }
    var covered = 0
    var previous: Entry? = nil
    for entry in sorted {
      let begin = entry.byteRange.lowerBound - dataStart, end = entry.byteRange.upperBound - dataStart
      if begin < covered, let previous {
        throw .safetensorsLayout(
          path: path,
          reason: "tensors '\(clean(previous.name))' (bytes \(previous.byteRange.lowerBound - dataStart)..<\(covered)) and '\(clean(entry.name))' (bytes \(begin)..<\(end)) overlap")
      }
      if begin > covered {
        throw .safetensorsLayout(path: path, reason: "bytes \(covered)..<\(begin) of the data section belong to no tensor")
      }
      covered = end
      previous = entry
    }
    if covered < dataSize {
      throw .safetensorsLayout(path: path, reason: "bytes \(covered)..<\(dataSize) of the data section belong to no tensor")
    }
  }

  private static func integers(_ value: JSONValue?) -> [Int]? {
    guard case .array(let list)? = value else { return nil }
    var result: [Int] = []
    for item in list {
      guard case .integer(let number) = item else { return nil }
      result.append(number)
    }
    return result
  }

  /// The tensor called `name` as float32, converted from F32, F16 or BF16. A NaN or infinite
  /// value is an error naming the tensor and its first such index, unless `allowNonFinite`.
  public func tensor(_ name: String, allowNonFinite: Bool = false) throws(InputError) -> Tensor {
    guard let entry = entries[name] else { throw .tensorNotFound(path: path, tensor: name) }
    let count = entry.shape.reduce(1, *)
    var scalars = [Float](repeating: 0, count: count)
    let base = entry.byteRange.lowerBound
    switch entry.dtype {
    case "F32":
      for i in 0..<count {
        let p = base + 4 * i
        let bits = UInt32(bytes[p]) | UInt32(bytes[p + 1]) << 8 | UInt32(bytes[p + 2]) << 16 | UInt32(bytes[p + 3]) << 24
        scalars[i] = Float(bitPattern: bits)
      }
    case "F16":
      for i in 0..<count {
        scalars[i] = halfToFloat(UInt16(bytes[base + 2 * i]) | UInt16(bytes[base + 2 * i + 1]) << 8)
      }
    case "BF16":
      for i in 0..<count {
        let bits = UInt32(bytes[base + 2 * i]) | UInt32(bytes[base + 2 * i + 1]) << 8
        scalars[i] = Float(bitPattern: bits << 16)
      }
    default:
      throw .unsupportedDType(path: path, tensor: name, dtype: entry.dtype)
    }
    if !allowNonFinite, let index = scalars.firstIndex(where: { !$0.isFinite }) {
      throw .nonFiniteWeight(path: path, tensor: name, index: index, value: scalars[index])
    }
    return Tensor(shape: entry.shape, scalars: scalars)
  }
}

/// IEEE binary16 → binary32, exactly (subnormals, infinities and NaN included).
public func halfToFloat(_ bits: UInt16) -> Float {
  let sign = UInt32(bits >> 15) << 31
  let exponent = Int(bits >> 10) & 0x1f
  let fraction = UInt32(bits & 0x3ff)
  if exponent == 0x1f { return Float(bitPattern: sign | 0x7f80_0000 | fraction << 13) }
  if exponent == 0 {
    // ±0 or subnormal: fraction · 2^-24, exact in float32.
    let magnitude = Float(fraction) * 0x1p-24
    return sign == 0 ? magnitude : -magnitude
  }
  return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | fraction << 13)
}

/// Float32 → binary16 bits, rounding to nearest even (for writing test files).
public func floatToHalf(_ value: Float) -> UInt16 {
  let bits = value.bitPattern
  let sign = UInt16((bits >> 16) & 0x8000)
  if value.isNaN { return sign | 0x7e00 }
  let magnitude = abs(value)
  if magnitude >= 65520 { return sign | 0x7c00 }
  if magnitude < 0x1p-14 {
    // Subnormal half: round magnitude / 2^-24 to nearest even.
    return sign | UInt16((magnitude * 0x1p24).rounded(.toNearestOrEven))
  }
  let exponent = Int((bits >> 23) & 0xff) - 127 + 15
  var fraction = (bits & 0x7f_ffff) >> 13
  let remainder = bits & 0x1fff
  var result = UInt32(exponent) << 10 | fraction
  if remainder > 0x1000 || (remainder == 0x1000 && fraction & 1 == 1) { result += 1 }
  fraction = 0
  return sign | UInt16(result)
}

/// Writes safetensors files (tests, and `vitc` saving generated weights).
public enum SafetensorsWriter {
  /// A file holding `tensors` in `dtype` ("F32", "F16" or "BF16"; BF16 truncates to nearest
  /// even). The header is written with sorted names and padded with spaces to 8 bytes.
  public static func encode(_ tensors: [(name: String, tensor: Tensor)], dtype: String = "F32") -> [UInt8] {
    var data: [UInt8] = []
    var header: [String] = []
    for (name, tensor) in tensors.sorted(by: { $0.name < $1.name }) {
      let begin = data.count
      for value in tensor.scalars {
        switch dtype {
        case "F16":
          let bits = floatToHalf(value)
          data += [UInt8(bits & 0xff), UInt8(bits >> 8)]
        case "BF16":
          let bits = value.bitPattern
          let rounded = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16
          data += [UInt8(rounded & 0xff), UInt8((rounded >> 8) & 0xff)]
        default:
          let bits = value.bitPattern
          data += [UInt8(bits & 0xff), UInt8((bits >> 8) & 0xff), UInt8((bits >> 16) & 0xff), UInt8(bits >> 24)]
        }
      }
      let shape = tensor.shape.map(String.init).joined(separator: ",")
      header.append("\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(data.count)]}")
    }
    var json = Array(("{" + header.joined(separator: ",") + "}").utf8)
    while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
    var length = UInt64(json.count)
    var out: [UInt8] = []
    for _ in 0..<8 {
      out.append(UInt8(length & 0xff))
      length >>= 8
    }
    return out + json + data
  }
}
