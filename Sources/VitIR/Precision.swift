/// The arithmetic of a model's linear layers (`vitc … --precision`). Stored on each linear op
/// that the Quantize pass converts (`OpAttributes.precision`), so dumps show it.
public enum Precision: String, Sendable, CaseIterable {
  /// IEEE float32 throughout: the default.
  case f32
  /// Weights and activations of the linears rounded to bfloat16 (BFloat16), float32 sums.
  case bf16
  /// Weights and activations of the linears in 8-bit integers (Int8Quantization), int32 sums.
  case int8
}

/// The int8 arithmetic of a linear layer, bit for bit what the C runtime computes
/// (Runtime/include/vit_qgemm.h); the interpreter and the compiler both call these functions.
///
/// Symmetric quantization, the same formula for a row of activations (per token, at run time)
/// and for a row of `W[n][k]` (per output channel, when compiling): `amax = max |v|`;
/// `inv = 127 / amax` (one float division), `q = clamp(rint(v · inv), −127, 127)`,
/// `scale = amax / 127`; an all-zero row has scale 0 and q = 0. Then
///
///     acc = Σ q_x · q_w                          (exact, int32)
///     y   = Float(acc) · (scale_x · scale_w)     (two float multiplies, the scales' first)
///     y   = y + bias                              (one float add)
///
/// and the op's epilogue (GELU, residual, LayerScale) as in float32. Every step rounds once
/// (no fused multiply-add), so the binary and the interpreter agree exactly for the same input.
public enum Int8Quantization {
  /// The largest |q|; −128 is never used, so negation stays in range.
  public static let levels: Float = 127
  /// The widest row the int32 sums are sized for (the runtime's bound, vit_qgemm.h): wider
  /// linears stay f32.
  public static let maxInputs = 16384

  /// One row quantized: `(q, scale)`. A row with a non-finite value gets a NaN scale (its
  /// products are then NaN, as in float32) and q = 0.
  public static func quantize<C: Collection>(_ row: C) -> (q: [Int8], scale: Float) where C.Element == Float {
    var amax: Float = 0
    var finite = true
    for value in row {
      finite = finite && value.isFinite
      amax = max(amax, abs(value))
    }
    guard finite else { return ([Int8](repeating: 0, count: row.count), .nan) }
    guard amax > 0 else { return ([Int8](repeating: 0, count: row.count), 0) }
    let inv = levels / amax
    let q = row.map { value -> Int8 in
      // With amax below 127/Float.greatestFiniteMagnitude, inv is +inf and 0·inf is NaN: 0,
      // as the runtime's clamp gives (Runtime/include/vit_qgemm.h).
      let scaled = (value * inv).rounded(.toNearestOrEven)
      if scaled.isNaN { return 0 }
      return Int8(min(max(scaled, -levels), levels))
    }
    return (q, amax / levels)
  }

  /// `Σ a[i]·b[i]` in exact integer arithmetic.
  public static func dot(_ a: UnsafeBufferPointer<Int8>, _ b: UnsafeBufferPointer<Int8>) -> Int32 {
    var sum: Int32 = 0
    for i in 0..<a.count { sum &+= Int32(a[i]) &* Int32(b[i]) }
    return sum
  }

  /// The dequantized, biased output of one product: `Float(acc)·(sx·sw) + bias`.
  @inline(__always)
  public static func dequantize(_ acc: Int32, rowScale: Float, columnScale: Float, bias: Float?) -> Float {
    let scale = rowScale * columnScale
    let y = Float(acc) * scale
    guard let bias else { return y }
    return y + bias
  }
}

/// bfloat16: the upper 16 bits of a float32, the rounding of `--precision bf16`, bit for bit
/// the runtime's (Runtime/src/vit_quant.h, `vit_bf16_round`).
public enum BFloat16 {
  /// `value` rounded to bf16, to nearest with ties to even (a NaN stays a NaN, made quiet;
  /// past bf16's largest, infinity), as its 16 bits.
  public static func bits(_ value: Float) -> UInt16 {
    var bits = value.bitPattern
    if bits & 0x7fff_ffff > 0x7f80_0000 { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
    bits &+= 0x7fff &+ ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: bits >> 16)
  }

  /// `value` rounded to bf16, as a float32 (exact).
  public static func round(_ value: Float) -> Float {
    Float(bitPattern: UInt32(bits(value)) << 16)
  }
}
