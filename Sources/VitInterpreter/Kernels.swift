import Foundation
import VitIR

/// The interpreter's loops, one function per op, each on concrete tensors. Float32 storage,
/// double accumulation.
enum Kernels {
  /// `(image [3,H,W], weight [C,3,p,p], bias [C]) -> [(H/p)*(W/p), C]`, patches row-major.
  static func patchEmbed(_ image: Tensor, weight: Tensor, bias: Tensor, patch p: Int) -> Tensor {
    let (channels, height, width) = (image.shape[0], image.shape[1], image.shape[2])
    let (gridH, gridW) = (height / p, width / p)
    let patchSize = channels * p * p
    // Unfold the image into [patches, channels*p*p] in the order of the weight's (ch, ky, kx).
    var unfolded = [Float](repeating: 0, count: gridH * gridW * patchSize)
    for r in 0..<gridH {
      for s in 0..<gridW {
        let row = (r * gridW + s) * patchSize
        for ch in 0..<channels {
          for ky in 0..<p {
            for kx in 0..<p {
              unfolded[row + (ch * p + ky) * p + kx] =
                image.scalars[(ch * height + r * p + ky) * width + s * p + kx]
            }
          }
        }
      }
    }
    let matrix = Tensor(shape: [gridH * gridW, patchSize], scalars: unfolded)
    let flatWeight = Tensor(shape: [weight.shape[0], patchSize], scalars: weight.scalars)
    return linear(matrix, weight: flatWeight, bias: bias)
  }

  /// `y = x·Wᵀ + b` over the last axis of x; W is [out, in].
  static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let (outWidth, inWidth) = (weight.shape[0], weight.shape[1])
    let rows = x.count / inWidth
    var y = [Float](repeating: 0, count: rows * outWidth)
    x.scalars.withUnsafeBufferPointer { xs in
      weight.scalars.withUnsafeBufferPointer { ws in
        y.withUnsafeMutableBufferPointer { ys in
          for r in 0..<rows {
            let xRow = xs.baseAddress! + r * inWidth
            for o in 0..<outWidth {
              let wRow = ws.baseAddress! + o * inWidth
              var sum = 0.0
              for i in 0..<inWidth { sum += Double(xRow[i]) * Double(wRow[i]) }
              if let bias { sum += Double(bias.scalars[o]) }
              ys[r * outWidth + o] = Float(sum)
            }
          }
        }
      }
    }
    return Tensor(shape: Array(x.shape.dropLast()) + [outWidth], scalars: y)
  }

  /// `y = x·Wᵀ + b` in int8 (Int8Quantization): each row of x and of W quantized to int8,
  /// exact integer products, then `Float(acc)·(sx·sw) + b`, bit for bit the C runtime's.
  static func linearInt8(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let (outWidth, inWidth) = (weight.shape[0], weight.shape[1])
    let rows = x.count / inWidth
    let weightRows = (0..<outWidth).map { Int8Quantization.quantize(weight.scalars[$0 * inWidth..<($0 + 1) * inWidth]) }
    var y = [Float](repeating: 0, count: rows * outWidth)
    for r in 0..<rows {
      let (xq, xScale) = Int8Quantization.quantize(x.scalars[r * inWidth..<(r + 1) * inWidth])
      xq.withUnsafeBufferPointer { xs in
        for o in 0..<outWidth {
          let (wq, wScale) = weightRows[o]
          let acc = wq.withUnsafeBufferPointer { Int8Quantization.dot(xs, $0) }
          y[r * outWidth + o] = Int8Quantization.dequantize(
            acc, rowScale: xScale, columnScale: wScale, bias: bias.map { $0.scalars[o] })
        }
      }
    }
    return Tensor(shape: Array(x.shape.dropLast()) + [outWidth], scalars: y)
  }

  /// Batched `[..., a, k] · [..., k, b]`.
  static func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
    let rank = a.shape.count
    let (m, k, n) = (a.shape[rank - 2], a.shape[rank - 1], b.shape[rank - 1])
    let batches = a.count / (m * k)
    // Transpose each batch of b once so that both operands are read contiguously.
    let bt = transpose(b)
    var y = [Float](repeating: 0, count: batches * m * n)
    a.scalars.withUnsafeBufferPointer { xs in
      bt.scalars.withUnsafeBufferPointer { ts in
        y.withUnsafeMutableBufferPointer { ys in
          for batch in 0..<batches {
            for i in 0..<m {
              let aRow = xs.baseAddress! + (batch * m + i) * k
              for j in 0..<n {
                let bColumn = ts.baseAddress! + (batch * n + j) * k
                var sum = 0.0
                for t in 0..<k { sum += Double(aRow[t]) * Double(bColumn[t]) }
                ys[(batch * m + i) * n + j] = Float(sum)
              }
            }
          }
        }
      }
    }
    return Tensor(shape: Array(a.shape.dropLast()) + [n], scalars: y)
  }

  /// Swaps the last two axes.
  static func transpose(_ x: Tensor) -> Tensor {
    let rank = x.shape.count
    let (rows, columns) = (x.shape[rank - 2], x.shape[rank - 1])
    let batches = x.count / max(rows * columns, 1)
    var y = [Float](repeating: 0, count: x.count)
    for batch in 0..<batches {
      let base = batch * rows * columns
      for r in 0..<rows {
        for c in 0..<columns { y[base + c * rows + r] = x.scalars[base + r * columns + c] }
      }
    }
    var shape = x.shape
    shape.swapAt(rank - 1, rank - 2)
    return Tensor(shape: shape, scalars: y)
  }

  /// LayerNorm over the last axis: mean, biased variance (/C), `(x−μ)/√(σ²+ε)·w + b`.
  static func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Double) -> Tensor {
    let width = x.shape.last!
    var y = [Float](repeating: 0, count: x.count)
    for r in 0..<(x.count / width) {
      let base = r * width
      var mean = 0.0
      for i in 0..<width { mean += Double(x.scalars[base + i]) }
      mean /= Double(width)
      var variance = 0.0
      for i in 0..<width {
        let centered = Double(x.scalars[base + i]) - mean
        variance += centered * centered
      }
      variance /= Double(width)
      let inverse = 1.0 / (variance + eps).squareRoot()
      for i in 0..<width {
        let normalized = (Double(x.scalars[base + i]) - mean) * inverse
        y[base + i] = Float(normalized * Double(weight.scalars[i]) + Double(bias.scalars[i]))
      }
    }
    return Tensor(shape: x.shape, scalars: y)
  }

  /// Softmax over the last axis: `exp(x − rowmax) / Σ exp(x − rowmax)`.
  static func softmax(_ x: Tensor) -> Tensor {
    let width = x.shape.last!
    var y = [Float](repeating: 0, count: x.count)
    for r in 0..<(x.count / width) {
      let base = r * width
      var maximum = -Double.infinity
      for i in 0..<width { maximum = max(maximum, Double(x.scalars[base + i])) }
      var exps = [Double](repeating: 0, count: width)
      var sum = 0.0
      for i in 0..<width {
        exps[i] = exp(Double(x.scalars[base + i]) - maximum)
        sum += exps[i]
      }
      for i in 0..<width { y[base + i] = Float(exps[i] / sum) }
    }
    return Tensor(shape: x.shape, scalars: y)
  }

  /// Exact GELU: `0.5·x·(1 + erf(x/√2))`.
  static func gelu(_ x: Float) -> Float {
    let v = Double(x)
    return Float(0.5 * v * (1 + erf(v / 2.0.squareRoot())))
  }

  /// `[n, parts·C] -> parts × [heads, n, d]`; head h, part s, element j is column `s·C + h·d + j`.
  static func splitHeads(_ x: Tensor, heads: Int, parts: Int) -> [Tensor] {
    let (rows, width) = (x.shape[0], x.shape[1])
    let partWidth = width / parts
    let headWidth = partWidth / heads
    return (0..<parts).map { s in
      var y = [Float](repeating: 0, count: heads * rows * headWidth)
      for h in 0..<heads {
        for n in 0..<rows {
          for j in 0..<headWidth {
            y[(h * rows + n) * headWidth + j] = x.scalars[n * width + s * partWidth + h * headWidth + j]
          }
        }
      }
      return Tensor(shape: [heads, rows, headWidth], scalars: y)
    }
  }

  /// `[heads, n, d] -> [n, heads·d]`, column `h·d + j`.
  static func mergeHeads(_ x: Tensor) -> Tensor {
    let (heads, rows, headWidth) = (x.shape[0], x.shape[1], x.shape[2])
    var y = [Float](repeating: 0, count: x.count)
    for h in 0..<heads {
      for n in 0..<rows {
        for j in 0..<headWidth {
          y[n * heads * headWidth + h * headWidth + j] = x.scalars[(h * rows + n) * headWidth + j]
        }
      }
    }
    return Tensor(shape: [rows, heads * headWidth], scalars: y)
  }

  /// Multi-head attention from qkv [n, 3C]: the same steps as the primitive ops (split, q·kᵀ,
  /// scale, softmax, ·v, merge), composed, so a fused graph interprets like the unfused one.
  /// With `size` (ToMe's proportional attention), `log(size[j])` is added to the scaled logits
  /// of key j before the softmax.
  static func attention(_ qkv: Tensor, heads: Int, scale: Double, size: Tensor? = nil) -> Tensor {
    let parts = splitHeads(qkv, heads: heads, parts: 3)
    let logits = matmul(parts[0], transpose(parts[1]))
    var scaled = Tensor(shape: logits.shape, scalars: logits.scalars.map { Float(Double($0) * scale) })
    if let size {
      let n = size.count
      let bias = size.scalars.map { log(Double($0)) }
      for index in scaled.scalars.indices {
        scaled.scalars[index] = Float(Double(scaled.scalars[index]) + bias[index % n])
      }
    }
    return mergeHeads(matmul(softmax(scaled), parts[2]))
  }
}
