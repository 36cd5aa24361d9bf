/*
 * qgemm_bench.c: vit_linear_s8 (int8) beside vit_linear_f32 on the DeiT-S shapes (m = 197
 * tokens), in the same run, same epilogues and bias: int8 GOP/s, fp32 GFLOP/s (both 2mnk/time)
 * and their ratio. The int8 time includes quantizing x (vit_linear_s8 does it on every call).
 * The two are timed in alternation, one call each per round, so that a change in the machine's
 * load hits both; each figure is the median over the rounds.
 *
 *   cc -std=c11 -O2 [ISA flags] -IRuntime/include bench/runtime/qgemm_bench.c \
 *      Runtime/src/vit_threads.c Runtime/src/vit_math.c Runtime/src/vit_gemm.c \
 *      Runtime/src/vit_qgemm.c -lm -lpthread
 *   ./a.out [rounds, default 51] [threads, default 1]
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vit_runtime.h"
#include "../../Runtime/src/vit_simd.h" /* VIT_KERNEL_NAME, VIT_QKERNEL_NAME */

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

static void cpu_model(char *buf, size_t size) {
  snprintf(buf, size, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) == 0) {
      const char *c = strchr(line, ':');
      if (c) {
        c += c[1] == ' ' ? 2 : 1;
        snprintf(buf, size, "%s", c);
        buf[strcspn(buf, "\n")] = 0;
      }
      break;
    }
  }
  fclose(f);
}

int main(int argc, char **argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 51;
  const int threads = argc > 2 ? atoi(argv[2]) : 1;
  double *tf = malloc((size_t)rounds * sizeof(double)), *tq = malloc((size_t)rounds * sizeof(double));
  char cpu[160];
  cpu_model(cpu, sizeof cpu);
  vit_set_threads(threads);
  printf("# %s; int8 kernel %s, fp32 kernel %s, %d thread(s), median of %d alternating calls\n",
         cpu, VIT_QKERNEL_NAME, VIT_KERNEL_NAME, threads, rounds);
  printf("| layer (m k n) | epilogue | int8 GOP/s (min-max) | fp32 GFLOP/s (min-max) | int8 / fp32 |\n");
  printf("|---|---|---:|---:|---:|\n");
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    const struct shape sh = shapes[s];
    float *x = rand_array((size_t)sh.m * sh.k);
    float *w = rand_array((size_t)sh.n * sh.k);
    float *bias = rand_array((size_t)sh.n);
    float *y = rand_array((size_t)sh.m * sh.n);
    float *packed = malloc(VIT_PACKED_FLOATS(sh.n, sh.k) * sizeof(float));
    vit_pack_panels_f32(w, (size_t)sh.k, 1, sh.n, sh.k, 0, (sh.n + VIT_NR - 1) / VIT_NR, packed);
    void *qw = aligned_alloc(64, VIT_QWEIGHT_BYTES(sh.n, sh.k));
    vit_quantize_weights_s8(w, sh.n, sh.k, qw);
    int8_t *xq = malloc((size_t)sh.m * VIT_QK(sh.k));
    float *xs = malloc((size_t)sh.m * sizeof(float));
    const float *res = sh.epi == VIT_EPI_RESIDUAL ? y : NULL;
    for (int r = -3; r < rounds; r++) { /* 3 warm-up rounds */
      double t0 = now_ms();
      vit_linear_f32(x, sh.m, sh.k, packed, bias, sh.n, sh.epi, res, y);
      double t1 = now_ms();
      vit_linear_s8(x, sh.m, sh.k, qw, bias, sh.n, sh.epi, res, y, xq, xs);
      double t2 = now_ms();
      if (r >= 0) {
        tf[r] = t1 - t0;
        tq[r] = t2 - t1;
      }
    }
    qsort(tf, (size_t)rounds, sizeof(double), cmp_double);
    qsort(tq, (size_t)rounds, sizeof(double), cmp_double);
    const double gop = 2.0 * sh.m * sh.n * sh.k * 1e-9;
    static const char *const epi_name[] = {"bias", "bias+GELU", "bias+residual"};
    printf("| %s m=%d k=%d n=%d | %s | %.1f (%.1f-%.1f) | %.1f (%.1f-%.1f) | %.2f |\n", sh.name,
           sh.m, sh.k, sh.n, epi_name[sh.epi], gop / tq[rounds / 2] * 1e3, gop / tq[rounds - 1] * 1e3,
           gop / tq[0] * 1e3,
           gop / tf[rounds / 2] * 1e3, gop / tf[rounds - 1] * 1e3, gop / tf[0] * 1e3,
           tf[rounds / 2] / tq[rounds / 2]);
    free(x);
    free(w);
    free(bias);
    free(y);
    free(packed);
    free(qw);
    free(xq);
    free(xs);
  }
  free(tf);
  free(tq);
  vit_join_threads();
  return 0;
}
