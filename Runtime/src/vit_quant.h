/*
 * vit_quant.h: the int8 quantization formula, header only and internal (no symbols): the one
 * definition that the int8 GEMM (vit_qgemm.c, activations at run time and weights) and the
 * weights loader (vit_weights.c, weights at load) both inline, and that the Swift compiler
 * reproduces bit for bit (VitIR's Int8Quantization) for the weights it embeds.
 *
 * A row of values v (k of them) quantizes symmetrically:
 *   amax  = max |v|              (0: the row is all zeros; then scale = 0 and every q = 0)
 *   inv   = 127.0f / amax        (one float division)
 *   q     = clamp(rint(v * inv), -127, 127)   (one float multiply, round half to even)
 *   scale = amax / 127.0f
 * Each step is one IEEE float operation in the default rounding mode: no contraction applies.
 */
#ifndef VIT_QUANT_H
#define VIT_QUANT_H

#include <math.h>
#include <stdint.h>

/* The multiplier a row of largest magnitude amax (finite, >= 0) is quantized with. */
static inline float vit_quant_inverse(float amax) { return amax > 0.0f ? 127.0f / amax : 0.0f; }

/* The scale of that row: what one step of q is worth. */
static inline float vit_quant_scale(float amax) { return amax / 127.0f; }

/* One value quantized with the row's multiplier. A NaN (a row that holds one, whose scale is
   then NaN too) quantizes to 0 rather than to an undefined conversion. */
static inline int8_t vit_quant_value(float v, float inv) {
  float q = rintf(v * inv);
  if (q != q) return 0;
  q = q > 127.0f ? 127.0f : q;
  q = q < -127.0f ? -127.0f : q;
  return (int8_t)q;
}

#endif /* VIT_QUANT_H */
