import VitFrontend
import VitIR
import VitPasses

/// The float formats `save-weights` writes.
public enum SavedDType: String, Sendable, CaseIterable {
  case f32 = "F32", f16 = "F16", bf16 = "BF16"
}

extension CompileSession {
  /// The tensors the graph with this schedule reads, as a safetensors file in `dtype` (rounded
  /// to nearest even): seeded random weights written out, or a checkpoint converted for a binary
  /// compiled without weights (which reads safetensors, not PyTorch files). AS-ViT's resolved
  /// thresholds go in as `score_predictor.{s}.keep_threshold`, where the official checkpoints
  /// keep them.
  public func savedWeights(dtype: SavedDType = .f32) throws -> [UInt8] {
    let loaded = try model(at: .planned)
    var tensors = loaded.weights.map { (name: $0.key, tensor: $0.value) }
    if case .asvit(let thresholds) = schedule.method {
      for (stage, threshold) in thresholds.enumerated() {
        tensors.append((InsertPruning.thresholdParameter(stage: stage), Tensor(shape: [1], scalars: [Float(threshold)])))
      }
    }
    return SafetensorsWriter.encode(tensors, dtype: dtype.rawValue)
  }
}
