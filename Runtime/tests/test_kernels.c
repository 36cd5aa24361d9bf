/*
 * test_kernels.c: every runtime kernel against naive double-precision C, on odd shapes, plus
 * bitwise equality across thread counts. Compiled like emitted code (see run_tests.sh):
 *   cc -std=c11 -O2 -Wall -Wextra -Werror [ISA flags] -IRuntime/include \
 *      Runtime/tests/test_kernels.c Runtime/src/vit_threads.c Runtime/src/vit_math.c \
 *      Runtime/src/vit_gemm.c Runtime/src/vit_attention.c -lm -lpthread
 * Prints one line per failure and "N passed, N failed" last; exits 1 on any failure.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vit_runtime.h"
#include "../src/vit_simd.h" /* VIT_KERNEL_NAME */

#include "test_check.h"

/* ---- data ------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(float lo, float hi) { /* uniform, seeded, reproducible */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

static float *rand_array(size_t count, float lo, float hi) {
  float *a = malloc((count ? count : 1) * sizeof(float));
  for (size_t i = 0; i < count; i++) a[i] = frand(lo, hi);
  return a;
}


static double gelu_ref(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

static int same_bits(const float *a, const float *b, size_t count) {
  return memcmp(a, b, count * sizeof(float)) == 0;
}

/* ---- packing ---------------------------------------------------------------------------- */

/* Floats of "packed" storage vit_linear_f32 reads for an [n][k] weight: the panel layout, or
   W itself with VIT_BLAS_OPENBLAS. */
static size_t packed_size(int n, int k) {
#ifdef VIT_BLAS_OPENBLAS
  return (size_t)n * (size_t)k;
#else
  return VIT_PACKED_FLOATS(n, k);
#endif
}

/* w [n][k] -> the weights vit_linear_f32 takes, as the Swift compiler writes them. */
static void pack(const float *w, int n, int k, float *packed) {
#ifdef VIT_BLAS_OPENBLAS
  memcpy(packed, w, (size_t)n * (size_t)k * sizeof(float));
#else
  vit_pack_panels_f32(w, (size_t)k, 1, n, k, 0, (n + VIT_NR - 1) / VIT_NR, packed);
#endif
}

static void test_pack(void) {
  static const int ns[] = {1, 15, 16, 17, 33};
  static const int ks[] = {1, 5, 64};
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
    for (size_t b = 0; b < sizeof ks / sizeof *ks; b++) {
      const int n = ns[a], k = ks[b];
      float *w = rand_array((size_t)n * k, -1, 1);
      const size_t size = packed_size(n, k);
      float *packed = guarded(size);
      pack(w, n, k, packed);
      int ok = guard_intact(packed, size);
#ifdef VIT_BLAS_OPENBLAS
      ok = ok && size == (size_t)n * k && memcmp(packed, w, size * sizeof(float)) == 0;
#else
      const int panels = (n + 15) / 16;
      ok = ok && size == (size_t)panels * 16 * k && size == VIT_PACKED_FLOATS(n, k);
      for (int p = 0; p < panels && ok; p++)
        for (int kk = 0; kk < k; kk++)
          for (int j = 0; j < 16; j++) {
            const float want = p * 16 + j < n ? w[(size_t)(p * 16 + j) * k + kk] : 0.0f;
            if (packed[((size_t)p * k + kk) * 16 + j] != want) ok = 0;
          }
#endif
      check(ok, "pack n=%d k=%d", n, k);
      free(w);
      free(packed);
    }
  }
}

/* ---- linear ----------------------------------------------------------------------------- */

static const char *epi_name(enum vit_epilogue e) {
  return e == VIT_EPI_GELU ? "gelu" : e == VIT_EPI_RESIDUAL ? "residual" : "none";
}

/* One vit_linear_f32 call against the double reference. alias: residual is y itself. */
static void test_linear_case(int m, int k, int n, enum vit_epilogue epi, int with_bias, int alias) {
  float *x = rand_array((size_t)m * k, -1, 1);
  float *w = rand_array((size_t)n * k, -1, 1);
  float *bias = with_bias ? rand_array((size_t)n, -1, 1) : NULL;
  float *res = rand_array((size_t)m * n, -2, 2);
  float *packed = malloc(packed_size(n, k) * sizeof(float));
  pack(w, n, k, packed);
  float *y = guarded((size_t)m * n);
  if (alias) memcpy(y, res, (size_t)m * n * sizeof(float));
  const float *residual = epi == VIT_EPI_RESIDUAL ? (alias ? y : res) : NULL;
  vit_linear_f32(x, m, k, packed, bias, n, epi, residual, y);

  int ok = guard_intact(y, (size_t)m * n);
  double worst = 0;
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < n; j++) {
      double acc = 0, mag = 0;
      for (int kk = 0; kk < k; kk++) {
        acc += (double)x[(size_t)i * k + kk] * w[(size_t)j * k + kk];
        mag += fabs((double)x[(size_t)i * k + kk] * w[(size_t)j * k + kk]);
      }
      if (bias) {
        acc += bias[j];
        mag += fabs(bias[j]);
      }
      if (epi == VIT_EPI_GELU) acc = gelu_ref(acc);
      if (epi == VIT_EPI_RESIDUAL) {
        acc += res[(size_t)i * n + j];
        mag += fabs(res[(size_t)i * n + j]);
      }
      /* float FMA chains over k terms: a few ulps of the magnitude sum (1e-5 of it covers
         k = 385 with margin; a wrong element is off by O(1)). */
      const double err = fabs(y[(size_t)i * n + j] - acc);
      const double tol = 1e-5 * mag + 1e-7;
      if (!(err <= tol)) ok = 0;
      if (err / (mag + 1e-30) > worst) worst = err / (mag + 1e-30);
    }
  }
  check(ok, "linear m=%d k=%d n=%d epi=%s bias=%d alias=%d (worst err/mag %.3g)", m, k, n,
        epi_name(epi), with_bias, alias, worst);
  free(x);
  free(w);
  free(bias);
  free(res);
  free(packed);
  free(y);
}

static void test_linear(void) {
#ifdef VIT_TEST_QUICK /* under emulation (swift test's NEON runs): the odd sizes without 197 */
  static const int ms[] = {1, 2, 3, 17, 31};
#else
  static const int ms[] = {1, 2, 3, 17, 31, 197};
#endif
  static const int ns[] = {1, 15, 16, 17, 33};
  static const int ks[] = {1, 5, 64, 385};
  for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
    for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
      for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
        test_linear_case(ms[a], ks[c], ns[b], VIT_EPI_NONE, 1, 0);
        test_linear_case(ms[a], ks[c], ns[b], VIT_EPI_NONE, 0, 0);
        test_linear_case(ms[a], ks[c], ns[b], VIT_EPI_GELU, 1, 0);
        test_linear_case(ms[a], ks[c], ns[b], VIT_EPI_RESIDUAL, 1, 0);
        test_linear_case(ms[a], ks[c], ns[b], VIT_EPI_RESIDUAL, 1, 1);
        test_linear_case(ms[a], ks[c], ns[b], VIT_EPI_RESIDUAL, 0, 1);
      }
#ifndef VIT_TEST_QUICK
  /* Wider outputs and a DeiT-S-like shape. */
  test_linear_case(197, 384, 1000, VIT_EPI_NONE, 1, 0);
  test_linear_case(197, 64, 1152, VIT_EPI_GELU, 1, 0);
  test_linear_case(50, 1536, 384, VIT_EPI_RESIDUAL, 1, 1);
#endif
  test_linear_case(9, 384, 1536, VIT_EPI_GELU, 1, 0);
}

#ifndef VIT_BLAS_OPENBLAS
/* vit_gemm_panels_f32 with row strides wider than the data and a sub-range of panels. */
static void test_gemm_panels(void) {
  const int m = 19, k = 37, n = 70, ldx = 41, ldy = 75;
  float *x = rand_array((size_t)m * ldx, -1, 1);
  float *w = rand_array((size_t)n * k, -1, 1);
  float *packed = malloc(VIT_PACKED_FLOATS(n, k) * sizeof(float));
  pack(w, n, k, packed);
  float *y = guarded((size_t)m * ldy);
  vit_gemm_panels_f32(x, ldx, m, k, packed, n, 1, 5, NULL, VIT_EPI_NONE, NULL, 0, y, ldy);
  int ok = guard_intact(y, (size_t)m * ldy);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < ldy; j++) {
      const float got = y[(size_t)i * ldy + j];
      if (j < 16 || j >= n) {
        if (got != guard_value) ok = 0;
        continue;
      }
      double acc = 0, mag = 0;
      for (int kk = 0; kk < k; kk++) {
        acc += (double)x[(size_t)i * ldx + kk] * w[(size_t)j * k + kk];
        mag += fabs((double)x[(size_t)i * ldx + kk] * w[(size_t)j * k + kk]);
      }
      if (!(fabs(got - acc) <= 1e-5 * mag + 1e-7)) ok = 0;
    }
  check(ok, "gemm_panels strided m=%d k=%d n=%d panels 1..4", m, k, n);
  free(x);
  free(w);
  free(packed);
  free(y);
}
#endif

/* ---- layernorm, softmax, gelu, gather --------------------------------------------------- */

static void test_layernorm_case(int rows, int c, float offset, float spread, int in_place) {
  float *x = rand_array((size_t)rows * c, -spread, spread);
  for (size_t i = 0; i < (size_t)rows * c; i++) x[i] += offset;
  float *w = rand_array((size_t)c, 0.5f, 1.5f);
  float *b = rand_array((size_t)c, -1, 1);
  float *y = guarded((size_t)rows * c);
  float *copy = malloc((size_t)rows * c * sizeof(float));
  memcpy(copy, x, (size_t)rows * c * sizeof(float));
  if (in_place) {
    memcpy(y, x, (size_t)rows * c * sizeof(float));
    vit_layernorm_f32(y, rows, c, w, b, 1e-6f, y);
  } else {
    vit_layernorm_f32(x, rows, c, w, b, 1e-6f, y);
  }
  int ok = guard_intact(y, (size_t)rows * c);
  for (int r = 0; r < rows; r++) {
    double mean = 0, var = 0;
    for (int j = 0; j < c; j++) mean += copy[(size_t)r * c + j];
    mean /= c;
    for (int j = 0; j < c; j++) var += (copy[(size_t)r * c + j] - mean) * (copy[(size_t)r * c + j] - mean);
    var /= c;
    for (int j = 0; j < c; j++) {
      const double want = (copy[(size_t)r * c + j] - mean) / sqrt(var + 1e-6) * w[j] + b[j];
      const double tol = 4 * FLT_EPSILON * (fabs((copy[(size_t)r * c + j] - mean) / sqrt(var + 1e-6) * w[j]) + fabs(b[j])) + 1e-7;
      if (!(fabs(y[(size_t)r * c + j] - want) <= tol)) ok = 0;
    }
  }
  check(ok, "layernorm rows=%d c=%d offset=%g spread=%g in_place=%d", rows, c, offset, spread,
        in_place);
  free(x);
  free(w);
  free(b);
  free(y);
  free(copy);
}

static void test_layernorm(void) {
  static const int rows[] = {1, 3, 197};
  static const int cs[] = {1, 5, 64, 385};
  for (size_t a = 0; a < 3; a++)
    for (size_t b = 0; b < 4; b++) {
      test_layernorm_case(rows[a], cs[b], 0, 1, 0);
      test_layernorm_case(rows[a], cs[b], 0, 1, 1);
      /* a large mean and a small spread: a one-pass float variance would fail here */
      test_layernorm_case(rows[a], cs[b], 1000, 0.01f, 0);
    }
}

/* The softmax op as Sources/VitEmitC/EmitModel.swift spells it out in emitted code. */
static void emitted_softmax(const float *in, int rows, int width, float *y) {
  for (int r = 0; r < rows; r++) {
    const float *x = in + r * width;
    float *out = y + r * width;
    float max = x[0], sum = 0.0f;
    for (int i = 1; i < width; i++) max = x[i] > max ? x[i] : max;
    for (int i = 0; i < width; i++) { out[i] = expf(x[i] - max); sum += out[i]; }
    for (int i = 0; i < width; i++) out[i] /= sum;
  }
}

/* vit_softmax_f32: the emitted loops' bits, close to the double reference, in place too. */
static void test_softmax(void) {
  static const int cs[] = {1, 2, 7, 17, 197};
  for (size_t a = 0; a < 5; a++) {
    const int rows = 3, c = cs[a];
    float *x = rand_array((size_t)rows * c, -20, 20);
    x[0] = x[c - 1]; /* the row's first and last value tie */
    float *y = guarded((size_t)rows * c);
    float *want_bits = malloc((size_t)rows * c * sizeof(float));
    vit_softmax_f32(x, rows, c, y);
    emitted_softmax(x, rows, c, want_bits);
    int ok = guard_intact(y, (size_t)rows * c);
    for (int r = 0; r < rows; r++) {
      double max = -INFINITY, sum = 0;
      for (int j = 0; j < c; j++) max = fmax(max, x[r * c + j]);
      for (int j = 0; j < c; j++) sum += exp((double)x[r * c + j] - max);
      for (int j = 0; j < c; j++) {
        const double want = exp((double)x[r * c + j] - max) / sum;
        if (!(fabs(y[r * c + j] - want) <= 1e-6 * want + 1e-9)) ok = 0;
      }
    }
    check(ok && same_bits(y, want_bits, (size_t)rows * c), "softmax rows=%d c=%d", rows, c);
    vit_softmax_f32(x, rows, c, x); /* in place gives the same bits */
    check(same_bits(x, y, (size_t)rows * c), "softmax in place rows=%d c=%d", rows, c);
    free(x);
    free(y);
    free(want_bits);
  }
}

/* vit_softmax_row_f32: softmax(s * scale + key_bias) against the double reference, on lengths
   around the vector widths, with and without the bias. */
static void test_softmax_row(void) {
  static const int ns[] = {1, 3, 4, 5, 15, 16, 17, 31, 33, 197};
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
    for (int with_bias = 0; with_bias < 2; with_bias++) {
      const int n = ns[a];
      const float scale = 0.125f;
      float *x = rand_array((size_t)n, -80, 80);
      float *bias = with_bias ? rand_array((size_t)n, -3, 0) : NULL;
      float *s = guarded((size_t)n);
      memcpy(s, x, (size_t)n * sizeof(float));
      vit_softmax_row_f32(s, n, scale, bias);
      int ok = guard_intact(s, (size_t)n);
      double max = -INFINITY, sum = 0, total = 0;
      for (int j = 0; j < n; j++) max = fmax(max, (double)(x[j] * scale) + (bias ? bias[j] : 0));
      for (int j = 0; j < n; j++) sum += exp((double)(x[j] * scale) + (bias ? bias[j] : 0) - max);
      for (int j = 0; j < n; j++) {
        const double want = exp((double)(x[j] * scale) + (bias ? bias[j] : 0) - max) / sum;
        if (!(fabs(s[j] - want) <= 1e-6 * want + 1e-9)) ok = 0;
        total += s[j];
      }
      check(ok && fabs(total - 1) < 1e-5, "softmax row n=%d bias=%d", n, with_bias);
      free(x);
      free(bias);
      free(s);
    }
}

static void test_gelu(void) {
  const size_t count = 1001;
  float *x = rand_array(count, -8, 8);
  x[0] = 0;
  x[1] = -0.0f;
  float *y = guarded(count);
  vit_gelu_f32(x, count, y);
  int ok = guard_intact(y, count);
  for (size_t i = 0; i < count; i++) {
    const double want = gelu_ref(x[i]);
    /* 1 + erf(x) cancels for negative x: an absolute error of ~ulp(1) * |x| / 2 */
    if (!(fabs(y[i] - want) <= 4 * FLT_EPSILON * fabs(want) + FLT_EPSILON * fabs(x[i]))) ok = 0;
  }
  check(ok, "gelu count=%zu", count);
  free(x);
  free(y);
}

/* ---- attention -------------------------------------------------------------------------- */

struct attention_result {
  float *out, *cls;
};

/* Runs vit_attention_f32 with scratch of exactly the documented size, misaligned by one float,
   followed by a guard. */
static struct attention_result run_attention(const float *qkv, int n, int heads, int d,
                                             const float *key_bias, int with_cls, int *guards_ok) {
  const int C = heads * d;
  const size_t need = VIT_ATTENTION_SCRATCH_FLOATS_T(n, heads, d, vit_get_threads());
  float *scratch = guarded(need + 1);
  struct attention_result r;
  r.out = guarded((size_t)n * C);
  r.cls = with_cls ? guarded((size_t)heads * n) : NULL;
  vit_attention_f32(qkv, n, heads, d, 1.0f / sqrtf((float)d), key_bias, r.cls, scratch + 1, r.out);
  *guards_ok = guard_intact(scratch, need + 1) && guard_intact(r.out, (size_t)n * C) &&
               (!with_cls || guard_intact(r.cls, (size_t)heads * n));
  free(scratch);
  return r;
}

static void test_attention_case(int n, int heads, int d, int with_cls, int with_bias) {
  const int C = heads * d;
  float *qkv = rand_array((size_t)n * 3 * C, -2, 2);
  float *kb = with_bias ? rand_array((size_t)n, -1, 1) : NULL;
  if (kb) kb[n - 1] = 2.5f; /* like log(size) of a merged token */
  int ok;
  struct attention_result r = run_attention(qkv, n, heads, d, kb, with_cls, &ok);
  const double scale = 1.0 / sqrt((double)(float)d);
  const float fscale = 1.0f / sqrtf((float)d);
  double *p = malloc((size_t)n * sizeof(double));
  double worst = 0;
  for (int h = 0; h < heads; h++) {
    for (int i = 0; i < n; i++) {
      double max = -INFINITY, sum = 0;
      for (int j = 0; j < n; j++) {
        double s = 0;
        for (int t = 0; t < d; t++)
          s += (double)qkv[(size_t)i * 3 * C + h * d + t] * qkv[(size_t)j * 3 * C + C + h * d + t];
        p[j] = s * (double)fscale + (kb ? kb[j] : 0.0);
        max = fmax(max, p[j]);
      }
      (void)scale;
      for (int j = 0; j < n; j++) sum += (p[j] = exp(p[j] - max));
      for (int j = 0; j < n; j++) p[j] /= sum;
      if (i == 0 && with_cls)
        for (int j = 0; j < n; j++)
          if (!(fabs(r.cls[(size_t)h * n + j] - p[j]) <= 1e-5 * p[j] + 1e-7)) ok = 0;
      for (int t = 0; t < d; t++) {
        double o = 0, mag = 0;
        for (int j = 0; j < n; j++) {
          o += p[j] * qkv[(size_t)j * 3 * C + 2 * C + h * d + t];
          mag += p[j] * fabs(qkv[(size_t)j * 3 * C + 2 * C + h * d + t]);
        }
        const double err = fabs(r.out[(size_t)i * C + h * d + t] - o);
        if (!(err <= 2e-5 * mag + 1e-7)) ok = 0;
        if (err / (mag + 1e-30) > worst) worst = err / (mag + 1e-30);
      }
    }
  }
  check(ok, "attention n=%d heads=%d d=%d cls=%d key_bias=%d (worst err/mag %.3g)", n, heads, d,
        with_cls, with_bias, worst);
  free(p);
  free(qkv);
  free(kb);
  free(r.out);
  free(r.cls);
}

static void test_attention(void) {
#ifdef VIT_TEST_QUICK
  static const int ns[] = {1, 2, 17, 40};
#else
  static const int ns[] = {1, 2, 17, 197};
#endif
  static const int ds[] = {32, 64};
  for (size_t a = 0; a < 4; a++)
    for (int heads = 1; heads <= 6; heads++)
      for (size_t b = 0; b < 2; b++)
        for (int flags = 0; flags < 4; flags++)
          test_attention_case(ns[a], heads, ds[b], flags & 1, flags >> 1);
  /* head widths that are not a multiple of 16 (partial value panels) */
  test_attention_case(31, 3, 24, 1, 1);
  test_attention_case(20, 2, 8, 1, 0);
}

/* ---- threads ---------------------------------------------------------------------------- */

static void test_threads_linear(int m, int k, int n, enum vit_epilogue epi) {
  float *x = rand_array((size_t)m * k, -1, 1);
  float *w = rand_array((size_t)n * k, -1, 1);
  float *bias = rand_array((size_t)n, -1, 1);
  float *res = rand_array((size_t)m * n, -1, 1);
  float *packed = malloc(packed_size(n, k) * sizeof(float));
  pack(w, n, k, packed);
  float *y1 = malloc((size_t)m * n * sizeof(float)), *yt = malloc((size_t)m * n * sizeof(float));
  static const int counts[] = {2, 3, 0};
  vit_set_threads(1);
  memcpy(y1, res, (size_t)m * n * sizeof(float));
  vit_linear_f32(x, m, k, packed, bias, n, epi, epi == VIT_EPI_RESIDUAL ? y1 : NULL, y1);
  int ok = 1;
  for (size_t c = 0; c < 3; c++) {
    vit_set_threads(counts[c]);
    memcpy(yt, res, (size_t)m * n * sizeof(float));
    vit_linear_f32(x, m, k, packed, bias, n, epi, epi == VIT_EPI_RESIDUAL ? yt : NULL, yt);
#ifdef VIT_BLAS_OPENBLAS
    /* OpenBLAS threads its own way: equal within float rounding, not bitwise. */
    for (size_t i = 0; i < (size_t)m * n; i++)
      if (!(fabsf(y1[i] - yt[i]) <= 1e-5f * (fabsf(y1[i]) + 1.0f) * sqrtf((float)k))) ok = 0;
#else
    ok = ok && same_bits(y1, yt, (size_t)m * n);
#endif
  }
#ifdef VIT_BLAS_OPENBLAS
  check(ok, "threads 1 vs 2, 3, all: linear (openblas) m=%d k=%d n=%d epi=%s close", m, k, n, epi_name(epi));
#else
  check(ok, "threads 1 vs 2, 3, all: linear m=%d k=%d n=%d epi=%s bitwise", m, k, n, epi_name(epi));
#endif
  vit_set_threads(1);
  free(x);
  free(w);
  free(bias);
  free(res);
  free(packed);
  free(y1);
  free(yt);
}

static void test_threads_attention(int n, int heads, int d) {
  const int C = heads * d;
  float *qkv = rand_array((size_t)n * 3 * C, -2, 2);
  float *kb = rand_array((size_t)n, -1, 1);
  int g1, g2, g3;
  vit_set_threads(1);
  struct attention_result a = run_attention(qkv, n, heads, d, kb, 1, &g1);
  vit_set_threads(2);
  struct attention_result b = run_attention(qkv, n, heads, d, kb, 1, &g2);
  vit_set_threads(3);
  struct attention_result c = run_attention(qkv, n, heads, d, kb, 1, &g3);
  const int ok = g1 && g2 && g3 && same_bits(a.out, b.out, (size_t)n * C) &&
                 same_bits(a.cls, b.cls, (size_t)heads * n) && same_bits(a.out, c.out, (size_t)n * C) &&
                 same_bits(a.cls, c.cls, (size_t)heads * n);
  check(ok, "threads 1 vs 2, 3: attention n=%d heads=%d d=%d bitwise", n, heads, d);
  vit_set_threads(1);
  free(qkv);
  free(kb);
  free(a.out);
  free(a.cls);
  free(b.out);
  free(b.cls);
  free(c.out);
  free(c.cls);
}

/* The header's macro is a constant expression that sizes a static scratch buffer. */
static _Alignas(64) float static_scratch[VIT_ATTENTION_SCRATCH_FLOATS(31, 3, 32)];

static void test_static_scratch(void) {
  const int n = 31, heads = 3, d = 32, C = heads * d;
  float *qkv = rand_array((size_t)n * 3 * C, -2, 2);
  int guards;
  vit_set_threads(1);
  struct attention_result a = run_attention(qkv, n, heads, d, NULL, 1, &guards);
  float *out = malloc((size_t)n * C * sizeof(float)), *cls = malloc((size_t)heads * n * sizeof(float));
  vit_set_threads(0);
  vit_attention_f32(qkv, n, heads, d, 1.0f / sqrtf((float)d), NULL, cls, static_scratch, out);
  check(guards && sizeof static_scratch / sizeof(float) >=
                      VIT_ATTENTION_SCRATCH_FLOATS_T(n, heads, d, vit_get_threads()) &&
            same_bits(a.out, out, (size_t)n * C) && same_bits(a.cls, cls, (size_t)heads * n),
        "attention with a static VIT_ATTENTION_SCRATCH_FLOATS buffer, all threads");
  vit_set_threads(1);
  free(qkv);
  free(out);
  free(cls);
  free(a.out);
  free(a.cls);
}

static void test_threads(void) {
  test_static_scratch();
#ifndef VIT_TEST_QUICK
  test_threads_linear(197, 384, 1152, VIT_EPI_NONE);
  test_threads_linear(197, 384, 384, VIT_EPI_RESIDUAL);
  test_threads_linear(197, 384, 1536, VIT_EPI_GELU);
  test_threads_linear(197, 1536, 384, VIT_EPI_RESIDUAL);
#else
  test_threads_linear(37, 96, 160, VIT_EPI_GELU);
#endif
  test_threads_linear(31, 385, 33, VIT_EPI_GELU);
  test_threads_linear(197, 385, 17, VIT_EPI_NONE);
  test_threads_linear(3, 1000, 1000, VIT_EPI_NONE);
  test_threads_attention(197, 6, 64);
  test_threads_attention(17, 3, 32);
  test_threads_attention(50, 2, 24);
  vit_set_threads(5);
  check(vit_get_threads() ==
#ifdef VIT_NO_THREADS
            1,
#else
            5,
#endif
        "vit_set_threads(5) -> vit_get_threads()");
  vit_set_threads(1000);
  check(vit_get_threads() >= 1 && vit_get_threads() <= VIT_MAX_THREADS, "thread cap");
  vit_set_threads(1);
}

/* ---- conv2d (LV-ViT's stem) ------------------------------------------------------------- */

static void test_conv2d_case(int ci, int h, int w, int co, int k, int stride, int pad, int band,
                             int with_bias) {
  const int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
  const int field = ci * k * k;
  float *x = rand_array((size_t)ci * h * w, -1, 1);
  float *wt = rand_array((size_t)co * field, -1, 1);
  float *bias = with_bias ? rand_array((size_t)co, -1, 1) : NULL;
  float *scratch = malloc(VIT_CONV2D_SCRATCH_FLOATS(ci, k, wo, band) * sizeof(float));
  float *y = guarded((size_t)co * ho * wo);
  vit_conv2d_f32(x, ci, h, w, wt, bias, co, k, stride, pad, band, scratch, y);
  int ok = guard_intact(y, (size_t)co * ho * wo);
  for (int o = 0; o < co; o++) {
    for (int oy = 0; oy < ho; oy++) {
      for (int ox = 0; ox < wo; ox++) {
        double acc = bias ? bias[o] : 0, mag = bias ? fabs(bias[o]) : 0;
        for (int c = 0; c < ci; c++) {
          for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
              const int iy = oy * stride + ky - pad, ix = ox * stride + kx - pad;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              const double t = (double)wt[((size_t)o * ci + c) * k * k + ky * k + kx] * x[((size_t)c * h + iy) * w + ix];
              acc += t;
              mag += fabs(t);
            }
          }
        }
        if (!(fabs(y[((size_t)o * ho + oy) * wo + ox] - acc) <= 1e-5 * mag + 1e-7)) ok = 0;
      }
    }
  }
  check(ok, "conv2d ci=%d %dx%d co=%d k=%d stride=%d pad=%d band=%d bias=%d", ci, h, w, co, k, stride,
        pad, band, with_bias);
  /* The same bits on 3 threads and with another band (one FMA chain per element). */
  float *y3 = guarded((size_t)co * ho * wo);
  float *scratch3 = malloc(VIT_CONV2D_SCRATCH_FLOATS(ci, k, wo, ho) * sizeof(float));
  vit_set_threads(3);
  vit_conv2d_f32(x, ci, h, w, wt, bias, co, k, stride, pad, ho, scratch3, y3);
  vit_set_threads(1);
  check(same_bits(y, y3, (size_t)co * ho * wo) && guard_intact(y3, (size_t)co * ho * wo),
        "conv2d ci=%d co=%d k=%d: bitwise equal on 3 threads with one band", ci, co, k);
  free(y3);
  free(scratch3);
  free(x);
  free(wt);
  free(bias);
  free(scratch);
  free(y);
}

static void test_conv2d(void) {
  test_conv2d_case(3, 13, 11, 5, 7, 2, 3, 2, 0);   /* LV-ViT's conv1 shape: odd map, last band short */
  test_conv2d_case(4, 9, 10, 17, 3, 1, 1, 3, 0);   /* conv2/3: more outputs than a panel */
  test_conv2d_case(4, 9, 10, 17, 3, 1, 1, 100, 1); /* one band for the whole map, with bias */
  test_conv2d_case(2, 16, 16, 3, 8, 8, 0, 1, 1);   /* the stride-8 projection */
  test_conv2d_case(3, 40, 64, 20, 3, 1, 1, 4, 1);  /* whole 16-pixel rows: the contiguous fast path */
}

int main(void) {
  vit_set_threads(1);
  printf("vit runtime kernel tests: gemm=%s\n", VIT_KERNEL_NAME);
  test_pack();
  test_linear();
#ifndef VIT_BLAS_OPENBLAS
  test_gemm_panels();
#endif
  test_layernorm();
  test_softmax();
  test_softmax_row();
  test_gelu();
  test_attention();
  test_conv2d();
  test_threads();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
