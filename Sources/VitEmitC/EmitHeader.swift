import VitIR

extension ModelEmitter {
  /// `<stem>.h`: the public interface (sizes, the trace struct, the entry point, profiling).
  func headerSource(embedding: WeightsEmbedding = .incbin) -> String {
    let weightsAtRuntime = embedding == .file
    var w = CWriter()
    w.comment(provenanceLines("Public interface"))
    w.line("#ifndef VIT_\(upper)_H")
    w.line("#define VIT_\(upper)_H")
    w.line()
    w.line("#include <stddef.h>")
    w.line("#include <stdint.h>")
    w.line()
    w.line("#define VIT_\(upper)_INPUT_FLOATS \(inputShape.reduce(1, *)) /* input f32\(formatShape(inputShape)), normalized */")
    w.line("#define VIT_\(upper)_INPUT_CHANNELS \(inputShape.first ?? 0)")
    w.line("#define VIT_\(upper)_INPUT_SIZE \(inputShape.last ?? 0)")
    w.line("#define VIT_\(upper)_CLASSES \(classes)")
    w.line("#define VIT_\(upper)_PATCHES \(patches)")
    w.line("#define VIT_\(upper)_WEIGHT_BYTES \(blob.size)")
    let stages = graph.ops.filter { $0.kind == .traceStage }.count
    w.line("#define VIT_\(upper)_MAX_STAGES \(max(stages, 1)) /* pruning stages: \(stages) (the array needs at least 1) */")
    w.line()
    headerMemory(embedding: embedding, into: &w)
    w.line()
    w.comment([
      "What the model did with its tokens (docs/trace-format.md). Stage s keeps",
      "tokens[s] tokens (cls included); non-cls token t stands for the patch ids",
      "members[s][first[s][t] .. first[s][t+1]).",
    ])
    w.block("struct vit_\(model)_trace", closing: "};") { w in
      w.line("int n_stages;")
      w.line("int block[VIT_\(upper)_MAX_STAGES];")
      w.line("int tokens[VIT_\(upper)_MAX_STAGES];")
      w.line("int16_t first[VIT_\(upper)_MAX_STAGES][VIT_\(upper)_PATCHES + 1];")
      w.line("int16_t members[VIT_\(upper)_MAX_STAGES][VIT_\(upper)_PATCHES];")
    }
    w.line()
    w.comment([
      "Runs the model on one normalized input f32\(formatShape(inputShape)) and writes",
      "\(classes) logits. trace may be NULL. Not reentrant: one static arena. Returns 0, or -2",
      "if the runtime's pool runs more than VIT_\(upper)_MAX_THREADS threads.",
    ])
    w.line("int vit_\(model)_run(const float *input, float *logits, struct vit_\(model)_trace *trace);")
    w.line()
    w.comment([
      "Multiply-adds of the run that filled trace, in fvcore's convention (SEMANTICS.md §7, what",
      "`vitc flops` prints first); the same for every run unless a method keeps a number of",
      "tokens that depends on the image (AS-ViT).",
    ])
    w.line("long long vit_\(model)_macs(const struct vit_\(model)_trace *trace);")
    w.line()
    if weightsAtRuntime {
      w.comment([
        "The weights are not in the binary: bind a vitc weights file first (docs/weights-file.md).",
        "file is the whole file in memory (mapped), 64-byte aligned; returns VIT_WEIGHTS_OK or the",
        "reason the file is refused. vit_\(model)_run returns -1 until weights are bound.",
      ])
      w.line("#define VIT_\(upper)_WEIGHTS_AT_RUNTIME 1")
      w.line("enum vit_\(model)_weights_status {")
      w.line("  VIT_\(upper)_WEIGHTS_OK = 0,")
      w.line("  VIT_\(upper)_WEIGHTS_NOT_VITC,    /* no vitc weights header */")
      w.line("  VIT_\(upper)_WEIGHTS_VERSION,     /* a format version this binary does not read */")
      w.line("  VIT_\(upper)_WEIGHTS_OTHER_MODEL, /* the header names another model */")
      w.line("  VIT_\(upper)_WEIGHTS_TRUNCATED,   /* shorter than its header says */")
      w.line("  VIT_\(upper)_WEIGHTS_SIZE,        /* a blob of another size than this model's */")
      w.line("  VIT_\(upper)_WEIGHTS_CORRUPT,     /* the blob's checksum differs from the header's */")
      w.line("  VIT_\(upper)_WEIGHTS_MISMATCH,    /* intact, but not the weights this binary was built with */")
      w.line("  VIT_\(upper)_WEIGHTS_ALIGNMENT    /* the blob is not 64-byte aligned in memory */")
      w.line("};")
      w.line("int vit_\(model)_bind_weights(const void *file, size_t bytes);")
      w.line()
    }
    if embedding == .load {
      let tensors = graph.parameters.count + loadedThresholdStages.count
      w.comment([
        "The weights are not in the binary: vit_\(model)_load_weights reads them from the user's file,",
        "whole in memory: a safetensors file with the graph's tensor names (F32, F16 or BF16)\(thresholdsFromWeights ? "" : ", or a")",
        thresholdsFromWeights
          ? "(not a vitc weights file: AS-ViT's thresholds are read from the file too). It checks each of the"
          : "vitc weights file of this model's layout. It checks each of the",
        "\(tensors) tensors (name, dtype, shape, bounds, no overlap, finite values), converts it to float32",
        "and packs it into the static memory above, as vitc would have at compile time: the model",
        "then computes bit for bit what the build with the same weights embedded computes. Returns 0,",
        "or -1 with report->message saying why (Runtime/include/vit_weights.h); vit_\(model)_run",
        "returns -1 until a load has succeeded.",
      ])
      w.line("#define VIT_\(upper)_LOADS_WEIGHTS 1")
      w.line("#define VIT_\(upper)_WEIGHT_TENSORS \(tensors)")
      w.line("struct vit_weights_report;")
      w.line("int vit_\(model)_load_weights(const void *file, size_t bytes, struct vit_weights_report *report);")
      w.line()
    }
    w.comment([
      "Profiling: while vit_\(model)_profile is non-zero, each run adds the wall time of every",
      "stage function to vit_\(model)_stage_seconds (names in vit_\(model)_stage_names).",
    ])
    let names = stageFunctionNames
    w.line("#define VIT_\(upper)_N_STAGE_FUNCTIONS \(names.count)")
    w.line("extern int vit_\(model)_profile;")
    w.line("extern double vit_\(model)_stage_seconds[VIT_\(upper)_N_STAGE_FUNCTIONS];")
    w.line("extern const char vit_\(model)_stage_names[VIT_\(upper)_N_STAGE_FUNCTIONS][\(Self.stageNameBytes(names))];")
    w.line()
    w.line("#endif")
    return w.text
  }
}
