import VitIR

extension ModelEmitter {
  /// The C of one op: a runtime kernel call or plain loops, with a comment naming the value.
  mutating func emitOp(_ op: Op, into w: inout CWriter) throws(EmitError) {
    let result = op.results[0]
    let y = pointer(result)
    func operand(_ index: Int) -> String { pointer(op.operands[index]) }
    // Ops that read token rows with other than one prefix token call the runtime's _np form,
    // with the prefix count after n; one prefix token keeps the plain call (the C of existing
    // models does not change).
    let prefix = op.attributes.prefix
    func np(_ plain: String, _ prefixed: String) -> String { prefix == 1 ? plain : prefixed }
    func npCount(_ n: String) -> String { prefix == 1 ? n : "\(n), \(prefix)" }
    switch op.kind {
    case .reshape, .row, .patchTokens:
      return  // views
    case .patchEmbed:
      let image = graph.type(of: op.operands[0]).fixedShape!
      guard case .patchEmbed(let p) = op.attributes else { op.attributesMismatch() }
      let (channels, height, widthPixels) = (image[0], image[1], image[2])
      let (gridH, gridW) = (height / p, widthPixels / p)
      let k = channels * p * p
      scratchNeeds.append(ScratchNeed(what: "im2col of the patches", fixed: gridH * gridW * k))
      w.line("/* \(graph[result].name) \(graph.type(of: result)): im2col of \(p)x\(p) patches (row-major grid), then one GEMM */")
      w.block("for (int r = 0; r < \(gridH); r++)") { w in
        w.block("for (int s = 0; s < \(gridW); s++)") { w in
          w.block("for (int ch = 0; ch < \(channels); ch++)") { w in
            w.block("for (int ky = 0; ky < \(p); ky++)") { w in
              w.line("memcpy(vit_scratch + (r * \(gridW) + s) * \(k) + (ch * \(p) + ky) * \(p),")
              w.line("       \(operand(0)) + (ch * \(height) + r * \(p) + ky) * \(widthPixels) + s * \(p), \(p) * sizeof(float));")
            }
          }
        }
      }
      w.line("vit_linear_f32(vit_scratch, \(gridH * gridW), \(k), \(operand(1)), \(operand(2)), \(width(result)), VIT_EPI_NONE, NULL, \(y));")
    case .concat:
      let a = count(op.operands[0])
      let b = count(op.operands[1])
      w.line("memcpy(\(y), \(operand(0)), \(a) * sizeof(float)); /* \(graph[result].name) = concat */")
      w.line("memcpy(\(y) + \(a), \(operand(1)), \(b) * sizeof(float));")
    case .add:
      let count = count(result)
      w.line("for (int i = 0; i < \(count); i++) \(y)[i] = \(operand(0))[i] + \(operand(1))[i]; /* \(graph[result].name) = add */")
    case .scale:
      guard case .scale(let factor) = op.attributes else { op.attributesMismatch() }
      let count = count(result)
      w.line("for (int i = 0; i < \(count); i++) \(y)[i] = \(operand(0))[i] * \(real(factor));")
    case .gelu:
      let count = count(result)
      w.line("for (int i = 0; i < \(count); i++) \(y)[i] = 0.5f * \(operand(0))[i] * (1.0f + erff(\(operand(0))[i] * 0.70710678118654752f)); /* exact GELU */")
    case .layernorm:
      guard case .layernorm(let eps) = op.attributes else { op.attributesMismatch() }
      w.line("vit_layernorm_f32(\(operand(0)), \(rows(result)), \(width(result)), \(operand(1)), \(operand(2)), \(real(eps)), \(y)); /* \(graph[result].name) */")
    case .linear, .linearGelu, .linearAdd:
      guard graph[op.operands[1]].origin == .parameter else {
        throw .unsupported(op.kind, reason: "the weight must be a parameter", at: op.location)
      }
      let k = width(op.operands[0])
      let bias = op.operands.count > 2 ? operand(2) : "NULL"
      let (epilogue, residual) =
        switch op.kind {
        case .linearGelu: ("VIT_EPI_GELU", "NULL")
        case .linearAdd: ("VIT_EPI_RESIDUAL", operand(3))
        default: ("VIT_EPI_NONE", "NULL")
        }
      w.line("\(linearCall(op, k: k, bias: bias, epilogue: epilogue, residual: residual, y: y)); /* \(graph[result].name) */")
    case .attention:
      let bound = graph.type(of: op.operands[0]).dims[0].bound
      let n = rows(op.operands[0])
      guard case .attention(let heads, let scale) = op.attributes else { op.attributesMismatch() }
      let headWidth = width(result) / heads
      scratchNeeds.append(.attention(n: bound, heads: heads, headWidth: headWidth))
      var keyBias = "NULL"
      if op.operands.count > 1 {
        keyBiasFloats = max(keyBiasFloats, bound)
        w.line("for (int i = 0; i < \(n); i++) vit_key_bias[i] = logf(\(operand(1))[i]); /* proportional attention: + log(size) */")
        keyBias = "vit_key_bias"
      }
      w.line("vit_attention_f32(\(operand(0)), \(n), \(heads), \(headWidth), \(real(scale)), \(keyBias), NULL, vit_scratch, \(y)); /* \(graph[result].name) */")
    case .dyvitMix:
      w.line("vit_dyvit_mix_f32(\(operand(0)), \(rows(result)), \(width(result)), \(y)); /* \(graph[result].name) */")
    case .keepScore:
      w.line("vit_keep_score_f32(\(operand(0)), \(rows(op.operands[0])), \(y)); /* \(graph[result].name) */")
    case .clsAttention:
      let n = rows(op.operands[0])
      guard case .attention(let heads, let scale) = op.attributes.base else { op.attributesMismatch() }
      let bound = graph.type(of: op.operands[0]).dims[0].bound
      scratchNeeds.append(ScratchNeed(what: "cls attention n=\(bound)", fixed: 4 * bound + 2, macro: "VIT_CLS_ATTENTION_SCRATCH_FLOATS(\(bound))"))
      w.line("\(np("vit_cls_attention_f32", "vit_cls_attention_np_f32"))(\(operand(0)), \(npCount(n)), \(heads), \(width(op.operands[0]) / 3 / heads), \(real(scale)), vit_scratch, \(y)); /* \(graph[result].name) */")
    case .asvitScores:
      let n = rows(op.operands[0])
      guard case .attention(let heads, let scale) = op.attributes.base else { op.attributesMismatch() }
      let bound = graph.type(of: op.operands[0]).dims[0].bound
      scratchNeeds.append(ScratchNeed(what: "AS-ViT scores n=\(bound)", fixed: 6 * bound + 2, macro: "VIT_ASVIT_SCORES_SCRATCH_FLOATS(\(bound), \(heads))"))
      w.line("\(np("vit_asvit_scores_f32", "vit_asvit_scores_np_f32"))(\(operand(0)), \(operand(1)), \(npCount(n)), \(heads), \(width(op.operands[0]) / 3 / heads), \(real(scale)), vit_scratch, \(y)); /* \(graph[result].name) */")
    case .tomeMetric:
      guard case .heads(let heads) = op.attributes else { op.attributesMismatch() }
      w.line("vit_tome_metric_f32(\(operand(0)), \(rows(op.operands[0])), \(heads), \(width(op.operands[0]) / 3 / heads), \(y)); /* \(graph[result].name) */")
    case .topkKeep:
      guard case .topkKeep(let k) = op.attributes else { op.attributesMismatch() }
      w.line("vit_topk_keep_f32(\(operand(0)), \(count(op.operands[0])), \(k), \(y)); /* \(graph[result].name) */")
    case .thresholdKeep:
      guard case .thresholdKeep(let threshold, let stage) = op.attributes else { op.attributesMismatch() }
      let value = thresholdsFromWeights ? "vit_thresholds[\(loadedThresholdStages.firstIndex(of: stage)!)] /* score_predictor.\(stage).keep_threshold */" : real(threshold)
      let symbol = dim(graph.type(of: result).dims[0])
      if case .dynamic(let field, _) = graph.type(of: result).dims[0] { dynamicCounts.append(field) }
      w.line("\(symbol) = vit_threshold_keep_f32(\(operand(0)), \(count(op.operands[0])), \(value), \(y)); /* \(graph[result].name): a run-time count */")
    case .patchOwner:
      guard case .patchOwner(let patches) = op.attributes.base else { op.attributesMismatch() }
      w.line("for (int p = 0; p < \(patches); p++) \(y)[p] = \(prefix) + p; /* \(graph[result].name): patch p in row \(prefix) + p */")
    case .unitSizes:
      w.line("for (int i = 0; i < \(count(result)); i++) \(y)[i] = 1.0f; /* \(graph[result].name) */")
    case .gatherTokens, .gatherFuseTokens:
      let n = rows(op.operands[0])
      let c = width(op.operands[0])
      let k = dim(graph.type(of: op.operands[1]).dims[0])
      let owner = op.kind == .gatherTokens ? operand(2) : operand(3)
      let bound = graph.type(of: op.operands[0]).dims[0].bound
      intScratchNeeds.append(ScratchNeed(what: "gather n=\(bound)", fixed: bound))
      if op.kind == .gatherTokens {
        w.line("\(np("vit_gather_tokens_f32", "vit_gather_tokens_np_f32"))(\(operand(0)), \(npCount(n)), \(c), \(operand(1)), \(k), \(owner), \(patchCount), \(pointer(op.results[1])), vit_iscratch, \(y)); /* \(graph[result].name) */")
      } else {
        w.line("\(np("vit_gather_fuse_tokens_f32", "vit_gather_fuse_tokens_np_f32"))(\(operand(0)), \(npCount(n)), \(c), \(operand(1)), \(k), \(operand(2)), \(owner), \(patchCount), \(pointer(op.results[1])), vit_iscratch, \(y)); /* \(graph[result].name) */")
      }
    case .batMerge:
      guard case .batMerge(let k, let clusters, let pairs) = op.attributes.base else { op.attributesMismatch() }
      let n = rows(op.operands[0])
      let (rows, c) = (rowCount(op.operands[0]), width(op.operands[0]))
      scratchNeeds.append(ScratchNeed(what: "BAT n=\(rows)", fixed: 4 * rows * rows + 16 * rows + rows * c + 16, macro: "VIT_BAT_SCRATCH_FLOATS(\(rows), \(c))"))
      intScratchNeeds.append(ScratchNeed(what: "BAT n=\(rows)", fixed: 8 * rows + 16, macro: "VIT_BAT_SCRATCH_INTS(\(rows))"))
      w.line("\(np("vit_bat_merge_f32", "vit_bat_merge_np_f32"))(\(operand(0)), \(npCount(n)), \(width(op.operands[0])), \(operand(1)), \(k), \(clusters), \(pairs), \(operand(2)), \(patchCount), \(pointer(op.results[1])), vit_scratch, vit_iscratch, \(y)); /* \(graph[result].name) */")
    case .bipartiteMerge:
      guard case .bipartiteMerge(let r) = op.attributes.base else { op.attributesMismatch() }
      let n = rows(op.operands[0])
      let (rows, c, d) = (rowCount(op.operands[0]), width(op.operands[0]), width(op.operands[1]))
      scratchNeeds.append(ScratchNeed(what: "ToMe n=\(rows)", fixed: 6 * rows + rows * d + 2 * c + 16, macro: "VIT_TOME_SCRATCH_FLOATS(\(rows), \(c), \(d))"))
      intScratchNeeds.append(ScratchNeed(what: "ToMe n=\(rows)", fixed: 4 * rows + 16, macro: "VIT_TOME_SCRATCH_INTS(\(rows))"))
      w.line("\(np("vit_bipartite_merge_f32", "vit_bipartite_merge_np_f32"))(\(operand(0)), \(operand(1)), \(operand(2)), \(npCount(n)), \(width(op.operands[0])), \(width(op.operands[1])), \(r), \(operand(3)), \(patchCount), \(pointer(op.results[2])), vit_scratch, vit_iscratch, \(y), \(pointer(op.results[1]))); /* \(graph[result].name) */")
    case .traceStage:
      guard case .traceStage(let block) = op.attributes.base else { op.attributesMismatch() }
      let stage = traceStages
      traceStages += 1
      let tokens = rows(op.operands[0])
      w.block("if (run->trace) /* trace stage \(stage): block \(block), \(tokens) tokens */") { w in
        w.line("run->trace->block[\(stage)] = \(block);")
        w.line("run->trace->tokens[\(stage)] = \(tokens);")
        w.line("\(np("vit_trace_stage", "vit_trace_stage_np"))(\(operand(1)), \(patchCount), \(npCount(tokens)), run->trace->first[\(stage)], run->trace->members[\(stage)]);")
      }
    case .linearScaleAdd:
      guard graph[op.operands[1]].origin == .parameter else {
        throw .unsupported(op.kind, reason: "the weight must be a parameter", at: op.location)
      }
      // The GEMM with its bias, then LayerScale and the residual in one pass over the result
      // (two statements, so that no compiler contracts them into one rounding).
      let c = width(result)
      w.line("\(linearCall(op, k: width(op.operands[0]), bias: operand(2), epilogue: "VIT_EPI_NONE", residual: "NULL", y: y)); /* \(graph[result].name) */")
      w.block("for (int i = 0; i < \(rows(result)); i++) for (int j = 0; j < \(c); j++) /* LayerScale, then the residual */") { w in
        w.line("const float scaled = \(y)[i * \(c) + j] * \(operand(3))[j];")
        w.line("\(y)[i * \(c) + j] = \(operand(4))[i * \(c) + j] + scaled;")
      }
    case .channelScale:
      let c = width(result)
      w.line("for (int i = 0; i < \(rows(result)); i++) for (int j = 0; j < \(c); j++) /* \(graph[result].name) = LayerScale */")
      w.line("  \(y)[i * \(c) + j] = \(operand(0))[i * \(c) + j] * \(operand(1))[j];")
    case .meanTokens:
      let c = width(result)
      let n = rows(op.operands[0])
      w.block("for (int j = 0; j < \(c); j++) /* \(graph[result].name) = mean of rows \(prefix) .. n-1 */") { w in
        w.line("double sum = 0.0;")
        w.line("for (int t = \(prefix); t < \(n); t++) sum += \(operand(0))[t * \(c) + j];")
        w.line("\(y)[j] = (float)(sum / (\(n) - \(prefix)));")
      }
    case .conv2d, .batchnorm, .relu, .auxHeadMax:
      try emitLVViTOp(op, into: &w)
    case .softmax:
      w.line("vit_softmax_f32(\(operand(0)), \(rows(result)), \(width(result)), \(y)); /* \(graph[result].name) = softmax over rows */")
    case .splitHeads:
      let x = graph.type(of: op.operands[0]).fixedShape!
      guard case .heads(let heads) = op.attributes else { op.attributesMismatch() }
      let parts = op.results.count
      let headWidth = x[1] / (parts * heads)
      for (s, part) in op.results.enumerated() {
        w.line("for (int h = 0; h < \(heads); h++) for (int n = 0; n < \(x[0]); n++) for (int j = 0; j < \(headWidth); j++) /* \(graph[part].name) */")
        w.line("  \(pointer(part))[(h * \(x[0]) + n) * \(headWidth) + j] = \(operand(0))[n * \(x[1]) + \(s * heads * headWidth) + h * \(headWidth) + j];")
      }
    case .mergeHeads:
      let x = graph.type(of: op.operands[0]).fixedShape!
      w.line("for (int h = 0; h < \(x[0]); h++) for (int n = 0; n < \(x[1]); n++) for (int j = 0; j < \(x[2]); j++) /* \(graph[result].name) */")
      w.line("  \(y)[n * \(x[0] * x[2]) + h * \(x[2]) + j] = \(operand(0))[(h * \(x[1]) + n) * \(x[2]) + j];")
    case .transpose:
      let x = graph.type(of: op.operands[0]).fixedShape!
      let (r, c) = (x[x.count - 2], x[x.count - 1])
      let batches = x.dropLast(2).reduce(1, *)
      w.line("for (int b = 0; b < \(batches); b++) for (int r = 0; r < \(r); r++) for (int c = 0; c < \(c); c++) /* \(graph[result].name) */")
      w.line("  \(y)[(b * \(c) + c) * \(r) + r] = \(operand(0))[(b * \(r) + r) * \(c) + c];")
    case .matmul:
      let a = graph.type(of: op.operands[0]).fixedShape!
      let b = graph.type(of: op.operands[1]).fixedShape!
      let (m, k, n) = (a[a.count - 2], a[a.count - 1], b[b.count - 1])
      let batches = a.dropLast(2).reduce(1, *)
      w.block("for (int b = 0; b < \(batches); b++) for (int i = 0; i < \(m); i++) for (int j = 0; j < \(n); j++) /* \(graph[result].name) */") { w in
        w.line("float sum = 0.0f;")
        w.line("for (int t = 0; t < \(k); t++) sum += \(operand(0))[(b * \(m) + i) * \(k) + t] * \(operand(1))[(b * \(k) + t) * \(n) + j];")
        w.line("\(y)[(b * \(m) + i) * \(n) + j] = sum;")
      }
    }
  }
}

extension ModelEmitter {
  /// The GEMM call of a linear-family op in its precision: `vit_linear_f32` on float panels;
  /// `vit_linear_s8` on an int8 weight block (Runtime/include/vit_qgemm.h), which quantizes the
  /// rows of x into the scratch first (their scales at `vit_scratch`, the int8 rows after them);
  /// or `vit_linear_bf16` on bf16 panels (vit_bf16.h), which rounds them into the scratch.
  mutating func linearCall(_ op: Op, k: Int, bias: String, epilogue: String, residual: String, y: String) -> String {
    let x = pointer(op.operands[0])
    let (m, n) = (rows(op.operands[0]), width(op.results[0]))
    let weight = pointer(op.operands[1])
    let bound = graph.type(of: op.operands[0]).dims.dropLast().reduce(1) { $0 * $1.bound }  // the rows the scratch holds
    switch op.attributes.precision {
    case .f32:
      return "vit_linear_f32(\(x), \(m), \(k), \(weight), \(bias), \(n), \(epilogue), \(residual), \(y))"
    case .int8:
      scratchNeeds.append(.int8Rows(m: bound, k: k))
      return "vit_linear_s8(\(x), \(m), \(k), \(weight), \(bias), \(n), \(epilogue), \(residual), \(y), (int8_t *)(vit_scratch + \(ScratchNeed.int8RowsOffset(m: bound))), vit_scratch)"
    case .bf16:
      scratchNeeds.append(.bf16Rows(m: bound, k: k))
      return "vit_linear_bf16(\(x), \(m), \(k), \(weight), \(bias), \(n), \(epilogue), \(residual), \(y), vit_scratch)"
    }
  }
}
