/*
 * test_qgemm.c: the int8 linear layer (vit_qgemm.c) against a naive reference written here:
 * quantization by the formula of vit_qgemm.h, the integer dot product in int64, and each
 * dequantization step in float through a volatile, so that no compiler can fuse it. Results
 * must be bitwise equal, GELU included: the reference applies vit_gelu_f32 (vit_math.c), whose
 * bits are the f32 GEMM epilogue's, to its pre-activation. Compiled like emitted code:
 *   cc -std=c11 -O2 -Wall -Wextra -Werror [ISA flags] -IRuntime/include \
 *      Runtime/tests/test_qgemm.c Runtime/src/vit_threads.c Runtime/src/vit_math.c \
 *      Runtime/src/vit_qgemm.c -lm -lpthread
 * Prints one line per failure, a checksum of fixed results (run_tests.sh checks it is the same
 * in every configuration: ISA, compiler, threads) and "N passed, N failed" last; exits 1 on
 * any failure.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vit_runtime.h"
#include "../src/vit_simd.h" /* VIT_KERNEL_NAME, VIT_QKERNEL_NAME */

#include "test_check.h"

/* ---- data ------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rand_u32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 32);
}

/* uniform, seeded, the same bits on every platform and compiler (volatile: no contraction) */
static float frand(float lo, float hi) {
  volatile float t = (hi - lo) * (float)((rand_u32() >> 8) * (1.0 / 16777216.0));
  return lo + t;
}

static float *rand_array(size_t count, float lo, float hi) {
  float *a = malloc((count ? count : 1) * sizeof(float));
  for (size_t i = 0; i < count; i++) a[i] = frand(lo, hi);
  return a;
}

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* equal bits, or both NaN (a NaN's sign and payload may depend on the ISA) */
static int same(float a, float b) { return bits(a) == bits(b) || (isnan(a) && isnan(b)); }

static void *alloc_aligned(size_t bytes) { /* 64-byte aligned, bytes rounded up to 64 */
  return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

/* ---- the reference ---------------------------------------------------------------------- */

/* The formula of vit_qgemm.h, written out again. */
static float ref_quantize(const float *v, int k, int8_t *q) {
  float amax = 0.0f;
  int nonfinite = 0;
  for (int kk = 0; kk < k; kk++) {
    if (isnan(v[kk]) || isinf(v[kk])) nonfinite = 1;
    else if (fabsf(v[kk]) > amax) amax = fabsf(v[kk]);
  }
  if (nonfinite || amax == 0.0f) {
    for (int kk = 0; kk < k; kk++) q[kk] = 0;
    return nonfinite ? NAN : 0.0f;
  }
  volatile float inv = 127.0f / amax;
  for (int kk = 0; kk < k; kk++) {
    volatile float p = v[kk] * inv;
    const float r = rintf(p);
    q[kk] = isnan(r) ? 0 : r > 127.0f ? 127 : r < -127.0f ? -127 : (int8_t)r;
  }
  volatile float scale = amax / 127.0f;
  return scale;
}

static int ref_overflow; /* an int32 sum out of range: the test data is broken */

/* y [m][n] = the linear of vit_qgemm.h on W [n][k] (float, quantized here) and x [m][k].
   residual is a copy (not aliased). */
static void ref_linear(const float *x, int m, int k, const float *w, const float *bias, int n,
                       enum vit_epilogue epi, const float *residual, float *y) {
  int8_t *xq = malloc((size_t)(k ? k : 1) * m), *wq = malloc((size_t)(k ? k : 1) * n);
  float *xs = malloc((size_t)m * sizeof(float)), *ws = malloc((size_t)n * sizeof(float));
  for (int i = 0; i < m; i++) xs[i] = ref_quantize(x + (size_t)i * k, k, xq + (size_t)i * k);
  for (int j = 0; j < n; j++) ws[j] = ref_quantize(w + (size_t)j * k, k, wq + (size_t)j * k);
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < n; j++) {
      int64_t acc = 0;
      for (int kk = 0; kk < k; kk++) acc += (int64_t)xq[(size_t)i * k + kk] * wq[(size_t)j * k + kk];
      if (acc < INT32_MIN || acc > INT32_MAX) ref_overflow = 1;
      volatile float t = (float)(int32_t)acc;
      volatile float s = xs[i] * ws[j];
      t = t * s;
      if (bias) t = t + bias[j];
      if (epi == VIT_EPI_RESIDUAL) t = t + residual[(size_t)i * n + j];
      y[(size_t)i * n + j] = t;
    }
    if (epi == VIT_EPI_GELU) vit_gelu_f32(y + (size_t)i * n, (size_t)n, y + (size_t)i * n);
  }
  free(xq);
  free(wq);
  free(xs);
  free(ws);
}

/* ---- weight quantization ---------------------------------------------------------------- */

/* vit_quantize_weights_s8's block, byte by byte, against the layout and the reference. */
static void test_quantize_weights(int n, int k, const float *w) {
  const size_t bytes = VIT_QWEIGHT_BYTES(n, k);
  check(bytes % 64 == 0 && VIT_QPACKED_BYTES(n, k) % 64 == 0, "n=%d k=%d: sizes not multiples of 64", n, k);
  unsigned char *blk = alloc_aligned(bytes + 64);
  memset(blk, 0xa5, bytes + 64);
  vit_quantize_weights_s8(w, n, k, blk);
  const int qk = VIT_QK(k), groups = qk / 4, npad = VIT_QNPAD(n);
  const int8_t *packed = (const int8_t *)blk;
  const float *scale = (const float *)(const void *)(blk + VIT_QPACKED_BYTES(n, k));
  const int32_t *colsum = (const int32_t *)(const void *)(blk + VIT_QPACKED_BYTES(n, k) + 4 * (size_t)npad);
  int8_t *q = malloc((size_t)(k ? k : 1));
  int bad_byte = 0, bad_scale = 0, bad_sum = 0, bad_range = 0;
  for (int j = 0; j < npad; j++) {
    float s = 0.0f;
    if (j < n) s = ref_quantize(w + (size_t)j * k, k, q);
    int32_t sum = 0;
    for (int kk = 0; kk < qk; kk++) {
      const int8_t want = j < n && kk < k ? q[kk] : 0;
      const int p = j / 16, g = kk / 4, c = j % 16, t = kk % 4;
      const int8_t got = packed[(((size_t)p * groups + g) * 16 + c) * 4 + t];
      if (got != want && bad_byte++ < 3)
        printf("FAIL weights n=%d k=%d: Wq[%d][%d] = %d, want %d\n", n, k, j, kk, got, want);
      if (got < -127) bad_range++;
      sum += want;
    }
    if (!same(scale[j], s) && bad_scale++ < 3)
      printf("FAIL weights n=%d k=%d: scale[%d] = %a, want %a\n", n, k, j, scale[j], s);
    if (colsum[j] != sum && bad_sum++ < 3)
      printf("FAIL weights n=%d k=%d: colsum[%d] = %d, want %d\n", n, k, j, colsum[j], sum);
  }
  check(bad_byte == 0, "weights n=%d k=%d: %d packed bytes wrong (padding included)", n, k, bad_byte);
  check(bad_scale == 0, "weights n=%d k=%d: %d scales wrong", n, k, bad_scale);
  check(bad_sum == 0, "weights n=%d k=%d: %d colsums wrong", n, k, bad_sum);
  check(bad_range == 0, "weights n=%d k=%d: -128 in the block", n, k);
  int guard = 1;
  for (size_t b = bytes; b < bytes + 64; b++) guard &= blk[b] == 0xa5;
  check(guard, "weights n=%d k=%d: written past VIT_QWEIGHT_BYTES", n, k);
  free(q);
  free(blk);
}

/* ---- the linear ------------------------------------------------------------------------- */

static uint32_t checksum = 2166136261u; /* FNV-1a over the bits of fixed results */

static void hash_floats(const float *a, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const uint32_t u = isnan(a[i]) ? 0x7fc00000u : bits(a[i]);
    for (int b = 0; b < 4; b++) checksum = (checksum ^ ((u >> (8 * b)) & 0xff)) * 16777619u;
  }
}

/* One call of vit_linear_s8 on W [n][k] (quantized by vit_quantize_weights_s8), against the
   reference, at the given thread count; residual aliases y when `alias`. Returns the number
   of outputs where a fused t*s + bias would have differed (the test's sensitivity). */
static int run_case(const char *what, int m, int n, int k, const float *x, const float *w,
                    const float *bias, enum vit_epilogue epi, int alias, int threads, int hash) {
  const int qk = VIT_QK(k);
  void *blk = alloc_aligned(VIT_QWEIGHT_BYTES(n, k));
  vit_quantize_weights_s8(w, n, k, blk);
  const size_t mn = (size_t)m * n;
  float *residual = rand_array(mn, -3, 3);
  float *y = guarded(mn), *want = malloc(mn * sizeof(float));
  if (alias) memcpy(y, residual, mn * sizeof(float));
  int8_t *xq = malloc((size_t)m * qk + 64);
  memset(xq, 0x5a, (size_t)m * qk + 64);
  float *xs = guarded((size_t)m);
  ref_linear(x, m, k, w, bias, n, epi, residual, want);
  vit_set_threads(threads);
  vit_linear_s8(x, m, k, blk, bias, n, epi, alias ? y : residual, y, xq, xs);
  vit_set_threads(1);
  size_t bad = 0, first = 0;
  for (size_t e = 0; e < mn; e++)
    if (!same(y[e], want[e]) && bad++ == 0) first = e;
  check(bad == 0, "%s m=%d n=%d k=%d epi=%d bias=%d alias=%d threads=%d: %zu of %zu differ, first [%zu][%zu] %a want %a",
        what, m, n, k, (int)epi, bias != NULL, alias, threads, bad, mn, first / n, first % n,
        bad ? y[first] : 0.0, bad ? want[first] : 0.0);
  check(guard_intact(y, mn) && guard_intact(xs, (size_t)m), "%s m=%d n=%d k=%d: written past y or xscale", what, m, n, k);
  int8_t *q = malloc((size_t)(qk ? qk : 1));
  int xq_ok = 1;
  for (int i = 0; i < m; i++) {
    const float s = ref_quantize(x + (size_t)i * k, k, q);
    for (int kk = k; kk < qk; kk++) q[kk] = 0;
    xq_ok &= same(xs[i], s) && memcmp(xq + (size_t)i * qk, q, (size_t)qk) == 0;
  }
  for (size_t b = (size_t)m * qk; b < (size_t)m * qk + 64; b++) xq_ok &= xq[b] == 0x5a;
  check(xq_ok, "%s m=%d n=%d k=%d: xq/xscale scratch not the quantized rows (or written past)", what, m, n, k);
  if (hash) hash_floats(y, mn);
  /* outputs where fmaf(t, s, bias) != the rounded product plus bias */
  int fused_differs = 0;
  if (bias && epi == VIT_EPI_NONE) {
    int8_t *xr = malloc((size_t)(k ? k : 1)), *wr = malloc((size_t)(k ? k : 1));
    for (int i = 0; i < m && i < 8; i++) {
      const float sx = ref_quantize(x + (size_t)i * k, k, xr);
      for (int j = 0; j < n; j++) {
        const float sw = ref_quantize(w + (size_t)j * k, k, wr);
        int32_t acc = 0;
        for (int kk = 0; kk < k; kk++) acc += xr[kk] * wr[kk];
        volatile float s = sx * sw;
        fused_differs += !same(fmaf((float)acc, s, bias[j]), want[(size_t)i * n + j]);
      }
    }
    free(xr);
    free(wr);
  }
  free(q);
  free(blk);
  free(residual);
  free(y);
  free(want);
  free(xq);
  free(xs);
  return fused_differs;
}

int main(void) {
  printf("# qgemm kernel %s, float kernel %s, VIT_MAX_THREADS %d\n", VIT_QKERNEL_NAME,
         VIT_KERNEL_NAME, VIT_MAX_THREADS);

  /* the contract's constants */
  check(VIT_QPANELS(1) == 1 && VIT_QPANELS(16) == 1 && VIT_QPANELS(17) == 2, "VIT_QPANELS");
  check(VIT_QK(1) == 4 && VIT_QK(4) == 4 && VIT_QK(383) == 384 && VIT_QK(0) == 0, "VIT_QK");
  check(VIT_QWEIGHT_BYTES(17, 5) == 32 * 8 + 8 * 32, "VIT_QWEIGHT_BYTES(17, 5)");

  /* rounding: half to even, the clamp, scale */
  {
    const float v[8] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -126.5f, 3.49f};
    const int8_t want[8] = {127, 0, 2, 2, 0, -2, -126, 3};
    int8_t q[8];
    float s;
    vit_quantize_rows_s8(v, 8, 1, 8, q, &s);
    check(memcmp(q, want, 8) == 0 && s == 1.0f, "quantize: ties to even / scale (got %d %d %d %d %d %d %d %d, %a)",
          q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], s);
  }
  /* ties on a long row (the vector paths): amax 127 makes inv 1, so v*inv = v exactly */
  {
    enum { K = 75 };
    float v[K];
    int8_t q[K], want[K];
    float s;
    for (int kk = 0; kk < K; kk++) {
      v[kk] = (float)(kk % 2 ? kk - 37 : 37 - kk) + 0.5f; /* -36.5 .. 37.5, signs mixed */
      const float f = floorf(v[kk]);                    /* round half to even by hand */
      want[kk] = (int8_t)(fmodf(f, 2.0f) == 0.0f ? f : f + 1.0f);
    }
    v[40] = -127.0f;
    want[40] = -127;
    vit_quantize_rows_s8(v, K, 1, K, q, &s);
    int bad = 0;
    for (int kk = 0; kk < K; kk++) bad += q[kk] != want[kk];
    check(bad == 0 && s == 1.0f, "quantize: ties to even on a row of %d (%d wrong, scale %a)", K, bad, s);
  }
  /* special rows: zero, tiny (inv = inf: 0 -> 0, the rest +-127), inf, NaN, subnormal */
  {
    const int k = 6;
    const float rows[5][6] = {
        {0, 0, -0.0f, 0, 0, 0},
        {1e-38f, 0, -1e-38f, 0, 5e-39f, -0.0f},
        {1, INFINITY, 2, 0, 0, 0},
        {1, 2, NAN, 0, 0, 0},
        {1e-40f, -2e-40f, 0, 0, 0, 0},
    };
    int8_t q[5][8];
    float s[5];
    memset(q, 0x11, sizeof q);
    vit_quantize_rows_s8(&rows[0][0], 6, 5, k, &q[0][0], s);
    const int8_t tiny[8] = {127, 0, -127, 0, 127, 0, 0, 0};
    check(s[0] == 0.0f && memcmp(q[0], (int8_t[8]){0}, 8) == 0, "quantize: zero row");
    check(s[1] == 1e-38f / 127.0f && memcmp(q[1], tiny, 8) == 0, "quantize: tiny row (inv = inf)");
    check(isnan(s[2]) && memcmp(q[2], (int8_t[8]){0}, 8) == 0, "quantize: row with inf");
    check(isnan(s[3]) && memcmp(q[3], (int8_t[8]){0}, 8) == 0, "quantize: row with NaN");
    int8_t ref[8] = {0};
    const float rs = ref_quantize(rows[4], k, ref);
    check(same(s[4], rs) && memcmp(q[4], ref, 8) == 0 && q[4][1] == -127,
          "quantize: subnormal row (scale %a want %a)", s[4], rs);
  }

  /* weight blocks, element by element */
  {
    static const int ns[] = {1, 15, 16, 17, 48};
    static const int ks[] = {1, 3, 4, 5, 64, 383};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
      for (size_t b = 0; b < sizeof ks / sizeof *ks; b++) {
        const int n = ns[a], k = ks[b];
        float *w = rand_array((size_t)n * k, -1, 1);
        if (n > 2) memset(w + k, 0, (size_t)k * sizeof(float)); /* a zero channel */
        if (n > 3) w[3 * (size_t)k] = 40.0f;                    /* an outlier */
        if (n > 4) w[4 * (size_t)k + k / 2] = NAN;              /* a NaN channel */
        test_quantize_weights(n, k, w);
        free(w);
      }
  }

  /* odd shapes; every epilogue, bias or not, over the combinations */
  static const int ms[] = {1, 5, 7, 197};
  static const int ns[] = {1, 15, 17, 48, 192};
  static const int ks[] = {1, 3, 5, 64, 383, 384, 1536};
  int combo = 0, fused = 0;
  for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
    for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
      for (size_t c = 0; c < sizeof ks / sizeof *ks; c++, combo++) {
        const int m = ms[a], n = ns[b], k = ks[c];
        if (m == 197 && (n == 15 || n == 48 || k == 3 || k == 64)) continue; /* keep it short */
        float *x = rand_array((size_t)m * k, -2, 2);
        float *w = rand_array((size_t)n * k, -0.5f, 0.5f);
        float *bias = rand_array((size_t)n, -1, 1);
        if (m > 2) memset(x + (size_t)2 * k, 0, (size_t)k * sizeof(float)); /* a zero row */
        if (m > 3) x[(size_t)3 * k] = 1000.0f;                              /* an outlier */
        if (n > 1) memset(w + (size_t)k, 0, (size_t)k * sizeof(float));     /* a zero channel */
        const enum vit_epilogue epi = (enum vit_epilogue)(combo % 3);
        const int with_bias = combo % 4 != 3;
        fused += run_case("shape", m, n, k, x, w, with_bias ? bias : NULL, epi,
                          epi == VIT_EPI_RESIDUAL && combo % 2, 1, 0);
        free(x);
        free(w);
        free(bias);
      }
  /* every epilogue x bias x alias on a few shapes, and the thread counts */
  static const int shapes[][3] = {{7, 17, 5}, {197, 48, 383}, {197, 192, 384}, {29, 33, 1536}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    float *x = rand_array((size_t)m * k, -2, 2);
    float *w = rand_array((size_t)n * k, -0.5f, 0.5f);
    float *bias = rand_array((size_t)n, -1, 1);
    memset(x + (size_t)2 * k, 0, (size_t)k * sizeof(float));
    for (int epi = 0; epi < 3; epi++)
      for (int b = 0; b < 2; b++)
        for (int alias = 0; alias < (epi == VIT_EPI_RESIDUAL ? 2 : 1); alias++)
          for (int t = 1; t <= 3; t++) {
            rng_state = 0x1234567ull + s; /* the same residual at every thread count */
            fused += run_case("sweep", m, n, k, x, w, b ? bias : NULL, (enum vit_epilogue)epi,
                              alias, t, s == 1 && epi != VIT_EPI_GELU && t == 1);
          }
    free(x);
    free(w);
    free(bias);
  }
  check(!ref_overflow, "a reference sum overflows int32");
  check(fused > 0, "the test cannot tell a fused multiply-add from two roundings");
  /* non-finite input rows give NaN rows; the other rows are untouched by them */
  {
    const int m = 6, n = 20, k = 37;
    float *x = rand_array((size_t)m * k, -2, 2), *w = rand_array((size_t)n * k, -1, 1);
    float *bias = rand_array((size_t)n, -1, 1);
    x[1 * k + 5] = NAN;
    x[4 * k + 0] = -INFINITY;
    for (int epi = 0; epi < 3; epi++) run_case("nonfinite", m, n, k, x, w, bias, (enum vit_epilogue)epi, 0, 2, 0);
    void *blk = alloc_aligned(VIT_QWEIGHT_BYTES(n, k));
    vit_quantize_weights_s8(w, n, k, blk);
    float *y = malloc((size_t)m * n * sizeof(float)), xs[6];
    int8_t xq[6 * 40];
    vit_linear_s8(x, m, k, blk, bias, n, VIT_EPI_GELU, NULL, y, xq, xs);
    int rows_nan = 1, others = 1;
    for (int j = 0; j < n; j++) {
      rows_nan &= isnan(y[1 * n + j]) && isnan(y[4 * n + j]);
      others &= !isnan(y[0 * n + j]) && !isnan(y[5 * n + j]);
    }
    check(rows_nan && others, "non-finite rows: NaN rows expected exactly where x had inf/NaN");
    free(blk);
    free(y);
    free(x);
    free(w);
    free(bias);
  }
  vit_join_threads();
  printf("checksum %08x\n", (unsigned)checksum);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
