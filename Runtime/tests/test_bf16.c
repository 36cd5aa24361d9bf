/* test_bf16.c: vit_linear_bf16 (src/vit_bf16.c) against the float GEMM's panel kernel
   (vit_gemm_panels_f32, the one it runs, also in the OpenBLAS build) on operands rounded to
   bf16 by hand, bitwise: the bf16 linear is the float GEMM of the rounded operands, so every
   epilogue, odd shapes and every thread count must give exactly the float GEMM's bits. Also
   the rounding itself (vit_quant.h's vit_bf16_round): ties to even, NaN, overflow.
   Built and run by run_tests.sh in the configurations test_kernels.c runs in. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../src/vit_quant.h"
#include "test_check.h"
#include "vit_bf16.h"
#include "vit_gemm.h"
#include "vit_threads.h"

static uint32_t state = 12345;
static float next_value(void) {
  state = state * 1664525u + 1013904223u;
  return ((float)(state >> 8) / 16777216.0f - 0.5f) * 4.0f;
}

static float rounded(float v) { return vit_bf16_float(vit_bf16_round(v)); }

static void test_rounding(void) {
  const uint32_t cases[][2] = {
      {0x3f800000u, 0x3f80}, {0x3f808000u, 0x3f80}, {0x3f818000u, 0x3f82}, {0x3f808001u, 0x3f81},
      {0xbf808000u, 0xbf80}, {0x7f7fffffu, 0x7f80}, {0xff800000u, 0xff80}, {0x80000000u, 0x8000},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    float v;
    memcpy(&v, &cases[c][0], 4);
    check(vit_bf16_round(v) == cases[c][1], "bf16 of 0x%08x: 0x%04x, expected 0x%04x", cases[c][0], vit_bf16_round(v),
          cases[c][1]);
  }
  const float nan = NAN;
  check(isnan(vit_bf16_float(vit_bf16_round(nan))), "bf16 of NaN is not NaN");
}

static void test_linear(int m, int k, int n, enum vit_epilogue epi, int threads) {
  const int panels = (n + VIT_NR - 1) / VIT_NR;
  float *x = guarded((size_t)m * k), *w = guarded((size_t)n * k), *bias = guarded((size_t)n);
  float *residual = guarded((size_t)m * n), *want = guarded((size_t)m * n), *got = guarded((size_t)m * n);
  float *packed = guarded((size_t)panels * VIT_NR * k), *xr = guarded((size_t)m * k);
  float *scratch = guarded(VIT_BF16_SCRATCH_FLOATS_T(m, k, threads));
  uint16_t *bpacked = malloc(sizeof(uint16_t) * (size_t)panels * VIT_NR * k);
  for (int i = 0; i < m * k; i++) x[i] = next_value(), xr[i] = rounded(x[i]);
  for (int i = 0; i < n * k; i++) w[i] = rounded(next_value());
  for (int j = 0; j < n; j++) bias[j] = next_value();
  for (int i = 0; i < m * n; i++) residual[i] = next_value();
  vit_pack_panels_f32(w, (size_t)k, 1, n, k, 0, panels, packed);
  for (size_t i = 0; i < (size_t)panels * VIT_NR * k; i++) bpacked[i] = vit_bf16_round(packed[i]);
  vit_gemm_panels_f32(xr, (size_t)k, m, k, packed, n, 0, panels, bias, epi, residual, (size_t)n, want, (size_t)n);
  vit_set_threads(threads);
  vit_linear_bf16(x, m, k, bpacked, bias, n, epi, residual, got, scratch);
  int same = 1;
  for (int i = 0; i < m * n; i++) same &= memcmp(&want[i], &got[i], 4) == 0;
  check(same, "bf16 m=%d k=%d n=%d epilogue %d, %d threads: not the float GEMM's bits", m, k, n, (int)epi, threads);
  check(guard_intact(got, (size_t)m * n) && guard_intact(scratch, VIT_BF16_SCRATCH_FLOATS_T(m, k, threads)),
        "bf16 m=%d k=%d n=%d: a write past the end", m, k, n);
  /* The residual may be y itself. */
  memcpy(got, residual, sizeof(float) * (size_t)m * n);
  vit_linear_bf16(x, m, k, bpacked, bias, n, VIT_EPI_RESIDUAL, got, got, scratch);
  vit_gemm_panels_f32(xr, (size_t)k, m, k, packed, n, 0, panels, bias, VIT_EPI_RESIDUAL, residual, (size_t)n, want, (size_t)n);
  same = 1;
  for (int i = 0; i < m * n; i++) same &= memcmp(&want[i], &got[i], 4) == 0;
  check(same, "bf16 m=%d k=%d n=%d, residual = y, %d threads: not the float GEMM's bits", m, k, n, threads);
  free(x), free(w), free(bias), free(residual), free(want), free(got), free(packed), free(xr), free(scratch), free(bpacked);
}

int main(void) {
  test_rounding();
  const int shapes[][3] = {{1, 1, 1}, {5, 3, 17}, {7, 64, 48}, {197, 384, 40}, {13, 383, 16}, {2, 1536, 33}};
  const enum vit_epilogue epilogues[] = {VIT_EPI_NONE, VIT_EPI_GELU, VIT_EPI_RESIDUAL};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int e = 0; e < 3; e++)
      for (int threads = 1; threads <= 3; threads++) test_linear(shapes[s][0], shapes[s][1], shapes[s][2], epilogues[e], threads);
  vit_join_threads();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
