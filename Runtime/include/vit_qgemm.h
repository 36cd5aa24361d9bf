/*
 * vit_qgemm.h: layer 3 of the runtime, beside vit_gemm.h: int8 linear layers (issue #17),
 * y = epilogue(dequant(xq·Wqᵀ) + bias) with symmetric int8 weights (per output channel) and
 * activations (per row), exact int32 accumulation (src/vit_qgemm.c). It uses the thread pool
 * (vit_threads.h, layer 1) and the inline GELU of src/vit_simd.h (layer 0); it calls nothing of
 * vit_gemm.c. See Runtime/README.md ("int8 linear layers").
 */
#ifndef VIT_QGEMM_H
#define VIT_QGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "vit_gemm.h" /* enum vit_epilogue */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the quantized weight block ----------------------------------------------------------

   A quantized weight W [n][k] (nn.Linear's layout) is ONE contiguous block of
   VIT_QWEIGHT_BYTES(n, k) bytes, 64-byte aligned:

   int8_t packed[VIT_QPACKED_BYTES(n, k)]: for panel p (0 <= p < VIT_QPANELS(n)), k-group g
     (0 <= g < VIT_QK(k)/4), column j (0..15) and t (0..3):
       packed[(((size_t)p * (VIT_QK(k)/4) + g) * 16 + j) * 4 + t] = Wq[16p + j][4g + t],
     or 0 where 16p + j >= n or 4g + t >= k. Each 64-byte group is 16 columns x 4 consecutive
     k: one zmm for AVX-512 VNNI's vpdpbusd, two 32-byte halves for AVX2, SDOT lanes on ARM.
     Every Wq is in [-127, 127] (the quantization below never gives -128).
   float scale[VIT_QNPAD(n)]: the per-output-channel weight scale, 0 for padding columns.
   int32_t colsum[VIT_QNPAD(n)]: sum over kk of Wq[j][kk], 0 for padding columns (for kernels
     that shift activations to u8, as vpdpbusd takes u8 x s8, and correct with -128*colsum).

   The Swift compiler writes embedded weights in exactly this layout, with the bits the
   quantization below gives. */
#define VIT_QPANELS(n) (((n) + 15) / 16)  /* panels of 16 output columns */
#define VIT_QNPAD(n) (VIT_QPANELS(n) * 16)
#define VIT_QK(k) (((k) + 3) / 4 * 4)     /* k rounded up to groups of 4 */
#define VIT_QPACKED_BYTES(n, k) ((size_t)VIT_QNPAD(n) * (size_t)VIT_QK(k)) /* a multiple of 64 */
#define VIT_QWEIGHT_BYTES(n, k) (VIT_QPACKED_BYTES(n, k) + 8 * (size_t)VIT_QNPAD(n))

/* ---- quantization ------------------------------------------------------------------------

   Symmetric, per row v of k floats (a row of W: an output channel; or a row of x), in float,
   default rounding mode, exactly these operations:
     amax = max over kk of |v[kk]|
     amax == 0:  scale = 0, every q = 0
     otherwise:  inv = 127.0f / amax                    (one float division)
                 q[kk] = (int8)clamp(rintf(v[kk] * inv), -127, 127)
                                                         (one float multiply; rintf rounds half
                                                          to even)
                 scale = amax / 127.0f
   Two cases the formula leaves open are defined so:
     - amax not finite (an inf or NaN in the row): scale = NaN and every q = 0, so that the
       row's outputs (x) or the channel's outputs (W) are NaN.
     - amax finite but below 127/FLT_MAX (about 3.7e-37), so that inv is +inf: v[kk] * inv is
       ±inf (clamped to ±127) for v[kk] != 0 and NaN for v[kk] == 0 (±0); clamp(NaN) = 0. */

/* W row-major [n][k] -> the weight block above at qweight (VIT_QWEIGHT_BYTES(n, k) bytes,
   64-byte aligned), padding included. For models that load weights at run time. */
void vit_quantize_weights_s8(const float *w, int n, int k, void *qweight);

/* x [m][k] (row stride ldx floats) -> xq [m][VIT_QK(k)] (row stride VIT_QK(k); the padding
   columns k .. VIT_QK(k)-1 are 0) and xscale [m]. */
void vit_quantize_rows_s8(const float *x, size_t ldx, int m, int k, int8_t *xq, float *xscale);

/* ---- the linear --------------------------------------------------------------------------

   x [m][k] row stride k; y and residual [m][n] row stride n; residual may alias y exactly;
   bias may be NULL (residual is read only with VIT_EPI_RESIDUAL). qweight is a block as
   above. xq (m * VIT_QK(k) bytes) and xscale (m floats) are caller-provided scratch; no
   allocation anywhere. k <= 16384 (so that |acc| <= k*127*127 fits int32).
   Quantizes x's rows into xq/xscale (vit_quantize_rows_s8), then for each i < m, j < n:
     acc = sum_kk xq[i][kk] * Wq[j][kk]      exact int32
     t = (float)acc                          int32 -> float, round to nearest
     s = xscale[i] * scale[j]                one float multiply
     t = t * s                               one float multiply
     t = t + bias[j]           (if bias)     one float add
     GELU:     t = gelu(t), the same GELU as vit_linear_f32's epilogue (vit_gelu_f32's bits)
     RESIDUAL: t = t + residual[i][j]
     y[i][j] = t
   Every float step is rounded on its own: no fused multiply-add in the dequantization (the
   runtime builds with gcc or clang; with clang, not under -ffp-contract=fast, which ignores
   the pragma that keeps them apart). Each output is computed by one thread, so the results
   are bitwise identical for any thread count, kernel (ISA) and compiler; only GELU's bits
   follow the build, as vit_gelu_f32's do (Runtime/README.md). */
void vit_linear_s8(const float *restrict x, int m, int k, const void *restrict qweight,
                   const float *restrict bias, int n, enum vit_epilogue epilogue,
                   const float *residual, float *y, int8_t *xq, float *xscale);

#ifdef __cplusplus
}
#endif

#endif /* VIT_QGEMM_H */
