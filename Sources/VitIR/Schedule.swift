/// A token-pruning schedule: which method, with which arguments, at which blocks
/// (`--prune SPEC`, docs/methods.md). Parsed by VitFrontend's `ScheduleParser`, applied by
/// VitPasses' `InsertPruning`.
public struct Schedule: Sendable, Equatable {
  /// The methods and their arguments (SEMANTICS.md §2–§6).
  public enum Method: Sendable, Equatable {
    /// Dense: no pruning.
    case none
    /// DynamicViT: predictor MLPs before each location; stage s keeps int(P·ρ^(s+1)) patches.
    case dyvit(rho: Double)
    /// EViT: inside each location after the attention residual, keep ceil(ρ·(N−1)) tokens by
    /// cls attention, plus (with `fuse`) one token fusing the others.
    case evit(rho: Double, fuse: Bool)
    /// AS-ViT: before each location, keep the tokens whose head-weighted cls attention is above
    /// the stage's threshold (one per location, always resolved: from the spec, from the
    /// weights' `score_predictor.{s}.keep_threshold`, or the official initial values).
    case asvit(thresholds: [Double])
    /// BAT: EViT's split, similar attentive pairs merged, inattentive tokens clustered; n_c =
    /// ceil(clusterFraction·M) clusters.
    case bat(rho: Double, clusterFraction: Double)
    /// ToMe: `r[i]` merges in the i-th location's block.
    case tome(r: [Int])
  }

  public var method: Method
  /// 0-based blocks the method acts at (before them for DynamicViT and AS-ViT, inside them for
  /// EViT, BAT and ToMe), ascending.
  public var locations: [Int]
  /// The spec as the user wrote it (the trace's `method`).
  public var spec: String

  public init(method: Method, locations: [Int], spec: String) {
    self.method = method
    self.locations = locations
    self.spec = spec
  }

  /// The dense schedule.
  public static let none = Schedule(method: .none, locations: [], spec: "none")

  /// The method, without its arguments.
  public var kind: MethodKind {
    switch method {
    case .none: .none
    case .dyvit: .dyvit
    case .evit: .evit
    case .asvit: .asvit
    case .bat: .bat
    case .tome: .tome
    }
  }
}

/// The pruning methods by name; the raw value is the spelling in `--prune` specs.
public enum MethodKind: String, Sendable, CaseIterable {
  case none, dyvit, evit, asvit, bat, tome

  /// The locations the method uses unless the spec gives `@L1,L2,…`, for a model of `depth`
  /// blocks (the papers' DeiT placements: 3, 6, 9 and AS-ViT's 4, 7, 10; ToMe every block).
  public func defaultLocations(depth: Int) -> [Int] {
    switch self {
    case .none: []
    case .asvit: [4, 7, 10]
    case .tome: Array(0..<depth)
    case .dyvit, .evit, .bat: [3, 6, 9]
    }
  }

  /// The locations for a model of `depth` blocks on `backbone`. LV-ViT (SEMANTICS-LVVIT
  /// §L4–§L7) puts DynamicViT before, and EViT and BAT inside, the blocks at a quarter, half and
  /// three quarters of the depth (4, 8, 12 of LV-ViT-S's 16; 5, 10, 15 of LV-ViT-M's 20), and
  /// AS-ViT one block later (5, 9, 13 / 6, 11, 16); ToMe acts in every block.
  public func defaultLocations(depth: Int, backbone: Backbone) -> [Int] {
    switch (backbone, self) {
    case (.deit, _), (.lvvit, .none), (.lvvit, .tome): defaultLocations(depth: depth)
    case (.lvvit, .dyvit), (.lvvit, .evit), (.lvvit, .bat): [depth / 4, depth / 2, 3 * depth / 4]
    case (.lvvit, .asvit): [depth / 4 + 1, depth / 2 + 1, 3 * depth / 4 + 1]
    }
  }

  /// The method's name as its paper writes it, for messages.
  public var displayName: String {
    switch self {
    case .none: "no pruning"
    case .dyvit: "DynamicViT"
    case .evit: "EViT"
    case .asvit: "AS-ViT"
    case .bat: "BAT"
    case .tome: "ToMe"
    }
  }

  /// Whether the method scores patches by the class token's attention (EViT, AS-ViT, BAT), so
  /// needs a model with a class token (TokenLayout.hasClassToken).
  public var needsClassToken: Bool {
    switch self {
    case .evit, .asvit, .bat: true
    case .none, .dyvit, .tome: false
    }
  }

  /// AS-ViT's official initial thresholds, 0.001·(s+1) for stage s (SEMANTICS.md §4.4): what
  /// `asvit` without thresholds uses when no weights give learned ones.
  public static func asvitInitialThresholds(stages: Int) -> [Double] {
    (0..<stages).map { 0.001 * Double($0 + 1) }
  }
}

/// The backbone a graph is, as far as the pruning methods' default placements go.
public enum Backbone: String, Sendable {
  /// DeiT / timm's VisionTransformer: the papers' DeiT placements.
  case deit
  /// LV-ViT (SEMANTICS-LVVIT.md), recognised by its eval head (`aux_head_max`).
  case lvvit
}

extension Graph {
  /// LV-ViT when the graph has LV-ViT's auxiliary head, DeiT otherwise.
  public var backbone: Backbone { ops.contains { $0.kind == .auxHeadMax } ? .lvvit : .deit }
}
