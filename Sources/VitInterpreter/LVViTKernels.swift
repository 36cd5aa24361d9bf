import VitIR

/// The kernels of LV-ViT's ops (SEMANTICS-LVVIT.md §L3), as plain loops with double
/// accumulation like the rest of the interpreter.
enum LVViTKernels {
  /// Conv2d with zero padding: each output pixel's receptive field, in the weight's (ci, ky, kx)
  /// order, as a row of a matrix, then one `linear`. Out-of-map taps read 0.
  static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, pad: Int) -> Tensor {
    let (channels, height, width) = (x.shape[0], x.shape[1], x.shape[2])
    let (outChannels, kernel) = (weight.shape[0], weight.shape[2])
    let outH = (height + 2 * pad - kernel) / stride + 1
    let outW = (width + 2 * pad - kernel) / stride + 1
    let field = channels * kernel * kernel
    var columns = [Float](repeating: 0, count: outH * outW * field)
    for oy in 0..<outH {
      for ox in 0..<outW {
        let row = (oy * outW + ox) * field
        for ci in 0..<channels {
          for ky in 0..<kernel {
            let iy = oy * stride + ky - pad
            guard iy >= 0, iy < height else { continue }
            for kx in 0..<kernel {
              let ix = ox * stride + kx - pad
              guard ix >= 0, ix < width else { continue }
              columns[row + (ci * kernel + ky) * kernel + kx] = x.scalars[(ci * height + iy) * width + ix]
            }
          }
        }
      }
    }
    let flat = Kernels.linear(
      Tensor(shape: [outH * outW, field], scalars: columns),
      weight: Tensor(shape: [outChannels, field], scalars: weight.scalars), bias: bias)
    // [pixels, Co] -> [Co, Ho, Wo]
    var y = [Float](repeating: 0, count: outChannels * outH * outW)
    for pixel in 0..<(outH * outW) {
      for o in 0..<outChannels { y[o * outH * outW + pixel] = flat.scalars[pixel * outChannels + o] }
    }
    return Tensor(shape: [outChannels, outH, outW], scalars: y)
  }

  /// BatchNorm in eval form, `(x − mean)/√(var + eps)·weight + bias` per channel, in double.
  static func batchnorm(_ x: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, variance: Tensor, eps: Double) -> Tensor {
    let channels = x.shape[0]
    let plane = x.count / channels
    var y = x.scalars
    for c in 0..<channels {
      let inverse = 1 / (Double(variance.scalars[c]) + eps).squareRoot()
      for i in c * plane..<(c + 1) * plane {
        y[i] = Float((Double(x.scalars[i]) - Double(mean.scalars[c])) * inverse * Double(weight.scalars[c]) + Double(bias.scalars[c]))
      }
    }
    return Tensor(shape: x.shape, scalars: y)
  }

  static func relu(_ x: Tensor) -> Tensor {
    Tensor(shape: x.shape, scalars: x.scalars.map { $0 > 0 ? $0 : 0 })
  }

  /// For each class k, max over the rows 1 … n−1 of `x·Wᵀ + b`; 0 when no patch token is left
  /// (AS-ViT may drop them all: the logits are then the cls head's, docs/methods.md).
  static func auxHeadMax(_ x: Tensor, weight: Tensor, bias: Tensor) -> Tensor {
    let (n, width) = (x.shape[0], x.shape[1])
    let classes = weight.shape[0]
    if n == 1 { return Tensor(zeros: [classes]) }
    let patches = Tensor(shape: [n - 1, width], scalars: Array(x.scalars[width...]))
    let aux = Kernels.linear(patches, weight: weight, bias: bias)
    var y = [Float](repeating: -.infinity, count: classes)
    for t in 0..<(n - 1) {
      for k in 0..<classes { y[k] = max(y[k], aux.scalars[t * classes + k]) }
    }
    return Tensor(shape: [classes], scalars: y)
  }
}
