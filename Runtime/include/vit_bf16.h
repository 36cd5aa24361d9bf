/*
 * vit_bf16.h: layer 4 of the runtime, beside vit_attention.h: bf16 linear layers (issue #17),
 * as a conversion on CPUs without bf16 products. The weights are stored bf16, half the bytes
 * of float32, in the float GEMM's panel layout; the activations are rounded to bf16; each
 * product of two bf16 values is exact in float32, and the sums are float32 (src/vit_bf16.c).
 * It uses the thread pool (vit_threads.h) and the float GEMM's panel kernel (vit_gemm.h).
 */
#ifndef VIT_BF16_H
#define VIT_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "vit_gemm.h" /* enum vit_epilogue, VIT_NR */

#ifdef __cplusplus
extern "C" {
#endif

/* A bf16 weight W [n][k] is VIT_PACKED_FLOATS(n, k) uint16 values in the float panel layout
   (vit_gemm.h): packed[(p*k + kk)*16 + j] = bf16(W[16p + j][kk]), 0 past n. bf16(v) rounds
   float32 v to its upper 16 bits, to nearest with ties to even (a NaN stays a quiet NaN): the
   rounding the Swift compiler applies to the weights it embeds and the interpreter to both
   operands (VitIR's BFloat16). */
#define VIT_BF16_BYTES(n, k) (2 * VIT_PACKED_FLOATS(n, k))

/* Scratch of vit_linear_bf16 on m rows of k, for `threads` threads: the rows rounded to bf16
   (as floats), then one expanded panel per thread. */
#define VIT_BF16_SCRATCH_FLOATS_T(m, k, threads) \
  ((size_t)(m) * (size_t)(k) + 16 + (size_t)(threads) * VIT_NR * (size_t)(k))

/* y[m][n] = epilogue(bf16(x) · bf16(W)ᵀ + bias), as vit_linear_f32 computes it on the rounded
   operands: each y element one float multiply-add chain over kk (fused where the ISA has FMA),
   then + bias, then the epilogue, by one thread, so the results do not depend on the thread
   count. Arguments as vit_linear_f32's; packed_w as above; scratch holds
   VIT_BF16_SCRATCH_FLOATS_T(m, k, vit_get_threads()) floats, 64-byte aligned. */
void vit_linear_bf16(const float *restrict x, int m, int k, const uint16_t *restrict packed_w,
                     const float *restrict bias, int n, enum vit_epilogue epilogue,
                     const float *residual, float *y, float *scratch);

#ifdef __cplusplus
}
#endif

#endif /* VIT_BF16_H */
