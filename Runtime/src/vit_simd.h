/*
 * vit_simd.h: layer 0 of the runtime, header only (no symbols): the instruction set's vector
 * type and its operations (VF_*), and on them the vector exp, erf and GELU that the math
 * layer (vit_math.c) and the GEMM epilogue (vit_gemm.c) both inline. Internal: emitted code
 * never includes it.
 *
 * Layers, each using only those below it (Runtime/README.md; tests/check_layers.sh checks it):
 *   0 vit_simd.h       vector primitives, exp/erf/GELU on vectors (inline)
 *   1 vit_threads.c    the thread pool
 *   2 vit_math.c       softmax and GELU over arrays                  uses 0
 *   3 vit_gemm.c       packing, microkernels, vit_linear_f32           uses 0, 1, 2
 *   3 vit_qgemm.c      int8 linear: quantization, int8 microkernels    uses 0, 1
 *   4 vit_attention.c  attention, layernorm                            uses 1, 2, 3
 *   5 vit_prune.c      the token-pruning kernels                       uses none
 *
 * The kernel is chosen at compile time from the predefined macros:
 *   __AVX512F__             16 floats per vector (zmm)
 *   __AVX2__ && __FMA__     8 (ymm)
 *   __ARM_NEON              4 (q registers; vfmaq_f32 where __ARM_FEATURE_FMA, else vmlaq_f32)
 *   otherwise / -DVIT_GENERIC   1: portable C
 *
 * exp and erf: by default libm's expf (softmax) and erff (GELU), one element at a time. With
 * -DVIT_VECTOR_MATH they are the runtime's own vector polynomials instead (vit_vexp, vit_verf
 * below: max error about 1 ulp, measured against double erf/exp; see Runtime/README.md), which
 * makes GELU and softmax several times faster.
 */
#ifndef VIT_SIMD_H
#define VIT_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(VIT_GENERIC)
#define VIT_KERNEL_SCALAR 1
#elif defined(__AVX512F__)
#define VIT_KERNEL_AVX512 1
#include <immintrin.h>
#elif defined(__AVX2__) && defined(__FMA__)
#define VIT_KERNEL_AVX2 1
#include <immintrin.h>
#elif defined(__ARM_NEON) || defined(__ARM_NEON__)
#define VIT_KERNEL_NEON 1
#include <arm_neon.h>
#else
#define VIT_KERNEL_SCALAR 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define VIT_ALWAYS_INLINE static inline __attribute__((always_inline))
#define VIT_HELPER static inline __attribute__((unused))
#else
#define VIT_ALWAYS_INLINE static inline
#define VIT_HELPER static inline
#endif

/* ---- vector primitives ------------------------------------------------------------------ */
/* vit_vf holds VIT_VLEN floats. VF_FMA(acc, a, b) = acc + a*b (fused where the ISA has it). */

#if defined(VIT_KERNEL_AVX512)
#define VIT_ISA_NAME "avx512"
#define VIT_VLEN 16
typedef __m512 vit_vf;
#define VF_ZERO() _mm512_setzero_ps()
#define VF_SET1(c) _mm512_set1_ps(c)
#define VF_LOAD(p) _mm512_loadu_ps(p)
#define VF_BCAST(p) _mm512_set1_ps(*(p))
#define VF_STORE(p, v) _mm512_storeu_ps((p), (v))
#define VF_FMA(acc, a, b) _mm512_fmadd_ps((a), (b), (acc))
#define VF_FNMA(acc, a, b) _mm512_fnmadd_ps((a), (b), (acc))
#define VF_ADD(a, b) _mm512_add_ps((a), (b))
#define VF_SUB(a, b) _mm512_sub_ps((a), (b))
#define VF_MUL(a, b) _mm512_mul_ps((a), (b))
#define VF_DIV(a, b) _mm512_div_ps((a), (b))
#define VF_MIN(a, b) _mm512_min_ps((a), (b))
#define VF_MAX(a, b) _mm512_max_ps((a), (b))
#define VF_AND(a, b) \
  _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VF_XOR(a, b) \
  _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VF_LT_SELECT(a, b, x, y) \
  _mm512_mask_blend_ps(_mm512_cmp_ps_mask((a), (b), _CMP_LT_OQ), (y), (x))
/* 2^n for integer-valued n in [-126, 127] */
#define VF_POW2I(n) \
  _mm512_castsi512_ps(                                                                 \
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define VF_HSUM(v) vit_hsum_avx512(v)
#define VF_HMAX(v) _mm512_reduce_max_ps(v)
VIT_HELPER float vit_hsum_avx512(__m512 v) { /* fixed order: halves, then halves again */
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
#elif defined(VIT_KERNEL_AVX2)
#define VIT_ISA_NAME "avx2"
#define VIT_VLEN 8
typedef __m256 vit_vf;
#define VF_ZERO() _mm256_setzero_ps()
#define VF_SET1(c) _mm256_set1_ps(c)
#define VF_LOAD(p) _mm256_loadu_ps(p)
#define VF_BCAST(p) _mm256_broadcast_ss(p)
#define VF_STORE(p, v) _mm256_storeu_ps((p), (v))
#define VF_FMA(acc, a, b) _mm256_fmadd_ps((a), (b), (acc))
#define VF_FNMA(acc, a, b) _mm256_fnmadd_ps((a), (b), (acc))
#define VF_ADD(a, b) _mm256_add_ps((a), (b))
#define VF_SUB(a, b) _mm256_sub_ps((a), (b))
#define VF_MUL(a, b) _mm256_mul_ps((a), (b))
#define VF_DIV(a, b) _mm256_div_ps((a), (b))
#define VF_MIN(a, b) _mm256_min_ps((a), (b))
#define VF_MAX(a, b) _mm256_max_ps((a), (b))
#define VF_AND(a, b) _mm256_and_ps((a), (b))
#define VF_XOR(a, b) _mm256_xor_ps((a), (b))
#define VF_LT_SELECT(a, b, x, y) _mm256_blendv_ps((y), (x), _mm256_cmp_ps((a), (b), _CMP_LT_OQ))
#define VF_POW2I(n) \
  _mm256_castsi256_ps(                                                                 \
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define VF_HSUM(v) vit_hsum_avx2(v)
#define VF_HMAX(v) vit_hmax_avx2(v)
VIT_HELPER float vit_hsum_avx2(__m256 v) {
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
VIT_HELPER float vit_hmax_avx2(__m256 v) {
  __m128 q = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  q = _mm_max_ps(q, _mm_movehl_ps(q, q));
  q = _mm_max_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
#elif defined(VIT_KERNEL_NEON)
#define VIT_ISA_NAME "neon"
#define VIT_VLEN 4
typedef float32x4_t vit_vf;
#define VF_ZERO() vdupq_n_f32(0.0f)
#define VF_SET1(c) vdupq_n_f32(c)
#define VF_LOAD(p) vld1q_f32(p)
#define VF_BCAST(p) vld1q_dup_f32(p)
#define VF_STORE(p, v) vst1q_f32((p), (v))
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
#define VF_FMA(acc, a, b) vfmaq_f32((acc), (a), (b))
#define VF_FNMA(acc, a, b) vfmsq_f32((acc), (a), (b))
#else
#define VF_FMA(acc, a, b) vmlaq_f32((acc), (a), (b))
#define VF_FNMA(acc, a, b) vmlsq_f32((acc), (a), (b))
#endif
#define VF_ADD(a, b) vaddq_f32((a), (b))
#define VF_SUB(a, b) vsubq_f32((a), (b))
#define VF_MUL(a, b) vmulq_f32((a), (b))
#if defined(__aarch64__)
#define VF_DIV(a, b) vdivq_f32((a), (b))
#else
#define VF_DIV(a, b) vit_div_neon32((a), (b))
VIT_HELPER float32x4_t vit_div_neon32(float32x4_t a, float32x4_t b) { /* IEEE, lane by lane */
  float x[4], y[4];
  vst1q_f32(x, a);
  vst1q_f32(y, b);
  for (int i = 0; i < 4; i++) x[i] = x[i] / y[i];
  return vld1q_f32(x);
}
#endif
#define VF_MIN(a, b) vminq_f32((a), (b))
#define VF_MAX(a, b) vmaxq_f32((a), (b))
#define VF_AND(a, b) \
  vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(a), vreinterpretq_u32_f32(b)))
#define VF_XOR(a, b) \
  vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(a), vreinterpretq_u32_f32(b)))
#define VF_LT_SELECT(a, b, x, y) vbslq_f32(vcltq_f32((a), (b)), (x), (y))
#define VF_POW2I(n) \
  vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23))
#define VF_HSUM(v) vit_hsum_neon(v)
#define VF_HMAX(v) vit_hmax_neon(v)
VIT_HELPER float vit_hsum_neon(float32x4_t v) {
  const float a = vgetq_lane_f32(v, 0), b = vgetq_lane_f32(v, 1);
  const float c = vgetq_lane_f32(v, 2), d = vgetq_lane_f32(v, 3);
  return (a + c) + (b + d);
}
VIT_HELPER float vit_hmax_neon(float32x4_t v) {
  float a = vgetq_lane_f32(v, 0), b = vgetq_lane_f32(v, 1);
  float c = vgetq_lane_f32(v, 2), d = vgetq_lane_f32(v, 3);
  a = b > a ? b : a;
  c = d > c ? d : c;
  return c > a ? c : a;
}
#else
#define VIT_ISA_NAME "scalar"
#define VIT_VLEN 1
typedef float vit_vf;
#define VF_ZERO() 0.0f
#define VF_SET1(c) (c)
#define VF_LOAD(p) (*(p))
#define VF_BCAST(p) (*(p))
#define VF_STORE(p, v) (*(p) = (v))
#define VF_FMA(acc, a, b) ((acc) + (a) * (b))
#define VF_FNMA(acc, a, b) ((acc) - (a) * (b))
#define VF_ADD(a, b) ((a) + (b))
#define VF_SUB(a, b) ((a) - (b))
#define VF_MUL(a, b) ((a) * (b))
#define VF_DIV(a, b) ((a) / (b))
#define VF_MIN(a, b) ((b) < (a) ? (b) : (a))
#define VF_MAX(a, b) ((b) > (a) ? (b) : (a))
#define VF_LT_SELECT(a, b, x, y) ((a) < (b) ? (x) : (y))
#define VF_POW2I(n) vit_pow2i_scalar(n)
#define VF_HSUM(v) (v)
#define VF_HMAX(v) (v)
VIT_HELPER float vit_pow2i_scalar(float n) {
  const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
  float r;
  memcpy(&r, &bits, sizeof r);
  return r;
}
#endif

/* ---- int8 kernels (vit_qgemm.c) ---------------------------------------------------------- */
/* Chosen apart from the float kernel, from the predefined macros:
     __AVX2__                                   AVX2 (also in AVX-512 builds)
     __aarch64__ && __ARM_FEATURE_DOTPROD       SDOT (vdotq_s32), -march=armv8.2-a+dotprod
     __ARM_NEON                                 NEON vmull_s8/vpadalq_s16 (aarch64, armv7)
     otherwise / -DVIT_GENERIC                  portable C
   Every kernel gives the same exact int32 sums; VIT_QKERNEL_NAME names the one compiled in. */
#if defined(VIT_GENERIC)
#define VIT_QKERNEL_SCALAR 1
#define VIT_QKERNEL_NAME "scalar"
#elif defined(__AVX2__)
#define VIT_QKERNEL_AVX2 1
#define VIT_QKERNEL_NAME "avx2"
#elif defined(__aarch64__) && defined(__ARM_NEON) && defined(__ARM_FEATURE_DOTPROD)
#define VIT_QKERNEL_SDOT 1
#define VIT_QKERNEL_NAME "sdot"
#elif defined(__ARM_NEON) || defined(__ARM_NEON__)
#define VIT_QKERNEL_NEON 1
#define VIT_QKERNEL_NAME "neon"
#else
#define VIT_QKERNEL_SCALAR 1
#define VIT_QKERNEL_NAME "scalar"
#endif

/* The name of the kernel compiled in: "avx512", "avx2", "neon" or "scalar", then "+vecmath"
   with VIT_VECTOR_MATH and "+openblas" with VIT_BLAS_OPENBLAS (for tests and benchmarks). */
#ifdef VIT_VECTOR_MATH
#define VIT_MATH_NAME "+vecmath"
#else
#define VIT_MATH_NAME ""
#endif
#ifdef VIT_BLAS_OPENBLAS
#define VIT_KERNEL_NAME VIT_ISA_NAME VIT_MATH_NAME "+openblas"
#else
#define VIT_KERNEL_NAME VIT_ISA_NAME VIT_MATH_NAME
#endif

/* ---- exp and erf ------------------------------------------------------------------------ */

#define VIT_SQRT1_2 0.70710678118654752440f /* float 1/sqrt(2) */

#ifdef VIT_VECTOR_MATH

/* exp(y), lane by lane: y = n ln2 + r, |r| <= ln2/2 (Cody-Waite, ln2 = C1 + C2), Cephes'
   degree-7 polynomial for e^r, times 2^n. Results below FLT_MIN (y < -87.33) are 0. */
VIT_ALWAYS_INLINE vit_vf vit_vexp(vit_vf y) {
  y = VF_MIN(y, VF_SET1(88.3f));
  const vit_vf under = VF_SET1(-87.33f);
  const vit_vf yc = VF_MAX(y, under);
  /* n = round-to-nearest(y * log2 e), via the 1.5 * 2^23 trick (|n| < 2^22) */
  const vit_vf magic = VF_SET1(12582912.0f);
  const vit_vf n = VF_SUB(VF_FMA(magic, yc, VF_SET1(1.44269504088896341f)), magic);
  vit_vf r = VF_FNMA(yc, n, VF_SET1(0.693359375f));
  r = VF_FNMA(r, n, VF_SET1(-2.12194440e-4f));
  vit_vf p = VF_SET1(1.9875691500e-4f);
  p = VF_FMA(VF_SET1(1.3981999507e-3f), p, r);
  p = VF_FMA(VF_SET1(8.3334519073e-3f), p, r);
  p = VF_FMA(VF_SET1(4.1665795894e-2f), p, r);
  p = VF_FMA(VF_SET1(1.6666665459e-1f), p, r);
  p = VF_FMA(VF_SET1(5.0000001201e-1f), p, r);
  p = VF_ADD(VF_FMA(r, p, VF_MUL(r, r)), VF_SET1(1.0f));
  p = VF_MUL(p, VF_POW2I(n));
  return VF_LT_SELECT(y, under, VF_ZERO(), p);
}

/* erf(x), lane by lane. a = |x|:
     a < 0.875:  erf = a + a*Q(a^2), Q of degree 5;
     otherwise:  erf = 1 - exp(-a^2) * G(1/(1+a)), G of degree 8 (a clamped to 4, erf = 1 in
                 float from 3.92 on).
   Least-squares fits on Chebyshev nodes (Runtime/README.md); max error about 1 ulp. */
VIT_ALWAYS_INLINE vit_vf vit_verf(vit_vf x) {
#if VIT_VLEN == 1
  const vit_vf a = VF_MIN(fabsf(x), 4.0f);
#else
  const vit_vf sign = VF_AND(x, VF_SET1(-0.0f));
  const vit_vf a = VF_MIN(VF_XOR(x, sign), VF_SET1(4.0f));
#endif
  const vit_vf u = VF_MUL(a, a);
  vit_vf q = VF_SET1(-0x1.46e5fap-11f);
  q = VF_FMA(VF_SET1(0x1.4a37dp-8f), q, u);
  q = VF_FMA(VF_SET1(-0x1.b707d4p-6f), q, u);
  q = VF_FMA(VF_SET1(0x1.ce22b8p-4f), q, u);
  q = VF_FMA(VF_SET1(-0x1.812718p-2f), q, u);
  q = VF_FMA(VF_SET1(0x1.06eba8p-3f), q, u);
  const vit_vf small = VF_FMA(a, a, q);
  const vit_vf t = VF_DIV(VF_SET1(1.0f), VF_ADD(a, VF_SET1(1.0f)));
  vit_vf g = VF_SET1(0x1.417e34p-1f);
  g = VF_FMA(VF_SET1(-0x1.1cfe82p+1f), g, t);
  g = VF_FMA(VF_SET1(0x1.88c4p+1f), g, t);
  g = VF_FMA(VF_SET1(-0x1.a8413ep+0f), g, t);
  g = VF_FMA(VF_SET1(-0x1.1c960cp-2f), g, t);
  g = VF_FMA(VF_SET1(0x1.72357cp-2f), g, t);
  g = VF_FMA(VF_SET1(0x1.148a76p-1f), g, t);
  g = VF_FMA(VF_SET1(0x1.227e02p-1f), g, t);
  g = VF_FMA(VF_SET1(-0x1.5c05ecp-13f), g, t);
  const vit_vf e = vit_vexp(VF_SUB(VF_ZERO(), u));
  const vit_vf large = VF_FNMA(VF_SET1(1.0f), e, g);
  const vit_vf r = VF_LT_SELECT(a, VF_SET1(0.875f), small, large);
#if VIT_VLEN == 1
  return copysignf(r, x);
#else
  return VF_XOR(r, sign);
#endif
}

/* GELU(v) = h + h*erf(v/sqrt 2), h = v/2 */
VIT_ALWAYS_INLINE vit_vf vit_vgelu(vit_vf v) {
  const vit_vf h = VF_MUL(v, VF_SET1(0.5f));
  return VF_FMA(h, h, vit_verf(VF_MUL(v, VF_SET1(VIT_SQRT1_2))));
}

/* GELU in place over count floats, count a multiple of VIT_VLEN. */
VIT_HELPER void vit_gelu_row(float *t, int count) {
  for (int j = 0; j < count; j += VIT_VLEN) VF_STORE(t + j, vit_vgelu(VF_LOAD(t + j)));
}

#else /* libm */

/* GELU(v) = v/2 * (1 + erf(v/sqrt 2)), libm's erff */
VIT_HELPER float vit_gelu1(float v) { return 0.5f * v * (1.0f + erff(v * VIT_SQRT1_2)); }

/* GELU in place over count floats. */
VIT_HELPER void vit_gelu_row(float *t, int count) {
  for (int j = 0; j < count; j++) t[j] = vit_gelu1(t[j]);
}

#endif

#endif /* VIT_SIMD_H */
