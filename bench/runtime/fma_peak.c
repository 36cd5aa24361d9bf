/*
 * fma_peak.c: the FMA peak of one core, measured: a loop of nothing but vector multiply-adds
 * (VF_FMA of Runtime/src/vit_simd.h, so the same instruction set and width as the GEMM built
 * with the same flags) on 12 independent accumulators, enough to cover the FMA latency times
 * the number of FMA pipes of the cores we target (4-5 cycles x 2 pipes on Zen 2-5, 4 x 2
 * on Cortex-A76; fewer elsewhere) while leaving registers for the two constants (16 vector
 * registers on AVX2 and armv7). It prints GFLOP/s (a multiply-add is 2 FLOPs) for one thread, and per core
 * with one thread on each of N cores at once.
 *
 *   cc -std=c11 -O2 [ISA flags] -IRuntime/include bench/runtime/fma_peak.c -lpthread
 *   ./a.out [threads, default 1]      (./a.out --isa prints only the ISA's name)
 *   -> "fma peak avx2: 1 thread(s), 8 lanes x 12 accumulators, best 101.3 GFLOP/s per core (median 99.8)"
 *
 * The best of 15 repetitions is the peak (a repetition can only be slowed down, by other
 * processes or the clock ramping up); the median says how steady the core was.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../Runtime/src/vit_simd.h"

#define ACCS 12
#define REPS 15

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* iters x ACCS multiply-adds per lane. acc = c + acc*x converges (x < 1), so the values stay
   normal and finite whatever iters is; the sum is returned so the loop cannot be dropped. */
__attribute__((noinline)) static float fma_loop(long iters, float xs, float cs) {
  const vit_vf x = VF_SET1(xs), c = VF_SET1(cs);
  vit_vf a0 = VF_SET1(1.0f), a1 = VF_SET1(1.1f), a2 = VF_SET1(1.2f), a3 = VF_SET1(1.3f);
  vit_vf a4 = VF_SET1(1.4f), a5 = VF_SET1(1.5f), a6 = VF_SET1(1.6f), a7 = VF_SET1(1.7f);
  vit_vf a8 = VF_SET1(1.8f), a9 = VF_SET1(1.9f), a10 = VF_SET1(2.0f), a11 = VF_SET1(2.1f);
  for (long i = 0; i < iters; i++) {
    a0 = VF_FMA(c, a0, x);
    a1 = VF_FMA(c, a1, x);
    a2 = VF_FMA(c, a2, x);
    a3 = VF_FMA(c, a3, x);
    a4 = VF_FMA(c, a4, x);
    a5 = VF_FMA(c, a5, x);
    a6 = VF_FMA(c, a6, x);
    a7 = VF_FMA(c, a7, x);
    a8 = VF_FMA(c, a8, x);
    a9 = VF_FMA(c, a9, x);
    a10 = VF_FMA(c, a10, x);
    a11 = VF_FMA(c, a11, x);
  }
  vit_vf s = VF_ADD(VF_ADD(VF_ADD(a0, a1), VF_ADD(a2, a3)), VF_ADD(VF_ADD(a4, a5), VF_ADD(a6, a7)));
  s = VF_ADD(s, VF_ADD(VF_ADD(a8, a9), VF_ADD(a10, a11)));
  float out[VIT_VLEN];
  VF_STORE(out, s);
  float sum = 0;
  for (int i = 0; i < VIT_VLEN; i++) sum += out[i];
  return sum;
}

struct run {
  long iters;
  double gflops[REPS];
  float sink;
  pthread_barrier_t *start;
};

static void *run_reps(void *arg) {
  struct run *r = arg;
  for (int k = 0; k < REPS; k++) {
    pthread_barrier_wait(r->start); /* all threads run each repetition together */
    const double t0 = now_s();
    r->sink += fma_loop(r->iters, 0.9999999f, 1e-7f);
    const double t = now_s() - t0;
    r->gflops[k] = 2.0 * VIT_VLEN * ACCS * (double)r->iters / t * 1e-9;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--isa") == 0) {
    printf("%s\n", VIT_ISA_NAME);
    return 0;
  }
  const int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1 || threads > 256) {
    fprintf(stderr, "usage: %s [threads 1..256]\n", argv[0]);
    return 64;
  }
  /* About 0.1 s per repetition at 100 GFLOP/s-class speeds, less on narrow ISAs. */
  const long iters = 400000000L / ACCS / (VIT_VLEN < 4 ? 4 : VIT_VLEN);
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)threads);
  struct run *runs = calloc((size_t)threads, sizeof *runs);
  pthread_t *ids = calloc((size_t)threads, sizeof *ids);
  fma_loop(iters / 10, 0.9999999f, 1e-7f); /* let the clock ramp up */
  for (int t = 0; t < threads; t++) {
    runs[t].iters = iters;
    runs[t].start = &start;
    if (t > 0) pthread_create(&ids[t], NULL, run_reps, &runs[t]);
  }
  run_reps(&runs[0]);
  for (int t = 1; t < threads; t++) pthread_join(ids[t], NULL);
  /* Per core: a repetition's mean over the threads; then the best and the median. */
  double per_core[REPS];
  float sink = 0;
  for (int k = 0; k < REPS; k++) {
    per_core[k] = 0;
    for (int t = 0; t < threads; t++) per_core[k] += runs[t].gflops[k] / threads;
  }
  for (int t = 0; t < threads; t++) sink += runs[t].sink;
  qsort(per_core, REPS, sizeof(double), cmp_double);
  printf("fma peak %s: %d thread(s), %d lanes x %d accumulators, best %.1f GFLOP/s per core "
         "(median %.1f)%s\n",
         VIT_ISA_NAME, threads, VIT_VLEN, ACCS, per_core[REPS - 1], per_core[REPS / 2],
         sink == sink ? "" : " (nan)");
  pthread_barrier_destroy(&start);
  free(runs);
  free(ids);
  return 0;
}
