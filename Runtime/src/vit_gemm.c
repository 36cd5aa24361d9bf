/*
 * vit_gemm.c: layer 3 of the runtime, y = epilogue(x·Wᵀ + bias) on pre-packed weights
 * (vit_linear_f32, vit_gemm_panels_f32) and the packing (vit_pack_panels_f32). It uses the
 * thread pool (vit_threads.c, layer 1), vit_gelu_f32 (vit_math.c, layer 2; only the OpenBLAS
 * build) and the inline vector code and GELU of vit_simd.h (layer 0).
 *
 * The microkernel is chosen at compile time from the predefined macros (vit_simd.h):
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
 */
#include "vit_gemm.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vit_math.h"
#include "vit_simd.h"
#include "vit_threads.h"

#ifdef VIT_BLAS_OPENBLAS
#include <cblas.h>
#endif

/* Rows of x streamed per block: the x block (rows x k floats) should stay in L2 while all
   the block's panels pass over it. */
#define VIT_GEMM_BLOCK_FLOATS (64 * 1024)

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
