/// A dense, row-major float32 tensor with concrete dimensions: weights, inputs and the values
/// the interpreter computes. (Graph values have a `TensorType`, which may be dynamic; a `Tensor`
/// is always concrete.)
public struct Tensor: Equatable, Sendable {
  /// Concrete dimensions, outermost first.
  public var shape: [Int]
  /// `shape.reduce(1, *)` elements in row-major order.
  public var scalars: [Float]

  public init(shape: [Int], scalars: [Float]) {
    precondition(
      shape.reduce(1, *) == scalars.count,
      "tensor of shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
    self.shape = shape
    self.scalars = scalars
  }

  /// A tensor of zeros.
  public init(zeros shape: [Int]) {
    self.init(shape: shape, scalars: [Float](repeating: 0, count: shape.reduce(1, *)))
  }

  /// Number of elements.
  public var count: Int { scalars.count }
}

/// Formats a concrete shape the way the textual IR does: `[3,224,224]`.
public func formatShape(_ dims: [Int]) -> String {
  "[" + dims.map(String.init).joined(separator: ",") + "]"
}
