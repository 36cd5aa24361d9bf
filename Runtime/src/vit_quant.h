/*
 * vit_quant.h: the reduced-precision formulas, header only and internal (no symbols): the int8
 * quantization and the bf16 rounding that the weights loader (vit_weights.c, weights at load)
 * and the kernels (vit_bf16.c's activations) inline, and that the Swift compiler reproduces bit
 * for bit (VitIR's Int8Quantization and BFloat16) for the weights it embeds.
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
#include <string.h>

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

/* bf16: float32 v rounded to its upper 16 bits, to nearest, ties to even; a NaN stays a NaN
   (made quiet). Values past bf16's largest round to infinity, as IEEE rounding does. */
static inline uint16_t vit_bf16_round(float v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}

/* A bf16 value as float32 (exact). */
static inline float vit_bf16_float(uint16_t h) {
  const uint32_t bits = (uint32_t)h << 16;
  float v;
  memcpy(&v, &bits, 4);
  return v;
}

#endif /* VIT_QUANT_H */
