/*
 * vit_math.h: layer 2 of the runtime, softmax and GELU over arrays (src/vit_math.c). It uses
 * only the inline vector math of src/vit_simd.h; vit_gemm.c (GELU) and vit_attention.c
 * (softmax) call it. See Runtime/README.md.
 */
#ifndef VIT_MATH_H
#define VIT_MATH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Softmax of each row: x [rows][c] -> y [rows][c], exactly the loops the emitted code's
   softmax op spells out: max = x[0], then x[i] > max ? x[i] : max for i = 1 .. c-1; y[i] =
   expf(x[i] - max) (libm's expf, also with -DVIT_VECTOR_MATH) and sum += y[i] in index order;
   then y[i] /= sum. So the bits are the same whatever the build flags. y may alias x. */
void vit_softmax_f32(const float *x, int rows, int c, float *y);

/* Attention's row softmax, in place over one row of n scores: s = softmax(s * scale + key_bias)
   (key_bias may be NULL), max-subtracted. Max and sum go over a fixed set of lanes in a fixed
   order. libm expf; with -DVIT_VECTOR_MATH the runtime's vector exp (about 1 ulp, 0 below
   FLT_MIN). */
void vit_softmax_row_f32(float *s, int n, float scale, const float *key_bias);

/* Exact GELU, 0.5*x*(1 + erf(x/sqrt(2))), of count floats (libm erff; with -DVIT_VECTOR_MATH
   the runtime's vector erf, about 1 ulp). Each element gives the same bits as the GEMM's fused
   GELU epilogue. y may alias x. */
void vit_gelu_f32(const float *x, size_t count, float *y);

#ifdef __cplusplus
}
#endif

#endif /* VIT_MATH_H */
