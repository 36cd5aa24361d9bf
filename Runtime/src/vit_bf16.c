/*
 * vit_bf16.c: layer 4 of the runtime, beside vit_attention.c: vit_linear_bf16 (issue #17), bf16
 * linears on CPUs without bf16 products. The rows of x are rounded to bf16 once (into the
 * scratch, as floats); each task then expands one panel of 16 bf16 weight columns into its
 * thread's slot of the scratch and multiplies it with vit_gemm_panels_f32, the float GEMM's
 * own panel kernel and epilogue. A product of two bf16 values is exact in float32, so this is
 * the float GEMM on the rounded operands: what a bf16 dot-product instruction computes up to
 * the order of its float32 sums. The expansion costs 16·k conversions per panel against
 * 16·k·m multiply-adds. Uses the thread pool (layer 1) and vit_gemm_panels_f32 (layer 3).
 */
#include "vit_bf16.h"

#include "vit_quant.h"
#include "vit_threads.h"

struct vit_bf16_job {
  const float *rows, *bias, *residual;
  const uint16_t *w;
  float *y, *panels;
  int m, k, n;
  enum vit_epilogue epi;
};

/* Task p: panel p (columns 16p .. 16p+15) of every row. */
static void vit_bf16_task(void *ctx, int p, int thread) {
  const struct vit_bf16_job *j = ctx;
  const size_t k = (size_t)j->k;
  float *panel = j->panels + (size_t)thread * VIT_NR * k;
  const uint16_t *w = j->w + (size_t)p * VIT_NR * k;
  for (size_t i = 0; i < VIT_NR * k; i++) panel[i] = vit_bf16_float(w[i]);
  const int col = p * VIT_NR;
  const int ncols = j->n - col < VIT_NR ? j->n - col : VIT_NR;
  vit_gemm_panels_f32(j->rows, k, j->m, j->k, panel, ncols, 0, 1, j->bias ? j->bias + col : NULL, j->epi,
                      j->residual ? j->residual + col : NULL, (size_t)j->n, j->y + col, (size_t)j->n);
}

void vit_linear_bf16(const float *restrict x, int m, int k, const uint16_t *restrict packed_w,
                     const float *restrict bias, int n, enum vit_epilogue epilogue,
                     const float *residual, float *y, float *scratch) {
  if (m <= 0 || n <= 0) return;
  const size_t count = (size_t)m * (size_t)k;
  for (size_t i = 0; i < count; i++) scratch[i] = vit_bf16_float(vit_bf16_round(x[i]));
  struct vit_bf16_job job = {
      .rows = scratch, .bias = bias, .residual = epilogue == VIT_EPI_RESIDUAL ? residual : NULL,
      .w = packed_w, .y = y, .panels = scratch + (count + 15) / 16 * 16, .m = m, .k = k, .n = n, .epi = epilogue,
  };
  vit_parallel_for(vit_bf16_task, &job, (n + VIT_NR - 1) / VIT_NR, vit_get_threads());
}
