/*
 * vit_attention.h: layer 4 of the runtime, multi-head attention, layernorm and LV-ViT's conv2d
 * (src/vit_attention.c). Attention packs K and V and multiplies with the GEMM layer
 * (vit_gemm.h), takes its row softmax from vit_math.h and runs its tasks on vit_threads.h.
 * See Runtime/README.md.
 */
#ifndef VIT_ATTENTION_H
#define VIT_ATTENTION_H

#include <stddef.h>

#include "vit_gemm.h"
#include "vit_threads.h"

#ifdef __cplusplus
extern "C" {
#endif

/* LayerNorm of each row: x [rows][c] -> y [rows][c], y = (x - mean) / sqrt(var + eps) * w + b,
   var biased (divided by c); mean, variance and (x - mean)/std in double. w or b may be NULL
   (1 and 0). y may alias x. */
void vit_layernorm_f32(const float *x, int rows, int c, const float *restrict w,
                       const float *restrict b, float eps, float *y);

/* Row tile of the attention kernel: query rows handled together by one thread. */
#define VIT_ATTENTION_ROWS 16

/* Scratch floats vit_attention_f32 needs for n tokens, `heads` heads of width head_dim, run by
   up to `threads` threads: per head the keys packed (ceil(n/16)*16*head_dim) and the values
   packed (ceil(head_dim/16)*16*n), plus per thread one [VIT_ATTENTION_ROWS][ceil(n/16)*16]
   tile of scores, plus 16 floats of alignment slack. */
#define VIT_ATTENTION_SCRATCH_FLOATS_T(n, heads, head_dim, threads)                        \
  ((size_t)(heads) * (VIT_PACKED_FLOATS((n), (head_dim)) + VIT_PACKED_FLOATS((head_dim), (n))) \
   + (size_t)(threads) * VIT_ATTENTION_ROWS * VIT_PACKED_FLOATS((n), 1) + 16)
/* The same for any thread count (VIT_MAX_THREADS: 64, or 1 with -DVIT_NO_THREADS): what a
   static buffer should hold. A constant expression for constant arguments, e.g.
   static _Alignas(64) float scratch[VIT_ATTENTION_SCRATCH_FLOATS(197, 6, 64)]; */
#define VIT_ATTENTION_SCRATCH_FLOATS(n, heads, head_dim)                                    \
  VIT_ATTENTION_SCRATCH_FLOATS_T((n), (heads), (head_dim), VIT_MAX_THREADS)

/* Multi-head self-attention from a fused qkv [n][3C], C = heads*head_dim (timm layout: q col
   h*d+j, k col C+h*d+j, v col 2C+h*d+j). Logits s[i][j] = (q_i·k_j) * scale (+ key_bias[j] when
   key_bias != NULL, ToMe's log(size)); softmax over j (vit_softmax_row_f32); out [n][C] with
   column h*d+j = sum_j p[i][j] v_j. Never materialises [heads][n][n]: one VIT_ATTENTION_ROWS
   tile of query rows at a time per thread.
   cls_attn (may be NULL): [heads][n], the post-softmax attention of query row 0,
   cls_attn[h*n + j].
   scratch: at least VIT_ATTENTION_SCRATCH_FLOATS_T(n, heads, head_dim, vit_get_threads())
   floats (VIT_ATTENTION_SCRATCH_FLOATS(n, heads, head_dim) always suffices); 16-float aligned
   is best. qkv, scratch and out must not overlap. */
void vit_attention_f32(const float *restrict qkv, int n, int heads, int head_dim, float scale,
                       const float *key_bias, float *restrict cls_attn, float *restrict scratch,
                       float *restrict out);

/* ---- LV-ViT's convolutional stem ---- */

/* Scratch floats vit_conv2d_f32 needs: one band of band_rows output rows (band_rows*wo pixels)
   as im2col columns in the GEMM's panel layout, VIT_PACKED_FLOATS(pixels, ci*k*k), plus 16
   floats of alignment slack. */
#define VIT_CONV2D_SCRATCH_FLOATS(ci, k, wo, band_rows) \
  (VIT_PACKED_FLOATS((size_t)(band_rows) * (wo), (size_t)(ci) * (k) * (k)) + 16)

/* Conv2d with zero padding, as PyTorch's nn.Conv2d (cross-correlation):
   y[o][oy][ox] = sum_{i,ky,kx} W[o][i][ky][kx] * x[i][oy*stride+ky-pad][ox*stride+kx-pad]
   (+ bias[o] when bias != NULL); x [ci][h][w], y [co][ho][wo] with
   ho = (h + 2*pad - k)/stride + 1 (wo alike); weight is W as stored, [co][ci*k*k] row-major.
   band_rows output rows at a time; each panel of 16 output pixels is one task on the thread
   pool: its im2col columns written directly in the GEMM's panel layout, then
   vit_gemm_panels_f32 with the weight as the left operand, writing y in place (CHW, no
   transpose). Each output element is one FMA chain over i, ky, kx in that order, then + bias:
   the result does not depend on the thread count or the band.
   scratch: VIT_CONV2D_SCRATCH_FLOATS(ci, k, wo, band_rows) floats; x, y and scratch must not
   overlap. */
void vit_conv2d_f32(const float *restrict x, int ci, int h, int w, const float *restrict weight,
                    const float *restrict bias, int co, int k, int stride, int pad, int band_rows,
                    float *restrict scratch, float *restrict y);

#ifdef __cplusplus
}
#endif

#endif /* VIT_ATTENTION_H */
