import VitIR

extension ModelEmitter {
  /// The runtime's code for a weight's storage (vit_weights.h, `format`).
  static func formatCode(_ precision: Precision) -> Int {
    switch precision {
    case .f32: 0
    case .int8: 1
    case .bf16: 2
    }
  }

  /// How a comment names a GEMM weight's storage.
  static func storage(_ precision: Precision) -> String {
    switch precision {
    case .f32: "packed for GEMM"
    case .int8: "int8 block"
    case .bf16: "bf16 panels"
    }
  }

  /// The table of tensors a model compiled without weights reads (sorted by name, for the
  /// runtime's binary search: name, declared shape, GEMM packing, place in the blob) and
  /// `vit_<model>_load_weights`, which hands it to vit_weights_load (Runtime/src/vit_weights.c).
  func weightsLoader(into w: inout CWriter) throws(EmitError) {
    struct Row {
      var name: String
      var rank: Int
      var shape: [Int]
      var packed: (n: Int, k: Int)?
      var precision = Precision.f32
      var destination: String
      var comment: String
    }
    var rows: [Row] = []
    for parameter in graph.parameters {
      let entry = blob.entries[parameter]!
      let shape = graph.type(of: parameter).fixedShape ?? []
      guard shape.count <= 4 else {
        throw .parameterRank(entry.name, rank: shape.count, at: graph[parameter].location)
      }
      let layout = entry.packed.map { "\(Self.storage(entry.precision)): n=\($0.n), k=\($0.k)" } ?? "as stored"
      rows.append(Row(
        name: entry.name, rank: shape.count, shape: shape, packed: entry.packed, precision: entry.precision,
        destination: "vit_\(model)_weights + \(entry.offset / 4)", comment: "\(graph.type(of: parameter)), \(layout)"))
    }
    for (index, stage) in loadedThresholdStages.enumerated() {
      rows.append(Row(
        name: "score_predictor.\(stage).keep_threshold", rank: -1, shape: [], packed: nil,
        destination: "vit_thresholds + \(index)", comment: "one element, any shape: AS-ViT's keep threshold of stage \(stage)"))
    }
    rows.sort { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
    w.comment([
      "The \(rows.count) tensors the model reads, sorted by name (the loader finds them by binary search):",
      "name, rank (-1: any shape of one element), declared shape, GEMM packing (n, k, panel width),",
      "the format it is stored in (0 float32, 1 an int8 block of vit_qgemm.h, 2 bf16 panels of",
      "vit_bf16.h), and where the values go.",
    ])
    w.line("static const struct vit_tensor_spec vit_tensors[\(rows.count)] = {")
    for row in rows {
      let dims = (row.shape + [Int](repeating: 0, count: 4 - row.shape.count)).map(String.init).joined(separator: ", ")
      let packing = row.packed.map { "\($0.n), \($0.k), \(WeightBlob.panelWidth)" } ?? "0, 0, 0"
      w.line("  {\(EmitC.cString(row.name)), \(row.rank), {\(dims)}, \(packing), \(Self.formatCode(row.precision)), \(row.destination)}, /* \(row.comment) */")
    }
    w.line("};")
    w.line()
    let thresholds = !loadedThresholdStages.isEmpty
    w.block("int vit_\(model)_load_weights(const void *file, size_t bytes, struct vit_weights_report *report)") { w in
      w.line("vit_\(model)_loaded = 0;")
      let blob = thresholds ? "NULL /* a vitc weights file has no thresholds */" : "vit_\(model)_weights"
      w.line("if (vit_weights_load(file, bytes, vit_tensors, \(rows.count), \(blob), VIT_\(upper)_WEIGHT_BYTES, report) != 0) return -1;")
      w.line("vit_\(model)_loaded = 1;")
      w.line("return 0;")
    }
    w.line()
  }
}
