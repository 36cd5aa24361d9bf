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
 *   SDOT    aarch64 +dotprod: 4 rows x 16 columns, vdotq_s32 of a 16-byte weight vector
 *           (4 columns x 4 k) with the row's 4 k values broadcast.
 *   NEON    aarch64 (2 rows) and armv7 (1 row) x 16 columns: vmull_s8 of 8 weights (2
 *           columns x 4 k) with x, vmlal_s8 of the next k group (two products of |x| <= 127,
 *           |w| <= 128: at most 32512 in an int16 lane), vpadalq_s16 into int32.
 *   scalar  portable C, 4 rows x 16 columns.
 * Integer sums are exact in any order, so every kernel gives the same acc; the dequantization
 * is one plain C function shared by all, compiled without contraction (see VIT_NO_CONTRACT).
 */
#include "vit_qgemm.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

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

#define VIT_QNR 16 /* columns per panel */
#define VIT_QGROUP 64 /* bytes per 4-k group of a panel: 16 columns x 4 */

/* Rows of xq streamed per block, so that the block stays in L2 while the panels pass over it. */
#define VIT_QBLOCK_BYTES (256 * 1024)

/* ---- quantization ----------------------------------------------------------------------- */

/* clamp(r, -127, 127) for r = rintf(v * inv); NaN (0 * inf) gives 0. */
static inline int8_t vit_q_clamp(float r) {
  return r >= 127.0f ? (int8_t)127 : r <= -127.0f ? (int8_t)-127 : r == r ? (int8_t)r : (int8_t)0;
}

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
  const float inv = 127.0f / amax;
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
#endif
  for (; kk < k; kk++) {
    const int8_t qv = vit_q_clamp(rintf(v[kk] * inv));
    q[VIT_QIDX(kk, panel)] = qv;
    s += qv;
  }
  *sum = s;
  return amax / 127.0f;
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

VIT_ALWAYS_INLINE void vit_qtile(const int MR, int groups, const int8_t *x, size_t ldx,
                                 const int8_t *w, int32_t *acc) {
#define VIT_QDECL(r)                                                                     \
  int32x4_t c##r##0 = vdupq_n_s32(0), c##r##1 = c##r##0, c##r##2 = c##r##0, c##r##3 = c##r##0; \
  const int8_t *x##r = x + (MR > r ? r : 0) * ldx;
  VIT_QROWS(VIT_QDECL)
#undef VIT_QDECL
  for (int g = 0; g < groups; g++) {
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

#if defined(__aarch64__)
#define VIT_QMR 2
#else
#define VIT_QMR 1 /* armv7: 16 q registers; 8 int32x4 accumulators per row */
#endif

/* c[r][q] (q = 0..7) holds columns 2q and 2q+1, two partial sums each: lanes 0,1 and 2,3. */
VIT_ALWAYS_INLINE void vit_qtile(const int MR, int groups, const int8_t *x, size_t ldx,
                                 const int8_t *w, int32_t *acc) {
  int32x4_t c[VIT_QMR][8];
  for (int r = 0; r < MR; r++)
    for (int q = 0; q < 8; q++) c[r][q] = vdupq_n_s32(0);
  int g = 0;
  for (; g + 2 <= groups; g += 2) {
    const int8_t *wg = w + g * VIT_QGROUP;
    int8x8_t xa[VIT_QMR], xb[VIT_QMR];
    for (int r = 0; r < MR; r++) {
      xa[r] = vreinterpret_s8_s32(vdup_n_s32(vit_load4(x + r * ldx + 4 * g)));
      xb[r] = vreinterpret_s8_s32(vdup_n_s32(vit_load4(x + r * ldx + 4 * g + 4)));
    }
    for (int q = 0; q < 8; q++) {
      const int8x8_t wa = vld1_s8(wg + 8 * q), wb = vld1_s8(wg + VIT_QGROUP + 8 * q);
      for (int r = 0; r < MR; r++)
        c[r][q] = vpadalq_s16(c[r][q], vmlal_s8(vmull_s8(wa, xa[r]), wb, xb[r]));
    }
  }
  if (g < groups) {
    const int8_t *wg = w + g * VIT_QGROUP;
    int8x8_t xa[VIT_QMR];
    for (int r = 0; r < MR; r++)
      xa[r] = vreinterpret_s8_s32(vdup_n_s32(vit_load4(x + r * ldx + 4 * g)));
    for (int q = 0; q < 8; q++) {
      const int8x8_t wa = vld1_s8(wg + 8 * q);
      for (int r = 0; r < MR; r++) c[r][q] = vpadalq_s16(c[r][q], vmull_s8(wa, xa[r]));
    }
  }
  for (int r = 0; r < MR; r++) {
    int32_t t[32];
    for (int q = 0; q < 8; q++) vst1q_s32(t + 4 * q, c[r][q]);
    for (int j = 0; j < VIT_QNR; j++) acc[r * VIT_QNR + j] = t[2 * j] + t[2 * j + 1];
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
