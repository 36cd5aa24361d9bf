/*
 * vit_qgemm.c: layer 3 of the runtime, beside vit_gemm.c: int8 linear layers (issue #17).
 * vit_quantize_weights_s8, vit_quantize_rows_s8 and vit_linear_s8 (include/vit_qgemm.h has
 * the weight block's layout and the arithmetic, bit for bit). It uses the thread pool
 * (vit_threads.c, layer 1) and the inline GELU of vit_simd.h (layer 0); nothing of vit_gemm.c.
 *
 * The int8 microkernel is chosen at compile time (VIT_QKERNEL_* in vit_simd.h):
 *   AVX2    4 rows x 16 columns, two ymm of int32 per row. Per 4-k group: |w| as u8 times
 *           x with w's sign as s8 (vpabsb, vpsignb), vpmaddubsw, then vpmaddwd by 1s into
 *           int32. Exact: |x| <= 127 and |w| <= 128, so a vpmaddubsw pair sum is at most
 *           2*128*127 = 32512 < 32767 and never saturates.
 *   SDOT    aarch64 +dotprod: 4 rows x 16 columns, vdotq_laneq_s32 of a 16-byte weight
 *           vector (4 columns x 4 k) with lane g%4 of 16 bytes of the row (4 groups per load).
 *   NEON    aarch64: 2 rows x 16 columns; armv7: 2 rows x 8 columns, twice. vmull_s8 of 8
 *           weights (2 columns x 4 k) with x, vmlal_s8 of the next k group (two products of
 *           |x| <= 127, |w| <= 128: at most 32512 in an int16 lane), vpadalq_s16 into int32.
 *   scalar  portable C, 4 rows x 16 columns.
 * Integer sums are exact in any order, so every kernel gives the same acc; the dequantization
 * is one plain C function shared by all, compiled without contraction (see VIT_NO_CONTRACT).
 */
#include "vit_qgemm.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vit_quant.h"
#include "vit_simd.h"
#include "vit_threads.h"

#if defined(VIT_QKERNEL_AVX2)
#include <immintrin.h>
#elif defined(VIT_QKERNEL_SDOT) || defined(VIT_QKERNEL_NEON)
#include <arm_neon.h>
#endif

/* A function whose float operations are never contracted into fused multiply-adds, whatever
   the command line says: gcc's default for GNU C is -ffp-contract=fast and it ignores
   "#pragma STDC FP_CONTRACT", so it gets the optimize attribute; clang honours the pragma
   (except under -ffp-contract=fast, which is documented as unsupported). */
#if defined(__clang__)
#define VIT_NO_CONTRACT static __attribute__((noinline))
#define VIT_NO_CONTRACT_BODY _Pragma("STDC FP_CONTRACT OFF")
#elif defined(__GNUC__)
#define VIT_NO_CONTRACT static __attribute__((noinline, optimize("fp-contract=off")))
#define VIT_NO_CONTRACT_BODY
#else
#define VIT_NO_CONTRACT static
#define VIT_NO_CONTRACT_BODY _Pragma("STDC FP_CONTRACT OFF")
#endif

/* aarch64's NEON is IEEE (no flush to zero unless FPCR asks), so the quantization and the
   dequantization may run on vectors there with the same bits; armv7's NEON flushes
   subnormals to zero, so there they stay scalar (VFP). */
#if (defined(VIT_QKERNEL_SDOT) || defined(VIT_QKERNEL_NEON)) && defined(__aarch64__)
#define VIT_QNEON64 1
#endif

#define VIT_QNR 16 /* columns per panel */
#define VIT_QGROUP 64 /* bytes per 4-k group of a panel: 16 columns x 4 */

/* Rows of xq streamed per block, so that the block stays in L2 while the panels pass over it. */
#define VIT_QBLOCK_BYTES (256 * 1024)

/* ---- quantization ----------------------------------------------------------------------- */

/* The scalar formula is vit_quant.h's (vit_quant_inverse, vit_quant_value, vit_quant_scale),
   which the weights loader inlines too; the vector loops below compute the same operations. */

/* amax = max |v[kk]| over k floats; 0 in *finite when one is inf or NaN. */
static float vit_row_amax(const float *v, int k, int *finite) {
  float amax = 0.0f;
  int ok = 1, kk = 0;
#if defined(VIT_QKERNEL_AVX2)
  if (k >= 8) { /* the max of the lanes' maxima is the max; a NaN or inf lane sets bad */
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 big = _mm256_set1_ps(FLT_MAX);
    __m256 mx = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (; kk + 8 <= k; kk += 8) {
      const __m256 a = _mm256_and_ps(_mm256_loadu_ps(v + kk), absmask);
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, big, _CMP_NLE_UQ));
      mx = _mm256_max_ps(mx, a);
    }
    ok = _mm256_movemask_ps(bad) == 0;
    float lanes[8];
    _mm256_storeu_ps(lanes, mx);
    for (int l = 0; l < 8; l++) amax = lanes[l] > amax ? lanes[l] : amax;
  }
#elif defined(VIT_QNEON64)
  if (k >= 4) {
    const float32x4_t big = vdupq_n_f32(FLT_MAX);
    float32x4_t mx = vdupq_n_f32(0.0f);
    uint32x4_t fine = vdupq_n_u32(0xffffffffu); /* lanes where every |v| <= FLT_MAX so far */
    for (; kk + 4 <= k; kk += 4) {
      const float32x4_t a = vabsq_f32(vld1q_f32(v + kk));
      fine = vandq_u32(fine, vcleq_f32(a, big));
      mx = vmaxq_f32(mx, a);
    }
    ok = vminvq_u32(fine) != 0;
    amax = vmaxvq_f32(mx);
  }
#endif
  for (; kk < k; kk++) {
    const float a = fabsf(v[kk]);
    if (!(a <= FLT_MAX)) ok = 0;
    amax = a > amax ? a : amax;
  }
  *finite = ok;
  return amax;
}

/* Where value kk of a row goes: xq rows are plain (kk); a weight row is a column of its panel,
   4 values in each 64-byte group (((kk / 4) * 16 + j) * 4 + kk % 4, from the column's start). */
#define VIT_QIDX(kk, panel) ((panel) ? (size_t)((kk) / 4) * VIT_QGROUP + (kk) % 4 : (size_t)(kk))

/* One row of k floats -> k int8 at q (VIT_QIDX) and its scale, the formula of vit_qgemm.h;
   *sum = the sum of the int8 values. */
static float vit_quantize_row(const float *v, int k, int8_t *q, int panel, int32_t *sum) {
  int finite;
  const float amax = vit_row_amax(v, k, &finite);
  *sum = 0;
  if (!finite || amax == 0.0f) {
    for (int kk = 0; kk < k; kk++) q[VIT_QIDX(kk, panel)] = 0;
    return finite ? 0.0f : NAN;
  }
  const float inv = vit_quant_inverse(amax);
  int32_t s = 0;
  int kk = 0;
#if defined(VIT_QKERNEL_AVX2)
  if (!panel && inv <= FLT_MAX) {
    /* 32 at a time, the same operations: a multiply, round to nearest even (rintf in the
       default rounding mode), the clamp (no NaN: inv is finite), exact conversions */
    const __m256 iv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i sum8 = _mm256_setzero_si256();
#define VIT_QCVT(o)                                                                               \
  _mm256_cvttps_epi32(_mm256_min_ps(                                                              \
      _mm256_max_ps(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(v + kk + (o)), iv),             \
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),               \
                    lo),                                                                          \
      hi))
    for (; kk + 32 <= k; kk += 32) {
      const __m256i i0 = VIT_QCVT(0), i1 = VIT_QCVT(8), i2 = VIT_QCVT(16), i3 = VIT_QCVT(24);
      sum8 = _mm256_add_epi32(sum8, _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
      const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
      _mm256_storeu_si256((__m256i *)(void *)(q + kk), _mm256_permutevar8x32_epi32(b, order));
    }
#undef VIT_QCVT
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *)(void *)lanes, sum8);
    for (int l = 0; l < 8; l++) s += lanes[l];
  }
#elif defined(VIT_QNEON64)
  if (!panel && inv <= FLT_MAX) { /* 16 at a time; vrndnq_f32 rounds to nearest even */
    const float32x4_t iv = vdupq_n_f32(inv), lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
    int32x4_t sum4 = vdupq_n_s32(0);
#define VIT_QCVT(o) \
  vcvtq_s32_f32(vminq_f32(vmaxq_f32(vrndnq_f32(vmulq_f32(vld1q_f32(v + kk + (o)), iv)), lo), hi))
    for (; kk + 16 <= k; kk += 16) {
      const int32x4_t i0 = VIT_QCVT(0), i1 = VIT_QCVT(4), i2 = VIT_QCVT(8), i3 = VIT_QCVT(12);
      sum4 = vaddq_s32(sum4, vaddq_s32(vaddq_s32(i0, i1), vaddq_s32(i2, i3)));
      const int16x8_t h0 = vcombine_s16(vmovn_s32(i0), vmovn_s32(i1));
      const int16x8_t h1 = vcombine_s16(vmovn_s32(i2), vmovn_s32(i3));
      vst1q_s8(q + kk, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
    }
#undef VIT_QCVT
    s = vaddvq_s32(sum4);
  }
#endif
  for (; kk < k; kk++) {
    const int8_t qv = vit_quant_value(v[kk], inv);
    q[VIT_QIDX(kk, panel)] = qv;
    s += qv;
  }
  *sum = s;
  return vit_quant_scale(amax);
}

void vit_quantize_rows_s8(const float *x, size_t ldx, int m, int k, int8_t *xq, float *xscale) {
  const int qk = VIT_QK(k);
  for (int i = 0; i < m; i++) {
    int8_t *q = xq + (size_t)i * qk;
    int32_t sum;
    xscale[i] = vit_quantize_row(x + (size_t)i * ldx, k, q, 0, &sum);
    for (int kk = k; kk < qk; kk++) q[kk] = 0;
  }
}

void vit_quantize_weights_s8(const float *w, int n, int k, void *qweight) {
  if (n <= 0) return;
  const int groups = VIT_QK(k) / 4, npad = VIT_QNPAD(n);
  int8_t *packed = qweight;
  float *scale = (float *)(void *)(packed + VIT_QPACKED_BYTES(n, k));
  int32_t *colsum = (int32_t *)(void *)(scale + npad);
  memset(packed, 0, VIT_QPACKED_BYTES(n, k)); /* padding columns and k values */
  for (int j = 0; j < npad; j++) {
    int8_t *col = packed + (size_t)(j / VIT_QNR) * groups * VIT_QGROUP + (size_t)(j % VIT_QNR) * 4;
    int32_t sum = 0;
    scale[j] = j < n ? vit_quantize_row(w + (size_t)j * k, k, col, 1, &sum) : 0.0f;
    colsum[j] = sum;
  }
}

/* ---- dequantization and epilogue -------------------------------------------------------- */

/* out[r][j] = ((float)acc[r][j] * (xs[r] * scale[j]) + bias[j]) + residual[r][j] for r < mr,
   j < ncols (bias and residual when not NULL), every step rounded on its own. acc row stride
   16, residual and out row strides ldr and ldo (residual may alias out exactly). */
VIT_NO_CONTRACT void vit_qdequant(const int32_t *acc, int mr, int ncols, const float *xs,
                                  const float *scale, const float *bias, const float *residual,
                                  size_t ldr, float *out, size_t ldo) {
  VIT_NO_CONTRACT_BODY
  for (int r = 0; r < mr; r++) {
    const int32_t *a = acc + r * VIT_QNR;
    float *o = out + (size_t)r * ldo;
    const float *res = residual ? residual + (size_t)r * ldr : NULL;
    const float xsr = xs[r];
    int j = 0;
#if defined(VIT_QKERNEL_AVX2) /* 8 at a time, the same IEEE operations */
    const __m256 xv = _mm256_set1_ps(xsr);
    for (; j + 8 <= ncols; j += 8) {
      __m256 t = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(const void *)(a + j)));
      const __m256 sv = _mm256_mul_ps(xv, _mm256_loadu_ps(scale + j));
      t = _mm256_mul_ps(t, sv);
      if (bias) t = _mm256_add_ps(t, _mm256_loadu_ps(bias + j));
      if (res) t = _mm256_add_ps(t, _mm256_loadu_ps(res + j));
      _mm256_storeu_ps(o + j, t);
    }
#elif defined(VIT_QNEON64) /* 4 at a time, the same IEEE operations */
    const float32x4_t xv = vdupq_n_f32(xsr);
    for (; j + 4 <= ncols; j += 4) {
      float32x4_t t = vcvtq_f32_s32(vld1q_s32(a + j));
      const float32x4_t sv = vmulq_f32(xv, vld1q_f32(scale + j));
      t = vmulq_f32(t, sv);
      if (bias) t = vaddq_f32(t, vld1q_f32(bias + j));
      if (res) t = vaddq_f32(t, vld1q_f32(res + j));
      vst1q_f32(o + j, t);
    }
#endif
    for (; j < ncols; j++) {
      float t = (float)a[j];
      const float s = xsr * scale[j];
      t = t * s;
      if (bias) t = t + bias[j];
      if (res) t = t + res[j];
      o[j] = t;
    }
  }
}

/* The epilogue of a tile: acc [mr][16] -> y [mr][ncols] (row stride ldy; residual too). GELU
   goes through a float tile and vit_gelu_row, over all 16 columns (padding 0), the code the
   f32 GEMM's epilogue runs, compiled here with the file's default contraction like there. */
static void vit_qepilogue(const int32_t *acc, int mr, int ncols, const float *xs,
                          const float *scale, const float *bias, enum vit_epilogue epi,
                          const float *residual, float *y, size_t ldy) {
  if (epi == VIT_EPI_GELU) {
    float tile[VIT_QNR];
    for (int r = 0; r < mr; r++) {
      vit_qdequant(acc + r * VIT_QNR, 1, ncols, xs + r, scale, bias, NULL, 0, tile, VIT_QNR);
      for (int j = ncols; j < VIT_QNR; j++) tile[j] = 0.0f;
      vit_gelu_row(tile, VIT_QNR);
      memcpy(y + (size_t)r * ldy, tile, (size_t)ncols * sizeof(float));
    }
  } else {
    vit_qdequant(acc, mr, ncols, xs, scale, bias, epi == VIT_EPI_RESIDUAL ? residual : NULL, ldy,
                 y, ldy);
  }
}

/* ---- microkernels: acc[r][j] = sum over groups of xq rows x one panel ------------------- */
/* vit_qtile(MR, groups, x, ldx, w, acc): x = MR rows of int8 (row stride ldx, groups*4
   values each), w = one panel (groups * 64 bytes), acc [MR][16] int32 written. */

/* 4 bytes of x as one int32 (x need not be aligned) */
VIT_HELPER int32_t vit_load4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

#define VIT_QROWS(X) X(0) X(1) X(2) X(3)

#if defined(VIT_QKERNEL_AVX2)

#define VIT_QMR 4

VIT_ALWAYS_INLINE void vit_qtile(const int MR, int groups, const int8_t *x, size_t ldx,
                                 const int8_t *w, int32_t *acc) {
  const __m256i ones = _mm256_set1_epi16(1);
#define VIT_QDECL(r)                                                        \
  __m256i c##r##0 = _mm256_setzero_si256(), c##r##1 = _mm256_setzero_si256(); \
  const int8_t *x##r = x + (MR > r ? r : 0) * ldx;
  VIT_QROWS(VIT_QDECL)
#undef VIT_QDECL
  for (int g = 0; g < groups; g++) {
    const __m256i w0 = _mm256_loadu_si256((const __m256i *)(const void *)(w + g * VIT_QGROUP));
    const __m256i w1 =
        _mm256_loadu_si256((const __m256i *)(const void *)(w + g * VIT_QGROUP + 32));
    const __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
#define VIT_QROW(r)                                                                     \
  if (MR > r) {                                                                         \
    const __m256i xb = _mm256_set1_epi32(vit_load4(x##r + 4 * g));                      \
    const __m256i p0 = _mm256_maddubs_epi16(a0, _mm256_sign_epi8(xb, w0));              \
    const __m256i p1 = _mm256_maddubs_epi16(a1, _mm256_sign_epi8(xb, w1));              \
    c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(p0, ones));                   \
    c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(p1, ones));                   \
  }
    VIT_QROWS(VIT_QROW)
#undef VIT_QROW
  }
#define VIT_QSTORE(r)                                                                    \
  if (MR > r) {                                                                          \
    _mm256_storeu_si256((__m256i *)(void *)(acc + (r) * VIT_QNR), c##r##0);              \
    _mm256_storeu_si256((__m256i *)(void *)(acc + (r) * VIT_QNR + 8), c##r##1);          \
  }
  VIT_QROWS(VIT_QSTORE)
#undef VIT_QSTORE
}

#elif defined(VIT_QKERNEL_SDOT)

#define VIT_QMR 4

/* c<r><v> (v = 0..3) holds columns 4v .. 4v+3 of row r. The main loop takes 4 groups at a
   time: 16 bytes of each row (one load) and vdotq_laneq_s32 on lane l for group g+l, so no
   broadcast is needed; the last groups % 4 broadcast their 4 bytes (ld1r). */
VIT_ALWAYS_INLINE void vit_qtile(const int MR, int groups, const int8_t *x, size_t ldx,
                                 const int8_t *w, int32_t *acc) {
#define VIT_QDECL(r)                                                                     \
  int32x4_t c##r##0 = vdupq_n_s32(0), c##r##1 = c##r##0, c##r##2 = c##r##0, c##r##3 = c##r##0; \
  const int8_t *x##r = x + (MR > r ? r : 0) * ldx;
  VIT_QROWS(VIT_QDECL)
#undef VIT_QDECL
  int g = 0;
  for (; g + 4 <= groups; g += 4) {
#define VIT_QLOADX(r) const int8x16_t xv##r = vld1q_s8(x##r + 4 * g);
    VIT_QROWS(VIT_QLOADX)
#undef VIT_QLOADX
#define VIT_QLANE(r, l)                                      \
  if (MR > r) {                                              \
    c##r##0 = vdotq_laneq_s32(c##r##0, w0, xv##r, l);        \
    c##r##1 = vdotq_laneq_s32(c##r##1, w1, xv##r, l);        \
    c##r##2 = vdotq_laneq_s32(c##r##2, w2, xv##r, l);        \
    c##r##3 = vdotq_laneq_s32(c##r##3, w3, xv##r, l);        \
  }
#define VIT_QGROUP_L(l)                                                               \
  {                                                                                   \
    const int8_t *wg = w + (g + (l)) * VIT_QGROUP;                                    \
    const int8x16_t w0 = vld1q_s8(wg), w1 = vld1q_s8(wg + 16);                        \
    const int8x16_t w2 = vld1q_s8(wg + 32), w3 = vld1q_s8(wg + 48);                   \
    VIT_QLANE(0, l) VIT_QLANE(1, l) VIT_QLANE(2, l) VIT_QLANE(3, l)                   \
  }
    VIT_QGROUP_L(0) VIT_QGROUP_L(1) VIT_QGROUP_L(2) VIT_QGROUP_L(3)
#undef VIT_QGROUP_L
#undef VIT_QLANE
  }
  for (; g < groups; g++) {
    const int8_t *wg = w + g * VIT_QGROUP;
    const int8x16_t w0 = vld1q_s8(wg), w1 = vld1q_s8(wg + 16);
    const int8x16_t w2 = vld1q_s8(wg + 32), w3 = vld1q_s8(wg + 48);
#define VIT_QROW(r)                                                       \
  if (MR > r) {                                                           \
    const int8x16_t xb = vreinterpretq_s8_s32(vdupq_n_s32(vit_load4(x##r + 4 * g))); \
    c##r##0 = vdotq_s32(c##r##0, w0, xb);                                 \
    c##r##1 = vdotq_s32(c##r##1, w1, xb);                                 \
    c##r##2 = vdotq_s32(c##r##2, w2, xb);                                 \
    c##r##3 = vdotq_s32(c##r##3, w3, xb);                                 \
  }
    VIT_QROWS(VIT_QROW)
#undef VIT_QROW
  }
#define VIT_QSTORE(r)                         \
  if (MR > r) {                               \
    vst1q_s32(acc + (r) * VIT_QNR, c##r##0);      \
    vst1q_s32(acc + (r) * VIT_QNR + 4, c##r##1);  \
    vst1q_s32(acc + (r) * VIT_QNR + 8, c##r##2);  \
    vst1q_s32(acc + (r) * VIT_QNR + 12, c##r##3); \
  }
  VIT_QROWS(VIT_QSTORE)
#undef VIT_QSTORE
}

#elif defined(VIT_QKERNEL_NEON)

/* c<r>_<q> holds columns 2q and 2q+1 of row r (of the current half on armv7), two partial sums
   each (lanes 0,1 and 2,3). aarch64: 2 rows x all 16 columns (16 accumulators of 32
   registers). armv7 has 16 q registers: 2 rows, and the 16 columns in two passes of 8 (8
   accumulators; with 16, or 8 for 1 row of 16 columns, gcc spilled). Written out with macros, not arrays and loops, so that
   gcc keeps the accumulators in registers. Two groups at a time: vmull_s8 of one, vmlal_s8 of
   the next into the same int16 lanes, then vpadalq_s16. */
#if defined(__aarch64__)
#define VIT_QMR 2
#define VIT_QHALVES 1
#define VIT_QN(X, r) X(r, 0) X(r, 1) X(r, 2) X(r, 3) X(r, 4) X(r, 5) X(r, 6) X(r, 7)
#define VIT_QPAIRS(X, r) X(r, 0, 1) X(r, 2, 3) X(r, 4, 5) X(r, 6, 7)
#else
#define VIT_QMR 2
#define VIT_QHALVES 2
#define VIT_QN(X, r) X(r, 0) X(r, 1) X(r, 2) X(r, 3)
#define VIT_QPAIRS(X, r) X(r, 0, 1) X(r, 2, 3)
#endif

/* Pairwise sums of two accumulators: (a0+a1, a2+a3, b0+b1, b2+b3). */
VIT_ALWAYS_INLINE int32x4_t vit_qpair(int32x4_t a, int32x4_t b) {
#if defined(__aarch64__)
  return vpaddq_s32(a, b);
#else
  return vcombine_s32(vpadd_s32(vget_low_s32(a), vget_high_s32(a)),
                      vpadd_s32(vget_low_s32(b), vget_high_s32(b)));
#endif
}

VIT_ALWAYS_INLINE void vit_qtile(const int MR, int groups, const int8_t *x, size_t ldx,
                                 const int8_t *w, int32_t *acc) {
  const int8_t *x0 = x, *x1 = x + (MR > 1 ? ldx : 0);
  for (int h = 0; h < VIT_QHALVES; h++) {
    const int8_t *wh = w + h * (VIT_QGROUP / VIT_QHALVES);
#define VIT_QDECL(r, q) int32x4_t c##r##_##q = vdupq_n_s32(0);
    VIT_QN(VIT_QDECL, 0)
    VIT_QN(VIT_QDECL, 1)
#undef VIT_QDECL
    int g = 0;
    for (; g + 2 <= groups; g += 2) {
      const int8_t *wg = wh + g * VIT_QGROUP;
      const int8x8_t xa0 = vreinterpret_s8_s32(vdup_n_s32(vit_load4(x0 + 4 * g)));
      const int8x8_t xb0 = vreinterpret_s8_s32(vdup_n_s32(vit_load4(x0 + 4 * g + 4)));
      int8x8_t xa1 = xa0, xb1 = xb0;
      if (MR > 1) {
        xa1 = vreinterpret_s8_s32(vdup_n_s32(vit_load4(x1 + 4 * g)));
        xb1 = vreinterpret_s8_s32(vdup_n_s32(vit_load4(x1 + 4 * g + 4)));
      }
#define VIT_QSTEP(r_, q)                                                                 \
  {                                                                                      \
    const int8x8_t wa = vld1_s8(wg + 8 * (q)), wb = vld1_s8(wg + VIT_QGROUP + 8 * (q));   \
    c0_##q = vpadalq_s16(c0_##q, vmlal_s8(vmull_s8(wa, xa0), wb, xb0));                 \
    if (MR > 1) c1_##q = vpadalq_s16(c1_##q, vmlal_s8(vmull_s8(wa, xa1), wb, xb1));     \
  }
      VIT_QN(VIT_QSTEP, 0)
#undef VIT_QSTEP
    }
    if (g < groups) {
      const int8_t *wg = wh + g * VIT_QGROUP;
      const int8x8_t xa0 = vreinterpret_s8_s32(vdup_n_s32(vit_load4(x0 + 4 * g)));
      const int8x8_t xa1 = MR > 1 ? vreinterpret_s8_s32(vdup_n_s32(vit_load4(x1 + 4 * g))) : xa0;
#define VIT_QSTEP(r_, q)                                         \
  {                                                              \
    const int8x8_t wa = vld1_s8(wg + 8 * (q));                   \
    c0_##q = vpadalq_s16(c0_##q, vmull_s8(wa, xa0));             \
    if (MR > 1) c1_##q = vpadalq_s16(c1_##q, vmull_s8(wa, xa1)); \
  }
      VIT_QN(VIT_QSTEP, 0)
#undef VIT_QSTEP
    }
#define VIT_QOUT(r, qa, qb) \
  vst1q_s32(acc + (r) * VIT_QNR + h * (VIT_QNR / VIT_QHALVES) + 2 * (qa), vit_qpair(c##r##_##qa, c##r##_##qb));
    VIT_QPAIRS(VIT_QOUT, 0)
    if (MR > 1) { VIT_QPAIRS(VIT_QOUT, 1) }
#undef VIT_QOUT
  }
}

#else /* scalar */

#define VIT_QMR 4

VIT_ALWAYS_INLINE void vit_qtile(const int MR, int groups, const int8_t *x, size_t ldx,
                                 const int8_t *w, int32_t *acc) {
  int32_t c[VIT_QMR][VIT_QNR];
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < VIT_QNR; j++) c[r][j] = 0;
  for (int g = 0; g < groups; g++) {
    const int8_t *wg = w + g * VIT_QGROUP;
    for (int r = 0; r < MR; r++) {
      const int8_t *xr = x + r * ldx + 4 * g;
      const int32_t x0 = xr[0], x1 = xr[1], x2 = xr[2], x3 = xr[3];
      for (int j = 0; j < VIT_QNR; j++)
        c[r][j] += x0 * wg[4 * j] + x1 * wg[4 * j + 1] + x2 * wg[4 * j + 2] + x3 * wg[4 * j + 3];
    }
  }
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < VIT_QNR; j++) acc[r * VIT_QNR + j] = c[r][j];
}

#endif

/* One function per row count, so each gets its own register allocation. */
typedef void (*vit_qtile_fn)(int groups, const int8_t *x, size_t ldx, const int8_t *w,
                             int32_t *acc);
#define VIT_QDEF_TILE(MR)                                                                  \
  static void vit_qtile_##MR(int groups, const int8_t *x, size_t ldx, const int8_t *w,    \
                             int32_t *acc) {                                              \
    vit_qtile(MR, groups, x, ldx, w, acc);                                                \
  }
VIT_QDEF_TILE(1)
#if VIT_QMR > 1
VIT_QDEF_TILE(2)
#endif
#if VIT_QMR > 2
VIT_QDEF_TILE(3)
VIT_QDEF_TILE(4)
#endif

static const vit_qtile_fn vit_qtiles[VIT_QMR] = {
    vit_qtile_1,
#if VIT_QMR > 1
    vit_qtile_2,
#endif
#if VIT_QMR > 2
    vit_qtile_3, vit_qtile_4,
#endif
};

/* ---- vit_linear_s8 ---------------------------------------------------------------------- */

/* Rows i < m and panels p0 <= p < p1 of y (row stride n), from the quantized rows xq
   (row stride VIT_QK(k)) and xscale. */
static void vit_qpanels(const int8_t *xq, const float *xscale, int m, int k, const void *qweight,
                        int n, int p0, int p1, const float *bias, enum vit_epilogue epi,
                        const float *residual, float *y) {
  const int qk = VIT_QK(k), groups = qk / 4;
  const int8_t *packed = qweight;
  const float *scale = (const float *)(const void *)(packed + VIT_QPACKED_BYTES(n, k));
  const size_t pstride = (size_t)groups * VIT_QGROUP;
  int mc = qk > 0 ? VIT_QBLOCK_BYTES / qk : m;
  mc = mc < VIT_QMR ? VIT_QMR : mc / VIT_QMR * VIT_QMR;
  int32_t acc[VIT_QMR * VIT_QNR];
  for (int i0 = 0; i0 < m; i0 += mc) {
    const int i1 = m - i0 < mc ? m : i0 + mc;
    for (int p = p0; p < p1; p++) {
      const int col = p * VIT_QNR;
      const int ncols = n - col < VIT_QNR ? n - col : VIT_QNR;
      const int8_t *w = packed + (size_t)p * pstride;
      for (int i = i0; i < i1; i += VIT_QMR) {
        const int mr = i1 - i < VIT_QMR ? i1 - i : VIT_QMR;
        vit_qtiles[mr - 1](groups, xq + (size_t)i * qk, (size_t)qk, w, acc);
        vit_qepilogue(acc, mr, ncols, xscale + i, scale + col, bias ? bias + col : NULL, epi,
                      residual ? residual + (size_t)i * n + col : NULL, y + (size_t)i * n + col,
                      (size_t)n);
      }
    }
  }
}

struct vit_qlinear_job {
  const float *x;
  const void *w;
  const float *bias, *residual;
  float *y;
  int8_t *xq;
  float *xscale;
  int m, k, n, panels;
  enum vit_epilogue epi;
  int pchunk, pt, mchunk; /* GEMM task t: panels (t % pt) * pchunk.., rows (t / pt) * mchunk.. */
  int qrows;              /* quantization task t: rows t * qrows .. */
};

static void vit_qquant_task(void *ctx, int task, int thread) {
  (void)thread;
  const struct vit_qlinear_job *j = ctx;
  const int i0 = task * j->qrows;
  const int i1 = i0 + j->qrows < j->m ? i0 + j->qrows : j->m;
  vit_quantize_rows_s8(j->x + (size_t)i0 * j->k, (size_t)j->k, i1 - i0, j->k,
                       j->xq + (size_t)i0 * VIT_QK(j->k), j->xscale + i0);
}

static void vit_qlinear_task(void *ctx, int task, int thread) {
  (void)thread;
  const struct vit_qlinear_job *j = ctx;
  const int p0 = task % j->pt * j->pchunk;
  const int p1 = p0 + j->pchunk < j->panels ? p0 + j->pchunk : j->panels;
  const int i0 = task / j->pt * j->mchunk;
  const int i1 = i0 + j->mchunk < j->m ? i0 + j->mchunk : j->m;
  const size_t off = (size_t)i0 * j->n;
  vit_qpanels(j->xq + (size_t)i0 * VIT_QK(j->k), j->xscale + i0, i1 - i0, j->k, j->w, j->n, p0,
              p1, j->bias, j->epi, j->residual ? j->residual + off : NULL, j->y + off);
}

void vit_linear_s8(const float *restrict x, int m, int k, const void *restrict qweight,
                   const float *restrict bias, int n, enum vit_epilogue epilogue,
                   const float *residual, float *y, int8_t *xq, float *xscale) {
  if (m <= 0 || n <= 0) return;
  if (epilogue != VIT_EPI_RESIDUAL) residual = NULL;
  const int panels = VIT_QPANELS(n);
  int threads = vit_get_threads();
  /* Quantization: a thread per 32K values at most, in tasks of 8 rows or more. */
  const double values = (double)m * (k > 0 ? k : 1);
  int qthreads = threads;
  if (values < qthreads * 32768.0) qthreads = (int)(values / 32768.0) + 1;
  /* The GEMM: a thread per ~2M operations at most (int8 runs about twice the f32 rate). */
  const double ops = 2.0 * m * n * (k > 0 ? k : 1);
  if (ops < threads * 2e6) threads = (int)(ops / 2e6) + 1;
  struct vit_qlinear_job job = {x, qweight, bias, residual, y, xq, xscale, m, k, n, panels,
                                epilogue, 0, 0, 0, 0};
  if (qthreads <= 1) {
    vit_quantize_rows_s8(x, (size_t)k, m, k, xq, xscale);
  } else {
    int qtasks = 2 * qthreads;
    job.qrows = (m + qtasks - 1) / qtasks;
    if (job.qrows < 8) job.qrows = 8;
    qtasks = (m + job.qrows - 1) / job.qrows;
    vit_parallel_for(vit_qquant_task, &job, qtasks, qthreads);
  }
  if (threads <= 1) {
    vit_qpanels(xq, xscale, m, k, qweight, n, 0, panels, bias, epilogue, residual, y);
    return;
  }
  /* About two tasks per thread (handed out dynamically): split the panels first, then the
     rows (in multiples of 24, a multiple of every microtile height) when there are too few. */
  const int target = 2 * threads;
  int pt = panels < target ? panels : target;
  const int pchunk = (panels + pt - 1) / pt;
  pt = (panels + pchunk - 1) / pchunk;
  int mt = (target + pt - 1) / pt;
  const int mblocks = (m + 23) / 24;
  if (mt > mblocks) mt = mblocks;
  const int mchunk = (mblocks + mt - 1) / mt * 24;
  mt = (m + mchunk - 1) / mchunk;
  job.pchunk = pchunk;
  job.pt = pt;
  job.mchunk = mchunk;
  vit_parallel_for(vit_qlinear_task, &job, pt * mt, threads);
}
