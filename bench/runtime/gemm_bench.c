/*
 * gemm_bench.c: GFLOP/s of vit_linear_f32 on the DeiT-S shapes (m = 197 tokens), 1 and 2
 * threads, median of repeated calls; with -DBENCH_OPENBLAS also cblas_sgemm on the same shapes
 * in the same run. Also times one DeiT-S attention call (n = 197, 6 heads of 64).
 *
 *   cc -std=c11 -O2 [ISA flags] -IRuntime/include bench/runtime/gemm_bench.c \
 *      Runtime/src/vit_threads.c Runtime/src/vit_math.c Runtime/src/vit_gemm.c \
 *      Runtime/src/vit_attention.c -lm -lpthread [-DBENCH_OPENBLAS -lopenblas]
 *   ./a.out [repeats] [vit|openblas]   (default: both; bench/runtime/run_bench.sh runs them in
 *                                       separate processes, as OpenBLAS's idle threads spin for
 *                                       a while and slow down our second thread)
 *
 * FLOPs count a multiply-add as 2 (2*m*n*k; attention: 4*n*n*C, its two GEMMs). Our kernel runs
 * with the epilogue the model uses on that layer (bias included: qkv none, proj and fc2
 * residual, fc1 GELU); cblas_sgemm is the bare GEMM (no bias, no epilogue).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vit_runtime.h"
#include "../../Runtime/src/vit_simd.h" /* VIT_KERNEL_NAME */

#ifdef BENCH_OPENBLAS
#include <cblas.h>
#endif

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static float *rand_array(size_t count) {
  float *a = malloc(count * sizeof(float));
  unsigned s = 12345;
  for (size_t i = 0; i < count; i++) {
    s = s * 1664525u + 1013904223u;
    a[i] = (float)((s >> 8) * (1.0 / 16777216.0)) - 0.5f;
  }
  return a;
}

struct shape {
  const char *name;
  int m, k, n;
  enum vit_epilogue epi;
};

static const struct shape shapes[] = {
    {"qkv", 197, 384, 1152, VIT_EPI_NONE},
    {"proj", 197, 384, 384, VIT_EPI_RESIDUAL},
    {"fc1", 197, 384, 1536, VIT_EPI_GELU},
    {"fc2", 197, 1536, 384, VIT_EPI_RESIDUAL},
};

/* Median ms of `repeats` timed calls (after 3 warm-up calls). */
#define TIME_MEDIAN(repeats, call)                    \
  do {                                                \
    for (int w_ = 0; w_ < 3; w_++) { call; }          \
    for (int r_ = 0; r_ < (repeats); r_++) {          \
      const double t0_ = now_ms();                    \
      call;                                           \
      times[r_] = now_ms() - t0_;                     \
    }                                                 \
    qsort(times, (size_t)(repeats), sizeof(double), cmp_double); \
  } while (0)

/* One line: implementation, threads, layer, m k n, median GFLOP/s, range, median ms. */
static void report(const char *impl, int threads, const char *layer, int m, int k, int n,
                   double gflop, const double *sorted_ms, int repeats) {
  printf("%-22s t=%d %-5s m=%d k=%d n=%d %7.1f GFLOP/s (%.1f-%.1f) %.3f ms\n", impl, threads,
         layer, m, k, n, gflop / sorted_ms[repeats / 2] * 1e3, gflop / sorted_ms[repeats - 1] * 1e3,
         gflop / sorted_ms[0] * 1e3, sorted_ms[repeats / 2]);
}

int main(int argc, char **argv) {
  const int repeats = argc > 1 ? atoi(argv[1]) : 51;
  const int run_vit = argc <= 2 || strcmp(argv[2], "openblas") != 0;
  const int run_blas = argc <= 2 || strcmp(argv[2], "vit") != 0;
  (void)run_blas;
  double *times = malloc((size_t)repeats * sizeof(double));
#ifdef BENCH_OPENBLAS
  char openblas_name[64];
  const char *coretype = getenv("OPENBLAS_CORETYPE");
  snprintf(openblas_name, sizeof openblas_name, "openblas(%s)", coretype ? coretype : "auto");
#endif
  printf("# gemm=%s, median of %d calls, GFLOP/s (min-max over calls), median ms\n",
         VIT_KERNEL_NAME, repeats);
  for (int threads = 1; threads <= 2; threads++) {
    vit_set_threads(threads);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
      const struct shape sh = shapes[s];
      float *x = rand_array((size_t)sh.m * sh.k);
      float *w = rand_array((size_t)sh.n * sh.k);
      float *bias = rand_array((size_t)sh.n);
      float *y = rand_array((size_t)sh.m * sh.n);
      float *packed = malloc(VIT_PACKED_FLOATS(sh.n, sh.k) * sizeof(float));
      vit_pack_panels_f32(w, (size_t)sh.k, 1, sh.n, sh.k, 0, (sh.n + VIT_NR - 1) / VIT_NR, packed);
      const double gflop = 2.0 * sh.m * sh.n * sh.k * 1e-9;
      if (run_vit) {
        TIME_MEDIAN(repeats, vit_linear_f32(x, sh.m, sh.k, packed, bias, sh.n, sh.epi,
                                            sh.epi == VIT_EPI_RESIDUAL ? y : NULL, y));
        report(VIT_KERNEL_NAME, threads, sh.name, sh.m, sh.k, sh.n, gflop, times, repeats);
      }
#ifdef BENCH_OPENBLAS
      if (run_blas) {
      openblas_set_num_threads(threads);
      TIME_MEDIAN(repeats, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, sh.m, sh.n, sh.k,
                                       1.0f, x, sh.k, w, sh.k, 0.0f, y, sh.n));
      report(openblas_name, threads, sh.name, sh.m, sh.k, sh.n, gflop, times, repeats);
      }
#endif
      free(x);
      free(w);
      free(bias);
      free(y);
      free(packed);
    }
    /* One DeiT-S attention (n = 197, 6 heads of 64): 4*n*n*C FLOPs in its two GEMMs. */
    if (run_vit) {
      const int n = 197, heads = 6, d = 64, C = heads * d;
      float *qkv = rand_array((size_t)n * 3 * C);
      float *out = malloc((size_t)n * C * sizeof(float));
      float *scratch = malloc(VIT_ATTENTION_SCRATCH_FLOATS_T(n, heads, d, threads) * sizeof(float));
      const double gflop = 4.0 * n * n * C * 1e-9;
      TIME_MEDIAN(repeats, vit_attention_f32(qkv, n, heads, d, 0.125f, NULL, NULL, scratch, out));
      report(VIT_KERNEL_NAME, threads, "attn", n, d, n, gflop, times, repeats);
      free(qkv);
      free(out);
      free(scratch);
    }
  }
  free(times);
  return 0;
}
