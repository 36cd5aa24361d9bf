/*
 * Loading a model's weights at run time, for models compiled without them
 * (`vitc compile GRAPH --prune SPEC -o model.c`, no --weights): the binary reads the user's
 * safetensors file (F32, F16 or BF16, timm's tensor names) or a vitc weights file of the same
 * layout, checks every tensor the model declares, converts it to float32 and packs it into the
 * layout the kernels read, in the model's static memory. The arithmetic is the compiler's
 * (Sources/VitFrontend/Safetensors.swift, Sources/VitEmitC/WeightBlob.swift), so a model
 * loaded this way computes bit for bit what the model with the same weights embedded computes.
 *
 * A standalone layer: libc only, no other part of the runtime. The file is untrusted: every
 * refusal is one line in report->message, and nothing is read outside [file, file + bytes)
 * (Fuzz/weights_c.c, docs/reliability.md).
 */
#ifndef VIT_WEIGHTS_H
#define VIT_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#define VIT_WEIGHTS_MAX_RANK 4

/* One tensor the model reads, as the emitted table states it. The table is sorted by name
   (strcmp order): names are found by binary search. */
struct vit_tensor_spec {
  const char *name;
  int rank;                         /* -1: any shape holding exactly one element (a threshold) */
  int shape[VIT_WEIGHTS_MAX_RANK];
  int packed_n, packed_k;           /* non-zero: stored as VIT_NR-column GEMM panels of W[n][k] */
  int panel;                        /* the panel width (VIT_NR) when packed */
  int format;                       /* with packed_n: 0 float32 panels; 1 an int8 weight block of W[n][k],
                                       VIT_QWEIGHT_BYTES(n, k) bytes as vit_qgemm.h says; 2 bf16
                                       panels, VIT_BF16_BYTES(n, k) bytes as vit_bf16.h says */
  float *destination;               /* floats: n*k rounded up to whole panels, or the element count */
};

/* What loading found: a refusal's one line, the tensors the model does not read, and the cost. */
struct vit_weights_report {
  char message[400];        /* why the file is refused ("" when it is not) */
  int unused;               /* tensors in the file the model does not read (training-only ones not counted) */
  char unused_names[400];   /* the first of them, comma-separated, "..." when cut */
  int format;               /* 1: safetensors, 2: vitc weights file */
  long long tensors;        /* tensors loaded */
  double parse_seconds;     /* the header read and indexed */
  double check_seconds;     /* layout, names, dtypes and shapes checked */
  double convert_seconds;   /* converted to float32, checked finite and packed */
};

/* Loads `file` (the whole file in memory, `bytes` long) into the specs' destinations; with
   vitc_blob set, a vitc weights file (docs/weights-file.md) of exactly vitc_blob_bytes is copied
   to vitc_blob instead (NULL: the model also needs tensors a vitc weights file does not carry).
   Returns 0, or -1 with report->message set. */
int vit_weights_load(const unsigned char *file, size_t bytes, const struct vit_tensor_spec *specs, int count,
                     float *vitc_blob, size_t vitc_blob_bytes, struct vit_weights_report *report);

#endif
