import Foundation
import VitIR

/// The interpreter's loops for the token-pruning ops (OpKind, docs/methods.md). Rows are
/// tokens; the first `prefix` rows are prefix tokens (TokenLayout: the cls token is row 0, a
/// distillation token row 1), which no kernel drops, merges or moves; "patch tokens" are the
/// rows after them and score j belongs to row prefix + j. Index and owner tensors hold integers as floats (exact below
/// 2^24). Scores, distances and merges accumulate in double and are stored as float32, like
/// every other interpreter kernel.
enum PruningKernels {
  // MARK: - helpers

  static func rowsOf(_ x: Tensor) -> (n: Int, c: Int) { (x.shape[0], x.shape[1]) }

  static func row(_ x: Tensor, _ r: Int) -> ArraySlice<Float> {
    let c = x.shape[1]
    return x.scalars[(r * c)..<((r + 1) * c)]
  }

  /// Indices of `scores` sorted by descending score, equal scores by ascending index (what a
  /// stable descending sort gives; SEMANTICS §2.3 and §3.3 recommend it for PyTorch's
  /// unspecified order).
  static func descendingOrder(_ scores: [Float]) -> [Int] {
    scores.indices.sorted { a, b in scores[a] != scores[b] ? scores[a] > scores[b] : a < b }
  }

  /// Post-softmax attention of query row 0 for head h over all n keys, computed exactly as the
  /// attention op's interpreter kernel does (float logits, scaled, double softmax).
  static func clsRow(_ qkv: Tensor, head h: Int, heads: Int, scale: Double, keyBias: [Double]? = nil) -> [Float] {
    let (n, width) = (qkv.shape[0], qkv.shape[1])
    let c = width / 3
    let d = c / heads
    var logits = [Double](repeating: 0, count: n)
    for t in 0..<n {
      var sum = 0.0
      for j in 0..<d {
        sum += Double(qkv.scalars[h * d + j]) * Double(qkv.scalars[t * width + c + h * d + j])
      }
      var logit = Double(Float(Double(Float(sum)) * scale))
      if let keyBias { logit = Double(Float(logit + keyBias[t])) }
      logits[t] = logit
    }
    let maximum = logits.max() ?? 0
    let exps = logits.map { exp($0 - maximum) }
    let total = exps.reduce(0, +)
    return exps.map { Float($0 / total) }
  }

  /// Cosine similarity as vit_prune.h defines it, `a·b / √((a·a)(b·b))`, 0 when a row is all
  /// zero: identical rows give exactly 1 whatever else is summed, so duplicate tokens tie
  /// exactly and the tie rules decide (with ‖a‖‖b‖ they would differ by rounding).
  static func cosine(_ a: [Double], _ b: [Double]) -> Double {
    var (ab, aa, bb) = (0.0, 0.0, 0.0)
    for i in a.indices {
      ab += a[i] * b[i]
      aa += a[i] * a[i]
      bb += b[i] * b[i]
    }
    return aa > 0 && bb > 0 ? ab / (aa * bb).squareRoot() : 0
  }

  // MARK: - scores

  /// `patch_tokens`: rows prefix … n−1.
  static func patchTokens(_ x: Tensor, prefix: Int) -> Tensor {
    let (n, c) = rowsOf(x)
    return Tensor(shape: [n - prefix, c], scalars: Array(x.scalars[(prefix * c)...]))
  }

  /// `dyvit_mix`: the local half as it is, the global half replaced by its mean over rows.
  static func dyvitMix(_ u: Tensor) -> Tensor {
    let (m, c) = rowsOf(u)
    var mean = [Double](repeating: 0, count: c)
    for r in 0..<m { for j in (c / 2)..<c { mean[j] += Double(u.scalars[r * c + j]) } }
    var y = u.scalars
    for r in 0..<m { for j in (c / 2)..<c { y[r * c + j] = Float(mean[j] / Double(m)) } }
    return Tensor(shape: u.shape, scalars: y)
  }

  /// `keep_score`: log_softmax(l)[0] per row, the way PyTorch evaluates it.
  static func keepScore(_ l: Tensor) -> Tensor {
    let m = l.shape[0]
    var s = [Float](repeating: 0, count: m)
    for i in 0..<m {
      let (l0, l1) = (Double(l.scalars[2 * i]), Double(l.scalars[2 * i + 1]))
      let top = max(l0, l1)
      s[i] = Float((l0 - top) - log(exp(l0 - top) + exp(l1 - top)))
    }
    return Tensor(shape: [m], scalars: s)
  }

  /// `cls_attention`: the cls query's attention averaged over heads, for the patch-token keys
  /// prefix … n−1 (the softmax runs over every key, prefix tokens included).
  static func clsAttention(_ qkv: Tensor, heads: Int, scale: Double, prefix: Int) -> Tensor {
    let n = qkv.shape[0]
    var sum = [Double](repeating: 0, count: n)
    for h in 0..<heads {
      let a = clsRow(qkv, head: h, heads: heads, scale: scale)
      for t in 0..<n { sum[t] += Double(a[t]) }
    }
    return Tensor(shape: [n - prefix], scalars: (prefix..<n).map { Float(sum[$0] / Double(heads)) })
  }

  /// `asvit_scores`: Σ_h A_h[0][1+j] · R_h[1+j], R_h the head's share of the context norms.
  static func asvitScores(_ qkv: Tensor, context: Tensor, heads: Int, scale: Double, prefix: Int) -> Tensor {
    let n = qkv.shape[0]
    let c = context.shape[1]
    let d = c / heads
    let attention = (0..<heads).map { clsRow(qkv, head: $0, heads: heads, scale: scale) }
    var s = [Float](repeating: 0, count: n - prefix)
    for t in prefix..<n {
      var norms = [Double](repeating: 0, count: heads)
      for h in 0..<heads {
        var squares = 0.0
        for j in 0..<d { squares += Double(context.scalars[t * c + h * d + j]) * Double(context.scalars[t * c + h * d + j]) }
        norms[h] = squares.squareRoot()
      }
      let total = norms.reduce(0, +)
      var score = 0.0
      for h in 0..<heads { score += Double(attention[h][t]) * (norms[h] / (total + 1e-8)) }
      s[t - prefix] = Float(score)
    }
    return Tensor(shape: [n - prefix], scalars: s)
  }

  /// `tome_metric`: the keys averaged over heads, [n, d].
  static func tomeMetric(_ qkv: Tensor, heads: Int) -> Tensor {
    let (n, width) = (qkv.shape[0], qkv.shape[1])
    let c = width / 3
    let d = c / heads
    var y = [Float](repeating: 0, count: n * d)
    for t in 0..<n {
      for j in 0..<d {
        var sum = 0.0
        for h in 0..<heads { sum += Double(qkv.scalars[t * width + c + h * d + j]) }
        y[t * d + j] = Float(sum / Double(heads))
      }
    }
    return Tensor(shape: [n, d], scalars: y)
  }

  // MARK: - selection

  static func topkKeep(_ scores: Tensor, k: Int) -> Tensor {
    Tensor(shape: [k], scalars: descendingOrder(scores.scalars).prefix(k).map(Float.init))
  }

  static func thresholdKeep(_ scores: Tensor, threshold: Double) -> Tensor {
    let theta = Float(threshold)
    let kept = scores.scalars.indices.filter { scores.scalars[$0] > theta }
    return Tensor(shape: [kept.count], scalars: kept.map(Float.init))
  }

  // MARK: - token rewriting

  /// The owner map after a rewrite in which old row t went to `newRow[t]` (−1: dropped).
  static func remapOwner(_ owner: Tensor, _ newRow: [Int]) -> Tensor {
    Tensor(
      shape: owner.shape,
      scalars: owner.scalars.map { value in
        let row = Int(value)
        return row >= 0 ? Float(newRow[row]) : -1
      })
  }

  static func gatherTokens(_ x: Tensor, keep: Tensor, owner: Tensor, fuseScores: Tensor?, prefix: Int) -> [Tensor] {
    let (n, c) = rowsOf(x)
    let kept = keep.scalars.map { Int($0) }
    var y = Array(x.scalars[0..<(prefix * c)])
    var newRow = [Int](repeating: -1, count: n)
    for t in 0..<prefix { newRow[t] = t }
    for (i, j) in kept.enumerated() {
      y += row(x, prefix + j)
      newRow[prefix + j] = prefix + i
    }
    var rows = kept.count + prefix
    if let scores = fuseScores {
      let keptSet = Set(kept)
      var extra = [Double](repeating: 0, count: c)
      for j in 0..<(n - prefix) where !keptSet.contains(j) {
        let weight = Double(scores.scalars[j])
        for i in 0..<c { extra[i] += weight * Double(x.scalars[(prefix + j) * c + i]) }
        newRow[prefix + j] = kept.count + prefix
      }
      y += extra.map { Float($0) }
      rows += 1
    }
    return [Tensor(shape: [rows, c], scalars: y), remapOwner(owner, newRow)]
  }

  /// BAT, exactly docs/methods.md (SEMANTICS §5.3).
  static func batMerge(
    _ x: Tensor, scores: Tensor, owner: Tensor, k: Int, clusters: Int, pairs: Int, prefix: Int
  ) -> [Tensor] {
    let (n, c) = rowsOf(x)
    let s = scores.scalars
    let attentive = Array(descendingOrder(s).prefix(k))  // patch-token indices j (row prefix + j)
    let attentiveSet = Set(attentive)
    let inattentive = (0..<(n - prefix)).filter { !attentiveSet.contains($0) }
    func feature(_ j: Int) -> [Double] { row(x, prefix + j).map(Double.init) }
    func merge(_ members: [Int]) -> [Float] {
      var sum = [Double](repeating: 0, count: c)
      var weight = 0.0
      for j in members {
        let w = Double(s[j])
        weight += w
        for (i, value) in feature(j).enumerated() { sum[i] += w * value }
      }
      return sum.map { Float($0 / (weight + 1e-6)) }
    }

    // Pairs: greedy disjoint matching on cosine similarity, largest first, ties to the
    // lexicographically smallest (a, b) in attentive order.
    let features = attentive.map(feature)
    var candidates: [(sim: Double, a: Int, b: Int)] = []
    if pairs > 0 {
      for a in 0..<k {
        for b in (a + 1)..<k {
          candidates.append((cosine(features[a], features[b]), a, b))
        }
      }
      candidates.sort { $0.sim != $1.sim ? $0.sim > $1.sim : ($0.a, $0.b) < ($1.a, $1.b) }
    }
    var used = Set<Int>()
    var chosen: [(Int, Int)] = []
    for candidate in candidates where chosen.count < pairs {
      if used.contains(candidate.a) || used.contains(candidate.b) { continue }
      used.formUnion([candidate.a, candidate.b])
      chosen.append((candidate.a, candidate.b))
    }

    // Clusters: DPC-kNN over the inattentive tokens.
    let m = inattentive.count
    let inattentiveFeatures = inattentive.map(feature)
    var distance = [[Double]](repeating: [Double](repeating: 0, count: m), count: m)
    for i in 0..<m {
      for j in 0..<m where j != i {
        var squares = 0.0
        for t in 0..<c {
          let delta = inattentiveFeatures[i][t] - inattentiveFeatures[j][t]
          squares += delta * delta
        }
        distance[i][j] = squares.squareRoot() / Double(c).squareRoot()
      }
    }
    let neighbours = min(5, m)
    let density = (0..<m).map { i -> Double in
      let nearest = distance[i].map { $0 * $0 }.sorted().prefix(neighbours)
      return exp(-nearest.reduce(0, +) / Double(neighbours))
    }
    let peak = (0..<m).map { i -> Double in
      var best = Double.infinity
      for j in 0..<m where density[j] > density[i] || (density[j] == density[i] && j < i) {
        best = min(best, distance[i][j])
      }
      return best.isFinite ? best : (distance[i].max() ?? 0)
    }
    let products = (0..<m).map { density[$0] * peak[$0] }
    let centres = Array(products.indices.sorted { products[$0] != products[$1] ? products[$0] > products[$1] : $0 < $1 }.prefix(clusters))
    var members = [[Int]](repeating: [], count: centres.count)
    for i in 0..<m {
      var assigned = 0
      if let rank = centres.firstIndex(of: i) {
        assigned = rank
      } else {
        for rank in 1..<max(centres.count, 1) where distance[i][centres[rank]] < distance[i][centres[assigned]] {
          assigned = rank
        }
      }
      if !centres.isEmpty { members[assigned].append(inattentive[i]) }
    }

    // Output: prefix; pairs; unpaired attentive (descending s); clusters (centre rank).
    var y = Array(x.scalars[0..<(prefix * c)])
    var newRow = [Int](repeating: -1, count: n)
    for t in 0..<prefix { newRow[t] = t }
    var next = prefix
    for (a, b) in chosen {
      y += merge([attentive[a], attentive[b]])
      newRow[prefix + attentive[a]] = next
      newRow[prefix + attentive[b]] = next
      next += 1
    }
    for a in 0..<k where !used.contains(a) {
      y += row(x, prefix + attentive[a])
      newRow[prefix + attentive[a]] = next
      next += 1
    }
    for group in members {
      y += merge(group)
      for j in group { newRow[prefix + j] = next }
      next += 1
    }
    return [Tensor(shape: [next, c], scalars: y), remapOwner(owner, newRow)]
  }

  /// ToMe's bipartite soft matching (SEMANTICS §6.3), size-weighted merges, prefix tokens
  /// protected: the patch rows split by the parity of their row (a: even, b: odd, as ToMe
  /// splits the whole sequence, whose a-side cls token can never be a source), the prefix rows
  /// stay first and in place.
  static func bipartiteMerge(_ x: Tensor, metric: Tensor, size: Tensor, owner: Tensor, r: Int, prefix: Int) -> [Tensor] {
    let (n, c) = rowsOf(x)
    let d = metric.shape[1]
    let metricRows: [[Double]] = (0..<n).map { t in (0..<d).map { Double(metric.scalars[t * d + $0]) } }
    let evens = (prefix..<n).filter { $0 % 2 == 0 }
    let odds = (prefix..<n).filter { $0 % 2 == 1 }
    var nodeMax = [Float](repeating: 0, count: evens.count)
    var nodeIndex = [Int](repeating: 0, count: evens.count)
    for (i, a) in evens.enumerated() {
      var best = -Float.infinity
      for (j, b) in odds.enumerated() {
        let score = Float(cosine(metricRows[a], metricRows[b]))
        if score > best {
          best = score
          nodeIndex[i] = j
        }
      }
      nodeMax[i] = best
    }
    let order = descendingOrder(nodeMax)
    let sources = Array(order.prefix(r))
    let unmerged = order.dropFirst(r).sorted()
    // Size-weighted sums, then divided by the summed sizes.
    var sums = odds.map { b in row(x, b).map { Double($0) * Double(size.scalars[b]) } }
    var sizes = odds.map { Double(size.scalars[$0]) }
    var newRow = [Int](repeating: -1, count: n)
    for t in 0..<prefix { newRow[t] = t }
    let bStart = prefix + unmerged.count
    for (position, i) in unmerged.enumerated() { newRow[evens[i]] = prefix + position }
    for (j, b) in odds.enumerated() { newRow[b] = bStart + j }
    for i in sources {
      let a = evens[i]
      let j = nodeIndex[i]
      let weight = Double(size.scalars[a])
      for t in 0..<c { sums[j][t] += Double(x.scalars[a * c + t]) * weight }
      sizes[j] += weight
      newRow[a] = bStart + j
    }
    var y = Array(x.scalars[0..<(prefix * c)])
    var outSizes = Array(size.scalars[0..<prefix])
    for i in unmerged {
      y += row(x, evens[i])
      outSizes.append(size.scalars[evens[i]])
    }
    for j in odds.indices {
      y += sums[j].map { Float($0 / sizes[j]) }
      outSizes.append(Float(sizes[j]))
    }
    let rows = prefix + unmerged.count + odds.count
    return [Tensor(shape: [rows, c], scalars: y), Tensor(shape: [rows], scalars: outSizes), remapOwner(owner, newRow)]
  }

  /// The trace stage an owner map describes: for each row after the prefix tokens, its sorted
  /// patches.
  static func traceStage(block: Int, rows: Int, prefix: Int, owner: Tensor) -> Trace.Stage {
    var patches = [[Int]](repeating: [], count: max(rows - prefix, 0))
    for (p, value) in owner.scalars.enumerated() where Int(value) >= prefix {
      patches[Int(value) - prefix].append(p)
    }
    return Trace.Stage(block: block, tokens: rows, patches: patches)
  }
}
