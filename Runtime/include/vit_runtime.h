/*
 * vit_runtime.h: the kernels that vitc's emitted model code calls.
 *
 * C11, libc + libm (+ pthreads unless built with -DVIT_NO_THREADS). No kernel allocates memory
 * or prints: every buffer is passed in by the caller (the emitted code's static arena and scratch).
 *
 * Files: src/vit_runtime.c (portable kernels: layernorm, attention, gather; thread pool),
 * src/vit_gemm.c (GEMM microkernels chosen at compile time: AVX-512, AVX2+FMA, NEON, or
 * scalar with -DVIT_GENERIC; cblas_sgemm with -DVIT_BLAS_OPENBLAS; and the vector loops of
 * softmax and GELU). See Runtime/README.md.
 *
 * Shapes are written [rows][cols]; every matrix is row-major and densely packed unless a
 * row stride ("ld...") says otherwise.
 */
#ifndef VIT_RUNTIME_H
#define VIT_RUNTIME_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- packed weights --------------------------------------------------------------------- */

#define VIT_NR 16 /* columns per packed panel */

/* Packed weight layout for y = x·Wᵀ (W is nn.Linear's [n][k], row-major):
   panel p (p = 0 .. ceil(n/16)-1) holds output features p*16 .. p*16+15;
   packed[(p*k + kk)*16 + j] = W[p*16 + j][kk], or 0 when p*16 + j >= n.
   The Swift compiler writes weights in exactly this layout.
   With -DVIT_BLAS_OPENBLAS the "packed" weights are instead W itself, [n][k] row-major. */
#define VIT_PACKED_FLOATS(n, k) ((size_t)(((n) + VIT_NR - 1) / VIT_NR) * VIT_NR * (size_t)(k))

/* Floats of packed storage for an [n][k] weight: ceil(n/16)*16*k (n*k with VIT_BLAS_OPENBLAS). */
size_t vit_packed_size_f32(int n, int k);

/* Reference packer, for tests: w [n][k] -> packed [vit_packed_size_f32(n, k)]. */
void vit_pack_f32(const float *w, int n, int k, float *packed);

/* ---- linear (GEMM + epilogue) ----------------------------------------------------------- */

enum vit_epilogue { VIT_EPI_NONE = 0, VIT_EPI_GELU = 1, VIT_EPI_RESIDUAL = 2 };

/* y[m][n] = epilogue(x[m][k] · Wᵀ + bias[n]), W [n][k] given packed (packed_w as above).
   bias may be NULL. VIT_EPI_GELU applies exact erf GELU to (x·Wᵀ + bias).
   VIT_EPI_RESIDUAL computes (x·Wᵀ + bias) + residual[m][n]; residual may alias y (exactly).
   x row stride k, y and residual row stride n. x must not overlap y.
   Each y element is one float multiply-add chain over kk = 0..k-1 (fused where the ISA has
   FMA), then + bias, then the epilogue, computed by one thread: results do not depend on the
   thread count (with VIT_BLAS_OPENBLAS they are OpenBLAS's, threaded its own way). */
void vit_linear_f32(const float *restrict x, int m, int k, const float *restrict packed_w,
                    const float *restrict bias, int n, enum vit_epilogue epilogue,
                    const float *residual, float *y);

/* ---- normalisation and pointwise -------------------------------------------------------- */

/* LayerNorm of each row: x [rows][c] -> y [rows][c], y = (x - mean) / sqrt(var + eps) * w + b,
   var biased (divided by c); mean, variance and (x - mean)/std in double. w or b may be NULL
   (1 and 0). y may alias x. */
void vit_layernorm_f32(const float *x, int rows, int c, const float *restrict w,
                       const float *restrict b, float eps, float *y);

/* Softmax of each row: x [rows][c] -> y [rows][c], exp(x - rowmax) / sum (libm expf; with
   -DVIT_VECTOR_MATH the runtime's vector exp, about 1 ulp, 0 below FLT_MIN). y may alias x. */
void vit_softmax_f32(const float *x, int rows, int c, float *y);

/* Exact GELU, 0.5*x*(1 + erf(x/sqrt(2))), of count floats (libm erff; with -DVIT_VECTOR_MATH
   the runtime's vector erf, about 1 ulp). y may alias x. */
void vit_gelu_f32(const float *x, size_t count, float *y);

/* ---- attention -------------------------------------------------------------------------- */

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

size_t vit_attention_scratch_floats(int n, int heads, int head_dim, int threads);

/* Multi-head self-attention from a fused qkv [n][3C], C = heads*head_dim (timm layout: q col
   h*d+j, k col C+h*d+j, v col 2C+h*d+j). Logits s[i][j] = (q_i·k_j) * scale (+ key_bias[j] when
   key_bias != NULL, ToMe's log(size)); softmax over j (max-subtracted); out [n][C] with column
   h*d+j = sum_j p[i][j] v_j. Never materialises [heads][n][n]: one VIT_ATTENTION_ROWS tile of
   query rows at a time per thread.
   cls_attn (may be NULL): [heads][n], the post-softmax attention of query row 0,
   cls_attn[h*n + j].
   scratch: at least vit_attention_scratch_floats(n, heads, head_dim, vit_get_threads())
   floats (VIT_ATTENTION_SCRATCH_FLOATS(n, heads, head_dim) always suffices); 16-float aligned
   is best. qkv, scratch and out must not overlap. */
void vit_attention_f32(const float *restrict qkv, int n, int heads, int head_dim, float scale,
                       const float *key_bias, float *restrict cls_attn, float *restrict scratch,
                       float *restrict out);

/* ---- gather ----------------------------------------------------------------------------- */

/* y[i] = x[idx[i]] for i < count, rows of c floats: x [*][c], idx [count], y [count][c].
   x and y must not overlap. */
void vit_gather_rows_f32(const float *restrict x, const int *restrict idx, int count, int c,
                         float *restrict y);

/* ---- threads ---------------------------------------------------------------------------- */

#ifdef VIT_NO_THREADS
#define VIT_MAX_THREADS 1
#else
#define VIT_MAX_THREADS 64
#endif

/* Threads used by vit_linear_f32 and vit_attention_f32 from now on. n <= 0: all online cores;
   capped at VIT_MAX_THREADS. The pool is made lazily, in static storage, on the first call
   that needs it. With -DVIT_NO_THREADS this does nothing and everything runs serially.
   Call from one thread at a time (the runtime is not re-entrant). */
void vit_set_threads(int n);
int vit_get_threads(void);

/* ---- building blocks (used between the runtime's files; usable by tests) ---------------- */

/* Runs fn(ctx, task, thread) for task = 0 .. ntasks-1 on up to `threads` pool threads
   (0 <= thread < threads; the caller is thread 0), and returns when all are done. Tasks are
   handed out dynamically, so a task's work must not depend on which thread runs it. */
typedef void (*vit_task_fn)(void *ctx, int task, int thread);
void vit_parallel_for(vit_task_fn fn, void *ctx, int ntasks, int threads);

/* Single-threaded GEMM on panel-packed weights, for rows i < m and panels p0 <= p < p1:
   y[i*ldy + j] = epilogue(sum_kk x[i*ldx + kk] * W[j][kk] + bias[j]) for the columns
   16*p0 <= j < min(16*p1, n); residual row stride ldr. Always uses the panel layout (also
   with VIT_BLAS_OPENBLAS). */
void vit_gemm_panels_f32(const float *x, size_t ldx, int m, int k, const float *packed, int n,
                         int p0, int p1, const float *bias, enum vit_epilogue epilogue,
                         const float *residual, size_t ldr, float *y, size_t ldy);

/* Packs W given by element strides (W[j][kk] = w[j*ldw_j + kk*ldw_k]) into the panel layout,
   n outputs by k inputs, panels p0 <= p < p1 only. */
void vit_pack_panels_f32(const float *w, size_t ldw_j, size_t ldw_k, int n, int k, int p0, int p1,
                         float *packed);

/* In place over one row of n scores: s = softmax(s * scale + key_bias) (key_bias may be NULL),
   the row softmax of vit_softmax_f32 and vit_attention_f32. */
void vit_softmax_row_f32(float *s, int n, float scale, const float *key_bias);

/* Name of the GEMM microkernel compiled in: "avx512", "avx2", "neon" or "scalar", then
   "+vecmath" with VIT_VECTOR_MATH and "+openblas" with VIT_BLAS_OPENBLAS. */
const char *vit_gemm_isa(void);

#ifdef __cplusplus
}
#endif

#endif /* VIT_RUNTIME_H */
