import Foundation
import VitIR

/// Deterministic stand-in weights for tests and benchmarks (`--random-weights SEED`),
/// documented in docs/random-weights.md.
///
/// Each parameter gets its own stream, seeded from SEED and the parameter's name, so a value
/// never depends on the order of declarations. The scale of each tensor follows its role in
/// the graph (found from the op that uses it), chosen so that activations stay near unit
/// variance and attention is far from uniform: timm's default init (std 0.02) gives almost
/// uniform attention, which would make every pruning test meaningless.
public enum RandomWeights {
  /// Variance gain of the projection feeding `split_heads` (q, k, v): the attention logits
  /// q·k·d^-0.5 then have a standard deviation of about `qkvGain`.
  public static let qkvGain = 3.0

  /// How a parameter is used, which decides its distribution.
  public enum Role: Equatable, Sendable {
    /// Weight of a linear or patch embedding: N(0, gain/fan_in).
    case projection(fanIn: Int, gain: Double)
    /// Bias of a linear or patch embedding: N(0, 0.02²).
    case bias
    /// LayerNorm weight: 1 + N(0, 0.1²).
    case normWeight
    /// LayerNorm bias: N(0, 0.1²).
    case normBias
    /// Anything used otherwise (cls token, position embedding): N(0, 0.5²).
    case embedding
    /// BatchNorm's running variance: |1 + N(0, 0.1²)|.
    case variance
  }

  /// The role of every parameter, from its first use.
  public static func roles(of graph: Graph) -> [String: Role] {
    var feedsSplit = Set<ValueID>()
    // The qkv projection, before attention fusion (split_heads) or after it (attention), so
    // that every stage of the pipeline draws the same weights.
    for op in graph.ops where op.kind == .splitHeads || op.kind == .attention { feedsSplit.insert(op.operands[0]) }
    var roles: [String: Role] = [:]
    for op in graph.ops {
      for (position, operand) in op.operands.enumerated() where graph[operand].origin == .parameter {
        let name = graph[operand].name
        if roles[name] != nil { continue }
        let shape = graph.type(of: operand).fixedShape!
        switch (op.kind, position) {
        case (.linear, 1), (.linearGelu, 1), (.linearAdd, 1), (.linearScaleAdd, 1):
          let gain = feedsSplit.contains(op.results[0]) ? qkvGain : 1
          roles[name] = .projection(fanIn: shape[1], gain: gain)
        case (.patchEmbed, 1):
          roles[name] = .projection(fanIn: shape.dropFirst().reduce(1, *), gain: 1)
        case (.linear, 2), (.linearGelu, 2), (.linearAdd, 2), (.linearScaleAdd, 2), (.patchEmbed, 2): roles[name] = .bias
        case (.layernorm, 1): roles[name] = .normWeight
        case (.layernorm, 2): roles[name] = .normBias
        // LV-ViT: the stem's convolutions, BatchNorm (affine like a norm; the running mean
        // near 0 and the running variance near 1, positive), the aux head's linear.
        case (.conv2d, 1), (.auxHeadMax, 1):
          roles[name] = .projection(fanIn: shape.dropFirst().reduce(1, *), gain: 1)
        case (.conv2d, 2), (.auxHeadMax, 2): roles[name] = .bias
        case (.batchnorm, 1): roles[name] = .normWeight
        case (.batchnorm, 2), (.batchnorm, 3): roles[name] = .normBias
        case (.batchnorm, 4): roles[name] = .variance
        default: roles[name] = .embedding
        }
      }
    }
    return roles
  }

  /// A tensor for every parameter of the graph.
  public static func generate(for graph: Graph, seed: UInt64) -> [String: Tensor] {
    let roles = roles(of: graph)
    var weights: [String: Tensor] = [:]
    for parameter in graph.parameters {
      let value = graph[parameter]
      let shape = value.type.fixedShape!
      var generator = SplitMix64(seed: seed, name: value.name)
      let (mean, std): (Double, Double) =
        switch roles[value.name] ?? .embedding {
        case .projection(let fanIn, let gain): (0, (gain / Double(fanIn)).squareRoot())
        case .bias: (0, 0.02)
        case .normWeight: (1, 0.1)
        case .normBias: (0, 0.1)
        case .embedding: (0, 0.5)
        case .variance: (1, 0.1)
        }
      let count = shape.reduce(1, *)
      var scalars = [Float](repeating: 0, count: count)
      for i in 0..<count { scalars[i] = Float(mean + std * generator.nextNormal()) }
      if roles[value.name] == .variance { scalars = scalars.map { abs($0) } }
      weights[value.name] = Tensor(shape: shape, scalars: scalars)
    }
    return weights
  }
}

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, fast and the same on every platform.
public struct SplitMix64: Sendable {
  private var state: UInt64

  /// A stream for one named tensor: the state starts at SEED mixed with FNV-1a of the name.
  public init(seed: UInt64, name: String) {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in name.utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x0000_0100_0000_01b3
    }
    self.state = seed ^ hash
  }

  public mutating func next() -> UInt64 {
    state = state &+ 0x9e37_79b9_7f4a_7c15
    var z = state
    z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
    z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
    return z ^ (z >> 31)
  }

  /// Uniform in (0, 1], 53 bits.
  public mutating func nextUniform() -> Double {
    (Double(next() >> 11) + 1) * 0x1p-53
  }

  /// Standard normal by Box-Muller (one value per two uniforms, no caching).
  public mutating func nextNormal() -> Double {
    let u1 = nextUniform()
    let u2 = nextUniform()
    return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
  }
}
