/* libFuzzer harness: the run-time weights loader of models compiled without weights
   (Runtime/src/vit_weights.c) on a fixed table of tensors like an emitted model's: a packed
   GEMM weight, a bias, a rank-4 tensor, an int8 weight block and an AS-ViT threshold; then the vitc weights file path.
   Every refusal is one line, never empty; an accepted file leaves finite values only.
   tools/fuzz.sh weights_c SECONDS (seeds: Fuzz/corpus/weights_c, made by Fuzz/make_weights_seeds.py) */
#include "../Runtime/src/vit_weights.c"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Alignas(64) float blob[2 * 16 * 3 + 5 + 2 * 1 * 2 * 2 + 11]; /* fc: n=2, k=3 packed; bias[5]; w4[2,1,2,2] */
static float threshold[1];
static _Alignas(64) float qblock[(16 * 8 + 8 * 16) / 4]; /* q: W[3][5] as an int8 block (vit_qgemm.h) */

static const struct vit_tensor_spec specs[5] = {
    {"a.bias", 1, {5, 0, 0, 0}, 0, 0, 0, 0, blob + 96},
    {"fc.weight", 2, {2, 3, 0, 0}, 2, 3, 16, 0, blob},
    {"patch.weight", 4, {2, 1, 2, 2}, 0, 0, 0, 0, blob + 101},
    {"q.weight", 2, {3, 5, 0, 0}, 3, 5, 16, 1, qblock},
    {"score_predictor.0.keep_threshold", -1, {0, 0, 0, 0}, 0, 0, 0, 0, threshold},
};

/* The length of a string within `size` bytes (size: not terminated). */
static size_t bounded_length(const char *text, size_t size) {
  const char *end = memchr(text, '\0', size);
  return end ? (size_t)(end - text) : size;
}

static void check_report(const struct vit_weights_report *report, int status) {
  if (status != 0) {
    const size_t length = bounded_length(report->message, sizeof report->message);
    if (length == 0 || length == sizeof report->message || strchr(report->message, '\n')) abort();
  } else if (report->message[0]) {
    abort();
  }
  if (bounded_length(report->unused_names, sizeof report->unused_names) == sizeof report->unused_names) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A copy of exactly `size` bytes, so that ASan sees a read past the end. */
  unsigned char *file = malloc(size ? size : 1);
  if (!file) return 0;
  memcpy(file, data, size);
  struct vit_weights_report report;
  int status = vit_weights_load(file, size, specs, 5, NULL, 0, &report);
  check_report(&report, status);
  if (status == 0) {
    for (size_t i = 0; i < sizeof blob / sizeof *blob; i++)
      if (!isfinite(blob[i])) abort();
    if (!isfinite(threshold[0])) abort();
    /* The int8 block: q in [-127, 127], zero padding, finite scales, sums that add up. */
    const int8_t *q = (const int8_t *)qblock;
    const float *scales = qblock + 128 / 4;
    const int32_t *sums = (const int32_t *)(qblock + 128 / 4 + 16);
    for (int j = 0; j < 16; j++) {
      int32_t sum = 0;
      for (int kk = 0; kk < 8; kk++) {
        const int8_t v = q[((kk / 4) * 16 + j) * 4 + kk % 4];
        if (v == -128 || ((j >= 3 || kk >= 5) && v != 0)) abort();
        sum += v;
      }
      if (!isfinite(scales[j]) || scales[j] < 0 || sums[j] != sum || (j >= 3 && scales[j] != 0)) abort();
    }
  }
  status = vit_weights_load(file, size, specs, 3, blob, sizeof blob, &report);
  check_report(&report, status);
  free(file);
  return 0;
}
