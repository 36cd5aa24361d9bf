import VitIR

extension ModelEmitter {
  /// Output pixels per band of `vit_conv2d_f32`: whole output rows, about 1024 pixels, so that
  /// a band's im2col columns stay a few MB however large the map is.
  static func convBandRows(outputWidth: Int) -> Int { max(1, 1024 / outputWidth) }

  /// The C of LV-ViT's ops (SEMANTICS-LVVIT.md §L3): the stem's conv2d (runtime kernel: im2col
  /// panels packed straight for the GEMM, the weight as stored), BatchNorm in eval form and ReLU (plain loops), and the aux head's
  /// per-class max over the patch tokens (one GEMM into the scratch, then the max).
  mutating func emitLVViTOp(_ op: Op, into w: inout CWriter) throws(EmitError) {
    let result = op.results[0]
    let y = pointer(result)
    func operand(_ index: Int) -> String { pointer(op.operands[index]) }
    switch op.kind {
    case .conv2d:
      guard graph[op.operands[1]].origin == .parameter else {
        throw .unsupported(op.kind, reason: "the weight must be a parameter", at: op.location)
      }
      guard case .conv2d(let stride, let pad) = op.attributes else { op.attributesMismatch() }
      let x = graph.type(of: op.operands[0]).fixedShape!
      let weight = graph.type(of: op.operands[1]).fixedShape!
      let out = graph.type(of: result).fixedShape!
      let (channels, outChannels, kernel) = (x[0], weight[0], weight[2])
      let band = Self.convBandRows(outputWidth: out[2])
      let field = channels * kernel * kernel
      scratchNeeds.append(
        ScratchNeed(
          what: "conv2d \(channels)->\(outChannels) k=\(kernel) band \(band)x\(out[2])",
          fixed: ScratchNeed.packed(band * out[2], field) + 16,
          macro: "VIT_CONV2D_SCRATCH_FLOATS(\(channels), \(kernel), \(out[2]), \(band))"))
      let bias = op.operands.count > 2 ? operand(2) : "NULL"
      w.line("vit_conv2d_f32(\(operand(0)), \(x[0]), \(x[1]), \(x[2]), \(operand(1)), \(bias), \(outChannels), \(kernel), \(stride), \(pad), \(band), vit_scratch, \(y)); /* \(graph[result].name) \(graph.type(of: result)) */")
    case .batchnorm:
      guard case .batchnorm(let eps) = op.attributes else { op.attributesMismatch() }
      let x = graph.type(of: op.operands[0]).fixedShape!
      let plane = x[1] * x[2]
      w.block("for (int c = 0; c < \(x[0]); c++) /* \(graph[result].name) = batchnorm (eval): x * alpha + beta, as PyTorch's CPU kernel */") { w in
        w.line("const float alpha = (1.0f / sqrtf(\(operand(4))[c] + \(real(eps)))) * \(operand(1))[c];")
        w.line("const float beta = \(operand(2))[c] - \(operand(3))[c] * alpha;")
        w.line("for (int i = 0; i < \(plane); i++) \(y)[c * \(plane) + i] = \(operand(0))[c * \(plane) + i] * alpha + beta;")
      }
    case .relu:
      w.line("for (int i = 0; i < \(count(result)); i++) \(y)[i] = \(operand(0))[i] > 0.0f ? \(operand(0))[i] : 0.0f; /* \(graph[result].name) = relu */")
    case .auxHeadMax:
      guard graph[op.operands[1]].origin == .parameter else {
        throw .unsupported(op.kind, reason: "the weight must be a parameter", at: op.location)
      }
      let width = self.width(op.operands[0])
      let classes = self.width(result)
      let bound = rowCount(op.operands[0]) - 1
      let patches = "(\(rows(op.operands[0])) - 1)"
      scratchNeeds.append(ScratchNeed(what: "aux head on \(bound) patch tokens", fixed: bound * classes))
      w.line("/* \(graph[result].name): the aux head on the patch tokens still present, then per class the max over them (none left: 0) */")
      w.line("vit_linear_f32(\(operand(0)) + \(width), \(patches), \(width), \(operand(1)), \(operand(2)), \(classes), VIT_EPI_NONE, NULL, vit_scratch);")
      w.block("for (int k = 0; k < \(classes); k++)") { w in
        w.line("float best = \(patches) > 0 ? vit_scratch[k] : 0.0f;")
        w.line("for (int t = 1; t < \(patches); t++) if (vit_scratch[t * \(classes) + k] > best) best = vit_scratch[t * \(classes) + k];")
        w.line("\(y)[k] = best;")
      }
    default:
      preconditionFailure("'\(op.kind.rawValue)' is not an LV-ViT op")
    }
  }
}
