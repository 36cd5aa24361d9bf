import VitIR

/// The kept-token map of DynamicViT's Figure 5, exactly as docs/kept-map.md defines it: the
/// model input back in 8-bit RGB, then one panel per trace stage in which dropped patches are
/// washed out towards white and every token that stands for several patches is outlined in
/// one colour. Runtime/main/main.c (`--kept-map`) implements the same definition in C; the
/// two outputs are byte-identical (Tests/VitcTests/KeptMapTests.swift).
public enum KeptMap {
  /// White pixels between two panels.
  public static let gap = 4

  /// Outline colours, RGB; a token's colour is `palette[smallest patch id % 12]`.
  public static let palette: [(UInt8, UInt8, UInt8)] = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60),
    (0, 128, 128), (170, 110, 40), (128, 0, 0), (0, 0, 128),
  ]

  /// The side of the patch grid for `patches` patches over an `height`×`width` input, and the
  /// patch height and width. Throws unless the grid is square and divides the input.
  public static func grid(patches: Int, height: Int, width: Int) throws(KeptMapError) -> (side: Int, patchHeight: Int, patchWidth: Int) {
    guard patches > 0 else { throw .notSquare(patches: patches) }
    var side = Int(Double(patches).squareRoot())
    while side * side > patches { side -= 1 }
    while (side + 1) * (side + 1) <= patches { side += 1 }
    guard side * side == patches else { throw .notSquare(patches: patches) }
    guard height % side == 0, width % side == 0 else {
      throw .notDividing(side: side, height: height, width: width)
    }
    return (side, height / side, width / side)
  }

  /// One model input value back to an 8-bit sample: `v = x·s + m` and `w = v·255` in IEEE
  /// double (s, m: the float32 std and mean of channel c, widened), NaN and w ≤ 0 → 0,
  /// w ≥ 255 → 255, else w rounded half away from zero.
  static func sample(_ x: Float, channel c: Int, transform: ImageTransform = .deit) -> UInt8 {
    let v = Double(x) * Double(Float(transform.std[c])) + Double(Float(transform.mean[c]))
    let w = v * 255
    if !(w > 0) { return 0 }
    if w >= 255 { return 255 }
    return UInt8(w.rounded(.toNearestOrAwayFromZero))
  }

  /// The picture as PPM (P6) bytes. `input` is the normalized model input [3,H,W] (what the
  /// model ran on), `stages` the trace's stages in order, `patches` the number P of patches,
  /// `transform` the normalization the input went through.
  public static func render(
    input: Tensor, stages: [Trace.Stage], patches: Int, transform: ImageTransform = .deit
  ) throws(KeptMapError) -> [UInt8] {
    guard input.shape.count == 3, input.shape[0] == 3, input.shape[1] > 0, input.shape[2] > 0 else {
      throw .notAnImage(shape: input.shape)
    }
    let (height, width) = (input.shape[1], input.shape[2])
    let (side, ph, pw) = try grid(patches: patches, height: height, width: width)
    let line = max(1, min(ph, pw) / 8)

    // The image, [y][x][c].
    var base = [UInt8](repeating: 0, count: height * width * 3)
    for c in 0..<3 {
      for y in 0..<height {
        for x in 0..<width {
          base[(y * width + x) * 3 + c] = sample(input.scalars[(c * height + y) * width + x], channel: c, transform: transform)
        }
      }
    }

    let panels = stages.count + 1
    let total = panels * width + stages.count * gap
    var out = [UInt8](repeating: 255, count: total * height * 3)
    func put(panel: Int, y: Int, x: Int, _ r: UInt8, _ g: UInt8, _ b: UInt8) {
      let at = (y * total + panel * (width + gap) + x) * 3
      out[at] = r
      out[at + 1] = g
      out[at + 2] = b
    }
    for y in 0..<height {
      for x in 0..<width {
        let at = (y * width + x) * 3
        put(panel: 0, y: y, x: x, base[at], base[at + 1], base[at + 2])
      }
    }

    for (index, stage) in stages.enumerated() {
      var owner = [Int](repeating: -1, count: patches)
      for (token, ids) in stage.patches.enumerated() {
        for id in ids {
          guard id >= 0, id < patches else { throw .patchOutOfRange(stage: index, token: token, id: id, patches: patches) }
          owner[id] = token
        }
      }
      // other(gy, gx, t): the grid cell is outside the grid or not owned by token t.
      func other(_ gy: Int, _ gx: Int, _ token: Int) -> Bool {
        gy < 0 || gy >= side || gx < 0 || gx >= side || owner[gy * side + gx] != token
      }
      for y in 0..<height {
        for x in 0..<width {
          let (gy, gx, py, px) = (y / ph, x / pw, y % ph, x % pw)
          let token = owner[gy * side + gx]
          let at = (y * width + x) * 3
          let (r, g, b) = (base[at], base[at + 1], base[at + 2])
          if token < 0 {
            put(panel: index + 1, y: y, x: x, UInt8((Int(r) + 765) / 4), UInt8((Int(g) + 765) / 4), UInt8((Int(b) + 765) / 4))
            continue
          }
          let ids = stage.patches[token]
          if ids.count > 1 {
            let up = py < line, down = py >= ph - line, left = px < line, right = px >= pw - line
            let boundary =
              (up && other(gy - 1, gx, token)) || (down && other(gy + 1, gx, token))
              || (left && other(gy, gx - 1, token)) || (right && other(gy, gx + 1, token))
              || (up && left && other(gy - 1, gx - 1, token)) || (up && right && other(gy - 1, gx + 1, token))
              || (down && left && other(gy + 1, gx - 1, token)) || (down && right && other(gy + 1, gx + 1, token))
            if boundary {
              let colour = palette[ids.min()! % palette.count]
              put(panel: index + 1, y: y, x: x, colour.0, colour.1, colour.2)
              continue
            }
          }
          put(panel: index + 1, y: y, x: x, r, g, b)
        }
      }
    }
    return Array("P6\n\(total) \(height)\n255\n".utf8) + out
  }
}

/// Why a kept map cannot be drawn.
public enum KeptMapError: Error, Equatable, CustomStringConvertible {
  case notAnImage(shape: [Int])
  case notSquare(patches: Int)
  case notDividing(side: Int, height: Int, width: Int)
  case patchOutOfRange(stage: Int, token: Int, id: Int, patches: Int)

  public var description: String {
    switch self {
    case .notAnImage(let shape):
      "error: --kept-map needs an image input [3,H,W], the model takes \(shape)"
    case .notSquare(let patches):
      "error: --kept-map needs a square patch grid, the model has \(patches) patches"
    case .notDividing(let side, let height, let width):
      "error: --kept-map: a \(side)x\(side) patch grid does not divide the \(height)x\(width) input"
    case .patchOutOfRange(let stage, let token, let id, let patches):
      "error: --kept-map: stage \(stage), token \(token) names patch \(id), outside 0..<\(patches)"
    }
  }
}
