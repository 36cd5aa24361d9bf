/*
 * vit_gemm.c: the instruction-set-specific half of the runtime. y = epilogue(x·Wᵀ + bias) on
 * pre-packed weights, and the vector loops of softmax and GELU.
 *
 * The microkernel is chosen at compile time from the predefined macros:
 *   __AVX512F__             up to 8 rows x 32 columns (two panels), zmm accumulators
 *   __AVX2__ && __FMA__     up to 6 rows x 16 columns (one panel), two ymm per row
 *   __ARM_NEON              aarch64: up to 6 rows x 16 columns; armv7: up to 2 rows x 16
 *                           (vfmaq_f32 where __ARM_FEATURE_FMA, else vmlaq_f32)
 *   otherwise / -DVIT_GENERIC   portable C, up to 4 rows x 16 columns
 * -DVIT_BLAS_OPENBLAS makes vit_linear_f32 call cblas_sgemm on unpacked [n][k] weights instead
 * (the packed kernels stay, for attention).
 *
 * Every output element is one FMA chain acc = fma(x[kk], w[kk], acc), kk = 0..k-1 from 0, then
 * + bias, then GELU or + residual, whichever kernel variant (rows, columns) computes it, so the
 * result does not depend on how the work is split between threads.
 *
 * exp and erf: by default libm's expf (softmax) and erff (GELU), one element at a time. With
 * -DVIT_VECTOR_MATH they are the runtime's own vector polynomials instead (vit_vexp, vit_verf
 * below: max error about 1 ulp, measured against double erf/exp; see Runtime/README.md), which
 * makes GELU and softmax several times faster.
 */
#include "vit_runtime.h"

#include <float.h>
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

#ifdef VIT_BLAS_OPENBLAS
#include <cblas.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define VIT_ALWAYS_INLINE static inline __attribute__((always_inline))
#define VIT_HELPER static inline __attribute__((unused))
#else
#define VIT_ALWAYS_INLINE static inline
#define VIT_HELPER static inline
#endif

/* Rows of x streamed per block: the x block (rows x k floats) should stay in L2 while all
   the block's panels pass over it. */
#define VIT_GEMM_BLOCK_FLOATS (64 * 1024)

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

/* ---- exp and erf ------------------------------------------------------------------------ */

static const float vit_sqrt1_2 = 0.70710678118654752440f;

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
  return VF_FMA(h, h, vit_verf(VF_MUL(v, VF_SET1(vit_sqrt1_2))));
}

/* GELU in place over count floats, count a multiple of VIT_VLEN. */
static void vit_gelu_row(float *t, int count) {
  for (int j = 0; j < count; j += VIT_VLEN) VF_STORE(t + j, vit_vgelu(VF_LOAD(t + j)));
}

void vit_gelu_f32(const float *x, size_t count, float *y) {
  size_t i = 0;
  for (; i + VIT_VLEN <= count; i += VIT_VLEN) VF_STORE(y + i, vit_vgelu(VF_LOAD(x + i)));
  if (i < count) { /* the tail through a padded buffer, so every element takes the same path */
    float t[VIT_VLEN] = {0};
    memcpy(t, x + i, (count - i) * sizeof(float));
    vit_gelu_row(t, VIT_VLEN);
    memcpy(y + i, t, (count - i) * sizeof(float));
  }
}

#else /* libm */

static inline float vit_gelu1(float v) { return 0.5f * v * (1.0f + erff(v * vit_sqrt1_2)); }

static void vit_gelu_row(float *t, int count) {
  for (int j = 0; j < count; j++) t[j] = vit_gelu1(t[j]);
}

void vit_gelu_f32(const float *x, size_t count, float *y) {
  for (size_t i = 0; i < count; i++) y[i] = vit_gelu1(x[i]);
}

#endif

/* ---- softmax ---------------------------------------------------------------------------- */

#ifdef VIT_VECTOR_MATH

void vit_softmax_row_f32(float *s, int n, float scale, const float *key_bias) {
  if (n <= 0) return;
  float pad[VIT_VLEN]; /* the tail, padded with -inf: exp gives 0 there */
  const int body = n / VIT_VLEN * VIT_VLEN, tail = n - body;
  vit_vf vmax = VF_SET1(-INFINITY);
  int j = 0;
  for (; j < body; j += VIT_VLEN) {
    vit_vf v = VF_MUL(VF_LOAD(s + j), VF_SET1(scale));
    if (key_bias) v = VF_ADD(v, VF_LOAD(key_bias + j));
    VF_STORE(s + j, v);
    vmax = VF_MAX(vmax, v);
  }
  if (tail) {
    for (int i = 0; i < VIT_VLEN; i++) {
      float v = -INFINITY;
      if (i < tail) {
        v = s[body + i] * scale;
        if (key_bias) v += key_bias[body + i];
      }
      pad[i] = v;
    }
    vmax = VF_MAX(vmax, VF_LOAD(pad));
  }
  const vit_vf max = VF_SET1(VF_HMAX(vmax));
  vit_vf vsum = VF_ZERO();
  for (j = 0; j < body; j += VIT_VLEN) {
    const vit_vf e = vit_vexp(VF_SUB(VF_LOAD(s + j), max));
    VF_STORE(s + j, e);
    vsum = VF_ADD(vsum, e);
  }
  if (tail) {
    const vit_vf e = vit_vexp(VF_SUB(VF_LOAD(pad), max));
    VF_STORE(pad, e);
    vsum = VF_ADD(vsum, e);
  }
  const vit_vf sum = VF_SET1(VF_HSUM(vsum));
  for (j = 0; j < body; j += VIT_VLEN) VF_STORE(s + j, VF_DIV(VF_LOAD(s + j), sum));
  if (tail) {
    VF_STORE(pad, VF_DIV(VF_LOAD(pad), sum));
    memcpy(s + body, pad, (size_t)tail * sizeof(float));
  }
}

#else /* libm expf; max and sum over four lanes in a fixed order */

void vit_softmax_row_f32(float *s, int n, float scale, const float *key_bias) {
  if (n <= 0) return;
  for (int j = 0; j < n; j++) {
    float t = s[j] * scale;
    if (key_bias) t += key_bias[j];
    s[j] = t;
  }
  float m0 = s[0], m1 = s[0], m2 = s[0], m3 = s[0];
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    m0 = s[j] > m0 ? s[j] : m0;
    m1 = s[j + 1] > m1 ? s[j + 1] : m1;
    m2 = s[j + 2] > m2 ? s[j + 2] : m2;
    m3 = s[j + 3] > m3 ? s[j + 3] : m3;
  }
  for (; j < n; j++) m0 = s[j] > m0 ? s[j] : m0;
  m0 = m1 > m0 ? m1 : m0;
  m2 = m3 > m2 ? m3 : m2;
  const float max = m2 > m0 ? m2 : m0;
  float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (j = 0; j + 4 <= n; j += 4) {
    s[j] = expf(s[j] - max);
    s[j + 1] = expf(s[j + 1] - max);
    s[j + 2] = expf(s[j + 2] - max);
    s[j + 3] = expf(s[j + 3] - max);
    a0 += s[j];
    a1 += s[j + 1];
    a2 += s[j + 2];
    a3 += s[j + 3];
  }
  for (; j < n; j++) {
    s[j] = expf(s[j] - max);
    a0 += s[j];
  }
  const float sum = (a0 + a1) + (a2 + a3);
  for (j = 0; j < n; j++) s[j] = s[j] / sum;
}

#endif

void vit_softmax_f32(const float *x, int rows, int c, float *y) {
  for (int r = 0; r < rows; r++) {
    float *yr = y + (size_t)r * c;
    if (yr != x + (size_t)r * c) memmove(yr, x + (size_t)r * c, (size_t)c * sizeof(float));
    vit_softmax_row_f32(yr, c, 1.0f, NULL);
  }
}

/* ---- packing ---------------------------------------------------------------------------- */

void vit_pack_panels_f32(const float *w, size_t ldw_j, size_t ldw_k, int n, int k, int p0, int p1,
                         float *packed) {
  for (int p = p0; p < p1; p++) {
    float *dst = packed + (size_t)p * k * VIT_NR; /* [k][16] */
    for (int kk = 0; kk < k; kk++) {
      for (int j = 0; j < VIT_NR; j++) {
        int row = p * VIT_NR + j;
        dst[(size_t)kk * VIT_NR + j] = row < n ? w[(size_t)row * ldw_j + (size_t)kk * ldw_k] : 0.0f;
      }
    }
  }
}

#ifdef VIT_BLAS_OPENBLAS
size_t vit_packed_size_f32(int n, int k) { return (size_t)n * (size_t)k; }

void vit_pack_f32(const float *w, int n, int k, float *packed) {
  memcpy(packed, w, (size_t)n * (size_t)k * sizeof(float));
}
#else
size_t vit_packed_size_f32(int n, int k) { return VIT_PACKED_FLOATS(n, k); }

void vit_pack_f32(const float *w, int n, int k, float *packed) {
  vit_pack_panels_f32(w, (size_t)k, 1, n, k, 0, (n + VIT_NR - 1) / VIT_NR, packed);
}
#endif

/* ---- microkernels ----------------------------------------------------------------------- */

#if defined(VIT_KERNEL_AVX512)
#define VIT_MR 8 /* rows per microtile */
#define VIT_TP 2 /* panels per full microtile */
#elif defined(VIT_KERNEL_AVX2)
#define VIT_MR 6
#define VIT_TP 1
#elif defined(VIT_KERNEL_NEON) && defined(__aarch64__)
#define VIT_MR 6
#define VIT_TP 1
#elif defined(VIT_KERNEL_NEON)
#define VIT_MR 2 /* armv7 has 16 q registers */
#define VIT_TP 1
#else
#define VIT_MR 4
#define VIT_TP 1
#endif
#define VIT_TW (VIT_TP * VIT_NR) /* columns per full microtile */

/* Epilogue from an accumulator tile [mr][VIT_TW] (ncols valid) to y. GELU runs over whole
   vectors of the tile (padding columns included, then dropped), so that every element goes
   through the same code as in a full tile. */
static void vit_epilogue_tile(float *tile, int mr, int ncols, const float *bias,
                              enum vit_epilogue epi, const float *residual, size_t ldr, float *y,
                              size_t ldy) {
  for (int r = 0; r < mr; r++) {
    float *t = tile + r * VIT_TW;
    if (bias)
      for (int j = 0; j < ncols; j++) t[j] += bias[j];
    if (epi == VIT_EPI_GELU) vit_gelu_row(t, (ncols + VIT_VLEN - 1) / VIT_VLEN * VIT_VLEN);
    if (epi == VIT_EPI_RESIDUAL && residual)
      for (int j = 0; j < ncols; j++) t[j] += residual[(size_t)r * ldr + j];
    memcpy(y + (size_t)r * ldy, t, (size_t)ncols * sizeof(float));
  }
}

#if VIT_VLEN > 1

#define VIT_NVMAX (VIT_TW / VIT_VLEN) /* vectors per row of a full microtile (<= 4) */

/* X-macros over rows (up to 8) and vectors per row (up to 4). */
#define VIT_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define VIT_VECS(X, r) X(r, 0) X(r, 1) X(r, 2) X(r, 3)

/* Offset in floats of vector v of a packed row inside the microtile's panels. */
#define VIT_VOFF(v, pstride) \
  ((size_t)(((v) * VIT_VLEN) / VIT_NR) * (pstride) + ((v) * VIT_VLEN) % VIT_NR)

/* One microtile: MR rows (constant, <= VIT_MR) by NV vectors (constant) of columns, over all
   k. ncols of the NV*VLEN columns are valid; full tiles finish in registers, the others go
   through vit_epilogue_tile. */
VIT_ALWAYS_INLINE void vit_microtile(const int MR, const int NV, int k, const float *x, size_t ldx,
                                     const float *w, size_t pstride, int ncols, const float *bias,
                                     enum vit_epilogue epi, const float *residual, size_t ldr,
                                     float *y, size_t ldy) {
#define VIT_DECL_ACC(r, v) vit_vf c##r##_##v = VF_ZERO();
#define VIT_DECL_ROW(r) VIT_VECS(VIT_DECL_ACC, r) const float *x##r = x + (MR > r ? r : 0) * ldx;
  VIT_ROWS(VIT_DECL_ROW)
#undef VIT_DECL_ROW
#undef VIT_DECL_ACC

  for (int kk = 0; kk < k; kk++) {
    const float *wk = w + (size_t)kk * VIT_NR;
    vit_vf b0 = VF_LOAD(wk + VIT_VOFF(0, pstride)), b1 = b0, b2 = b0, b3 = b0;
    if (NV > 1) b1 = VF_LOAD(wk + VIT_VOFF(1, pstride));
    if (NV > 2) b2 = VF_LOAD(wk + VIT_VOFF(2, pstride));
    if (NV > 3) b3 = VF_LOAD(wk + VIT_VOFF(3, pstride));
#define VIT_FMA_VEC(r, v) \
  if (NV > v) c##r##_##v = VF_FMA(c##r##_##v, a, b##v);
#define VIT_FMA_ROW(r)              \
  if (MR > r) {                     \
    const vit_vf a = VF_BCAST(x##r + kk); \
    VIT_VECS(VIT_FMA_VEC, r)        \
  }
    VIT_ROWS(VIT_FMA_ROW)
#undef VIT_FMA_ROW
#undef VIT_FMA_VEC
  }

#ifdef VIT_VECTOR_MATH
  const int full = ncols == NV * VIT_VLEN;
#else
  const int full = ncols == NV * VIT_VLEN && epi != VIT_EPI_GELU;
#endif
  if (full) {
    /* bias, GELU and residual in registers (residual may alias y: each element is read
       before it is written) */
    const int resid = epi == VIT_EPI_RESIDUAL && residual;
#ifdef VIT_VECTOR_MATH
    const int gelu = epi == VIT_EPI_GELU;
#define VIT_GELU_T(t) \
  if (gelu) t = vit_vgelu(t);
#else
#define VIT_GELU_T(t)
#endif
#define VIT_OUT_VEC(r, v)                                                          \
  if (NV > v) {                                                                    \
    vit_vf t = c##r##_##v;                                                         \
    if (bias) t = VF_ADD(t, VF_LOAD(bias + (v) * VIT_VLEN));                       \
    VIT_GELU_T(t)                                                                  \
    if (resid) t = VF_ADD(t, VF_LOAD(residual + (size_t)(r) * ldr + (v) * VIT_VLEN)); \
    VF_STORE(y + (size_t)(r) * ldy + (v) * VIT_VLEN, t);                           \
  }
#define VIT_OUT_ROW(r) \
  if (MR > r) { VIT_VECS(VIT_OUT_VEC, r) }
    VIT_ROWS(VIT_OUT_ROW)
#undef VIT_OUT_ROW
#undef VIT_OUT_VEC
#undef VIT_GELU_T
  } else {
    float tile[VIT_MR * VIT_TW];
#define VIT_TILE_VEC(r, v)                                           \
  if (NV > v) VF_STORE(tile + (r) * VIT_TW + (v) * VIT_VLEN, c##r##_##v); \
  else if (v * VIT_VLEN < VIT_TW) VF_STORE(tile + (r) * VIT_TW + (v) * VIT_VLEN, VF_ZERO());
#define VIT_TILE_ROW(r) \
  if (MR > r) { VIT_VECS(VIT_TILE_VEC, r) }
    VIT_ROWS(VIT_TILE_ROW)
#undef VIT_TILE_ROW
#undef VIT_TILE_VEC
    vit_epilogue_tile(tile, MR, ncols, bias, epi, residual, ldr, y, ldy);
  }
}

#else /* scalar: one panel of 16 columns, plain C */

#define VIT_NVMAX 1

VIT_ALWAYS_INLINE void vit_microtile(const int MR, const int NV, int k, const float *x, size_t ldx,
                                     const float *w, size_t pstride, int ncols, const float *bias,
                                     enum vit_epilogue epi, const float *residual, size_t ldr,
                                     float *y, size_t ldy) {
  (void)NV;
  (void)pstride;
  float c[VIT_MR][VIT_NR];
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < VIT_NR; j++) c[r][j] = 0.0f;
  for (int kk = 0; kk < k; kk++) {
    const float *wk = w + (size_t)kk * VIT_NR;
    for (int r = 0; r < MR; r++) {
      const float a = x[(size_t)r * ldx + kk];
      for (int j = 0; j < VIT_NR; j++) c[r][j] += a * wk[j];
    }
  }
  vit_epilogue_tile(&c[0][0], MR, ncols, bias, epi, residual, ldr, y, ldy);
}

#endif

/* One function per (rows, vectors) shape, so each gets its own register allocation. */
typedef void (*vit_microtile_fn)(int k, const float *x, size_t ldx, const float *w, size_t pstride,
                                 int ncols, const float *bias, enum vit_epilogue epi,
                                 const float *residual, size_t ldr, float *y, size_t ldy);

#define VIT_DEF_TILE(NAME, MR, NV)                                                            \
  static void NAME(int k, const float *x, size_t ldx, const float *w, size_t pstride, int ncols, \
                   const float *bias, enum vit_epilogue epi, const float *residual, size_t ldr,  \
                   float *y, size_t ldy) {                                                       \
    vit_microtile(MR, NV, k, x, ldx, w, pstride, ncols, bias, epi, residual, ldr, y, ldy);       \
  }

#if VIT_TP == 2
/* One-panel (NV = 1) and two-panel (NV = 2) tiles; VLEN = 16. */
#define VIT_DEF_ROWS(MR) \
  VIT_DEF_TILE(vit_microtile_##MR##x1, MR, 1) VIT_DEF_TILE(vit_microtile_##MR##x2, MR, 2)
#define VIT_TILE_ENTRY(MR) {vit_microtile_##MR##x1, vit_microtile_##MR##x2},
#else
#define VIT_DEF_ROWS(MR) VIT_DEF_TILE(vit_microtile_##MR, MR, VIT_NVMAX)
#define VIT_TILE_ENTRY(MR) {vit_microtile_##MR, vit_microtile_##MR},
#endif

VIT_DEF_ROWS(1)
VIT_DEF_ROWS(2)
#if VIT_MR > 2
VIT_DEF_ROWS(3)
VIT_DEF_ROWS(4)
#endif
#if VIT_MR > 4
VIT_DEF_ROWS(5)
VIT_DEF_ROWS(6)
#endif
#if VIT_MR > 6
VIT_DEF_ROWS(7)
VIT_DEF_ROWS(8)
#endif

/* [rows - 1][panels - 1] */
static const vit_microtile_fn vit_microtiles[VIT_MR][2] = {
    VIT_TILE_ENTRY(1) VIT_TILE_ENTRY(2)
#if VIT_MR > 2
    VIT_TILE_ENTRY(3) VIT_TILE_ENTRY(4)
#endif
#if VIT_MR > 4
    VIT_TILE_ENTRY(5) VIT_TILE_ENTRY(6)
#endif
#if VIT_MR > 6
    VIT_TILE_ENTRY(7) VIT_TILE_ENTRY(8)
#endif
};

const char *vit_gemm_isa(void) {
#ifdef VIT_VECTOR_MATH
#define VIT_MATH_NAME "+vecmath"
#else
#define VIT_MATH_NAME ""
#endif
#ifdef VIT_BLAS_OPENBLAS
  return VIT_ISA_NAME VIT_MATH_NAME "+openblas";
#else
  return VIT_ISA_NAME VIT_MATH_NAME;
#endif
}

void vit_gemm_panels_f32(const float *x, size_t ldx, int m, int k, const float *packed, int n,
                         int p0, int p1, const float *bias, enum vit_epilogue epi,
                         const float *residual, size_t ldr, float *y, size_t ldy) {
  if (m <= 0 || p0 >= p1) return;
  if (epi != VIT_EPI_RESIDUAL) residual = NULL;
  const size_t pstride = (size_t)k * VIT_NR;
  int mc = k > 0 ? VIT_GEMM_BLOCK_FLOATS / k : m;
  mc = mc < VIT_MR ? VIT_MR : mc / VIT_MR * VIT_MR;
  for (int i0 = 0; i0 < m; i0 += mc) {
    const int i1 = m - i0 < mc ? m : i0 + mc;
    for (int p = p0; p < p1; p += VIT_TP) {
      const int np = p1 - p < VIT_TP ? p1 - p : VIT_TP;
      const int col = p * VIT_NR;
      const int ncols = n - col < np * VIT_NR ? n - col : np * VIT_NR;
      const float *w = packed + (size_t)p * pstride;
      const float *b = bias ? bias + col : NULL;
      for (int i = i0; i < i1; i += VIT_MR) {
        const int mr = i1 - i < VIT_MR ? i1 - i : VIT_MR;
        vit_microtiles[mr - 1][np - 1](k, x + (size_t)i * ldx, ldx, w, pstride, ncols, b, epi,
                                       residual ? residual + (size_t)i * ldr + col : NULL, ldr,
                                       y + (size_t)i * ldy + col, ldy);
      }
    }
  }
}

/* ---- vit_linear_f32 --------------------------------------------------------------------- */

#ifdef VIT_BLAS_OPENBLAS

void vit_linear_f32(const float *restrict x, int m, int k, const float *restrict packed_w,
                    const float *restrict bias, int n, enum vit_epilogue epilogue,
                    const float *residual, float *y) {
  if (m <= 0 || n <= 0) return;
  float beta = 0.0f;
  if (epilogue == VIT_EPI_RESIDUAL && residual) {
    if (residual != y) memcpy(y, residual, (size_t)m * (size_t)n * sizeof(float));
    beta = 1.0f;
  }
  if (k > 0) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, packed_w, k, beta, y,
                n);
  } else if (beta == 0.0f) {
    memset(y, 0, (size_t)m * (size_t)n * sizeof(float));
  }
  if (bias || epilogue == VIT_EPI_GELU) {
    for (int i = 0; i < m; i++) {
      float *row = y + (size_t)i * n;
      if (bias)
        for (int j = 0; j < n; j++) row[j] += bias[j];
      if (epilogue == VIT_EPI_GELU) vit_gelu_f32(row, (size_t)n, row);
    }
  }
}

#else

struct vit_linear_job {
  const float *x, *w, *bias, *residual;
  float *y;
  int m, k, n, panels;
  enum vit_epilogue epi;
  int pchunk, pt, mchunk; /* task t: panels (t % pt) * pchunk.., rows (t / pt) * mchunk.. */
};

static void vit_linear_task(void *ctx, int task, int thread) {
  (void)thread;
  const struct vit_linear_job *j = ctx;
  const int p0 = task % j->pt * j->pchunk;
  const int p1 = p0 + j->pchunk < j->panels ? p0 + j->pchunk : j->panels;
  const int i0 = task / j->pt * j->mchunk;
  const int i1 = i0 + j->mchunk < j->m ? i0 + j->mchunk : j->m;
  const size_t off = (size_t)i0 * j->n;
  vit_gemm_panels_f32(j->x + (size_t)i0 * j->k, (size_t)j->k, i1 - i0, j->k, j->w, j->n, p0, p1,
                      j->bias, j->epi, j->residual ? j->residual + off : NULL, (size_t)j->n,
                      j->y + off, (size_t)j->n);
}

void vit_linear_f32(const float *restrict x, int m, int k, const float *restrict packed_w,
                    const float *restrict bias, int n, enum vit_epilogue epilogue,
                    const float *residual, float *y) {
  if (m <= 0 || n <= 0) return;
  if (epilogue != VIT_EPI_RESIDUAL) residual = NULL;
  const int panels = (n + VIT_NR - 1) / VIT_NR;
  /* Threads: at most one per ~1 MFLOP of work. */
  int threads = vit_get_threads();
  const double flops = 2.0 * m * n * (k > 0 ? k : 1);
  if (flops < threads * 1e6) threads = (int)(flops / 1e6) + 1;
  if (threads <= 1) {
    vit_gemm_panels_f32(x, (size_t)k, m, k, packed_w, n, 0, panels, bias, epilogue, residual,
                        (size_t)n, y, (size_t)n);
    return;
  }
  /* About two tasks per thread (handed out dynamically): split the panels first, in whole
     microtiles, then the rows (in multiples of 24 = lcm of the microtile heights) when there
     are too few panels. */
  const int target = 2 * threads;
  const int units = (panels + VIT_TP - 1) / VIT_TP;
  int pt = units < target ? units : target;
  const int pchunk = (units + pt - 1) / pt * VIT_TP;
  pt = (panels + pchunk - 1) / pchunk;
  int mt = (target + pt - 1) / pt;
  const int mblocks = (m + 23) / 24;
  if (mt > mblocks) mt = mblocks;
  const int mchunk = (mblocks + mt - 1) / mt * 24;
  mt = (m + mchunk - 1) / mchunk;
  struct vit_linear_job job = {x, packed_w, bias, residual, y, m, k, n, panels, epilogue,
                               pchunk, pt, mchunk};
  vit_parallel_for(vit_linear_task, &job, pt * mt, threads);
}

#endif
