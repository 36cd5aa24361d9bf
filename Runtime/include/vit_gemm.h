/*
 * vit_gemm.h: layer 3 of the runtime, y = epilogue(x·Wᵀ + bias) on packed weights and the
 * packing (src/vit_gemm.c). It uses the thread pool (vit_threads.h), GELU (vit_math.h) and the
 * inline vector code of src/vit_simd.h; vit_attention.c calls it. See Runtime/README.md.
 */
#ifndef VIT_GEMM_H
#define VIT_GEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIT_NR 16 /* columns per packed panel */

/* Packed weight layout for y = x·Wᵀ (W is nn.Linear's [n][k], row-major):
   panel p (p = 0 .. ceil(n/16)-1) holds output features p*16 .. p*16+15;
   packed[(p*k + kk)*16 + j] = W[p*16 + j][kk], or 0 when p*16 + j >= n.
   The Swift compiler writes weights in exactly this layout.
   With -DVIT_BLAS_OPENBLAS the "packed" weights are instead W itself, [n][k] row-major. */
#define VIT_PACKED_FLOATS(n, k) ((size_t)(((n) + VIT_NR - 1) / VIT_NR) * VIT_NR * (size_t)(k))

enum vit_epilogue { VIT_EPI_NONE = 0, VIT_EPI_GELU = 1, VIT_EPI_RESIDUAL = 2 };

/* y[m][n] = epilogue(x[m][k] · Wᵀ + bias[n]), W [n][k] given packed (packed_w as above).
   bias may be NULL. VIT_EPI_GELU applies exact erf GELU to (x·Wᵀ + bias).
   VIT_EPI_RESIDUAL computes (x·Wᵀ + bias) + residual[m][n]; residual may alias y (exactly).
   x row stride k, y and residual row stride n. x must not overlap y.
   Each y element is one float multiply-add chain over kk = 0..k-1 (fused where the ISA has
   FMA), then + bias, then the epilogue, computed by one thread: results do not depend on the
   thread count (with VIT_BLAS_OPENBLAS they are OpenBLAS's, threaded its own way). */
void vit_linear_f32(const float *restrict x, int m, int k, const float *restrict packed_w,
                    const float *restrict bias, int n, enum vit_epilogue epilogue,
                    const float *residual, float *y);

/* Single-threaded GEMM on panel-packed weights, for rows i < m and panels p0 <= p < p1:
   y[i*ldy + j] = epilogue(sum_kk x[i*ldx + kk] * W[j][kk] + bias[j]) for the columns
   16*p0 <= j < min(16*p1, n); residual row stride ldr. Always uses the panel layout (also
   with VIT_BLAS_OPENBLAS). */
void vit_gemm_panels_f32(const float *x, size_t ldx, int m, int k, const float *packed, int n,
                         int p0, int p1, const float *bias, enum vit_epilogue epilogue,
                         const float *residual, size_t ldr, float *y, size_t ldy);

/* Packs W given by element strides (W[j][kk] = w[j*ldw_j + kk*ldw_k]) into the panel layout,
   n outputs by k inputs, panels p0 <= p < p1 only. */
void vit_pack_panels_f32(const float *w, size_t ldw_j, size_t ldw_k, int n, int k, int p0, int p1,
                         float *packed);

#ifdef __cplusplus
}
#endif

#endif /* VIT_GEMM_H */
