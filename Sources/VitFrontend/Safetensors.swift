import Foundation
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

  /// Checks `bytes` as the contents of a file called `path` (for messages).
  public init(bytes: [UInt8], path: String) throws(InputError) {
    self.path = path
    self.bytes = bytes
    guard bytes.count >= 8 else { throw .safetensorsTooShort(path: path, size: bytes.count) }
    var length: UInt64 = 0
    for i in 0..<8 { length |= UInt64(bytes[i]) << (8 * UInt64(i)) }
    guard length <= UInt64(bytes.count - 8) else {
      throw .safetensorsHeaderLength(path: path, length: length, fileSize: bytes.count)
    }
    let dataStart = 8 + Int(length)
    let json: Any
    do {
      json = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))
    } catch {
      throw .safetensorsHeader(path: path, reason: "the header is not valid JSON")
    }
    guard let object = json as? [String: Any] else {
      throw .safetensorsHeader(path: path, reason: "the header is not a JSON object")
    }
    var entries: [String: Entry] = [:]
    for (name, value) in object where name != "__metadata__" {
      guard let fields = value as? [String: Any] else {
        throw .safetensorsHeader(path: path, reason: "entry '\(name)' is not an object")
      }
      guard let dtype = fields["dtype"] as? String else {
        throw .safetensorsHeader(path: path, reason: "entry '\(name)' has no string 'dtype'")
      }
      guard let shape = Self.integers(fields["shape"]), shape.allSatisfy({ $0 >= 0 }) else {
        throw .safetensorsHeader(path: path, reason: "entry '\(name)' has no list of sizes 'shape'")
      }
      guard let offsets = Self.integers(fields["data_offsets"]), offsets.count == 2 else {
        throw .safetensorsHeader(path: path, reason: "entry '\(name)' has no 'data_offsets' [begin, end]")
      }
      let (begin, end) = (offsets[0], offsets[1])
      guard begin >= 0, begin <= end, end <= bytes.count - dataStart else {
        throw .safetensorsOffsets(
          path: path, tensor: name,
          reason: "data_offsets [\(begin), \(end)] lie outside the \(bytes.count - dataStart)-byte data section (truncated file?)")
      }
      if let size = Self.elementSizes[dtype] {
        let (elements, overflow) = shape.reduce((1, false)) { partial, dim in
          let product = partial.0.multipliedReportingOverflow(by: dim)
          return (product.partialValue, partial.1 || product.overflow)
        }
        guard !overflow, elements * size == end - begin else {
          throw .safetensorsOffsets(
            path: path, tensor: name,
            reason: "\(end - begin) bytes do not hold \(dtype) \(formatShapeText(shape)) (\(elements) × \(size) bytes)")
        }
      }
      entries[name] = Entry(name: name, dtype: dtype, shape: shape, byteRange: (dataStart + begin)..<(dataStart + end))
    }
    self.entries = entries
  }

  private static func integers(_ value: Any?) -> [Int]? {
    guard let list = value as? [Any] else { return nil }
    var result: [Int] = []
    for item in list {
      guard let number = item as? NSNumber, number.doubleValue == Double(number.intValue) else {
        return nil
      }
      result.append(number.intValue)
    }
    return result
  }

  /// The tensor called `name` as float32, converted from F32, F16 or BF16.
  public func tensor(_ name: String) throws(InputError) -> Tensor {
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
