/*
 * vit_runtime.c: the portable kernels (layernorm, attention, gather) and the thread pool.
 * The GEMM and its microkernels, softmax and GELU (the vector loops) are in vit_gemm.c.
 *
 * No kernel allocates or prints. The thread pool lives in static storage and is started on
 * the first call that wants more than one thread; build with -DVIT_NO_THREADS to leave out
 * pthreads altogether.
 */
#if !defined(VIT_NO_THREADS) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "vit_runtime.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef VIT_NO_THREADS
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#endif
#ifdef VIT_BLAS_OPENBLAS
#include <cblas.h>
#endif

/* ---- thread pool ------------------------------------------------------------------------ */

#ifdef VIT_NO_THREADS

void vit_set_threads(int n) { (void)n; }
int vit_get_threads(void) { return 1; }

void vit_parallel_for(vit_task_fn fn, void *ctx, int ntasks, int threads) {
  (void)threads;
  for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
}

#else

/* Workers 1..started wait for a new generation of work; the caller is thread 0. A job is
   (fn, ctx, ntasks); tasks are claimed from an atomic counter. Workers with an id >= the
   job's thread count sit the job out. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  int threads;  /* vit_set_threads value; 0 = not set yet (all online cores) */
  int started;  /* workers created */
  unsigned gen; /* job generation, changed under mu */
  vit_task_fn fn;
  void *ctx;
  int ntasks;
  int participants; /* threads on the current job, caller included */
} vit_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
              0, 0, 0, NULL, NULL, 0, 0};
static pthread_t vit_workers[VIT_MAX_THREADS];
static unsigned vit_worker_gen0[VIT_MAX_THREADS]; /* generation current when each was created */
static atomic_uint vit_pool_gen;                  /* copy of vit_pool.gen, for spinning */
static atomic_int vit_pool_next;                  /* next task of the current job */
static atomic_int vit_pool_pending;               /* workers of the current job still running */
static _Thread_local int vit_in_task;             /* set while running a task: no nesting */

/* Iterations a worker polls for new work before it sleeps on the condition variable. */
#define VIT_SPIN 20000

static inline void vit_cpu_relax(void) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_ia32_pause();
#endif
}

static void vit_run_tasks(vit_task_fn fn, void *ctx, int ntasks, int thread) {
  vit_in_task = 1;
  for (;;) {
    const int t = atomic_fetch_add_explicit(&vit_pool_next, 1, memory_order_relaxed);
    if (t >= ntasks) break;
    fn(ctx, t, thread);
  }
  vit_in_task = 0;
}

static void *vit_worker(void *arg) {
  const int id = (int)(intptr_t)arg;
  unsigned seen = vit_worker_gen0[id];
  for (;;) {
    for (int s = 0; s < VIT_SPIN; s++) {
      if (atomic_load_explicit(&vit_pool_gen, memory_order_acquire) != seen) break;
      vit_cpu_relax();
    }
    pthread_mutex_lock(&vit_pool.mu);
    while (vit_pool.gen == seen) pthread_cond_wait(&vit_pool.wake, &vit_pool.mu);
    seen = vit_pool.gen;
    const int go = id < vit_pool.participants;
    vit_task_fn fn = vit_pool.fn;
    void *ctx = vit_pool.ctx;
    const int ntasks = vit_pool.ntasks;
    pthread_mutex_unlock(&vit_pool.mu);
    if (!go) continue;
    vit_run_tasks(fn, ctx, ntasks, id);
    if (atomic_fetch_sub_explicit(&vit_pool_pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&vit_pool.mu);
      pthread_cond_signal(&vit_pool.done);
      pthread_mutex_unlock(&vit_pool.mu);
    }
  }
  return NULL;
}

static int vit_online_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  return n > VIT_MAX_THREADS ? VIT_MAX_THREADS : (int)n;
}

void vit_set_threads(int n) {
  if (n <= 0) n = vit_online_cores();
  if (n > VIT_MAX_THREADS) n = VIT_MAX_THREADS;
  pthread_mutex_lock(&vit_pool.mu);
  vit_pool.threads = n;
  pthread_mutex_unlock(&vit_pool.mu);
#ifdef VIT_BLAS_OPENBLAS
  openblas_set_num_threads(n); /* vit_linear_f32 is then cblas_sgemm */
#endif
}

int vit_get_threads(void) {
  pthread_mutex_lock(&vit_pool.mu);
  if (vit_pool.threads == 0) vit_pool.threads = vit_online_cores();
  const int n = vit_pool.threads;
  pthread_mutex_unlock(&vit_pool.mu);
  return n;
}

void vit_parallel_for(vit_task_fn fn, void *ctx, int ntasks, int threads) {
  const int limit = vit_get_threads();
  if (threads > limit) threads = limit;
  if (threads > ntasks) threads = ntasks;
  if (threads <= 1 || vit_in_task) { /* serial, also when called from inside a task */
    for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
    return;
  }
  pthread_mutex_lock(&vit_pool.mu);
  while (vit_pool.started < threads - 1) {
    const int id = vit_pool.started + 1;
    vit_worker_gen0[id] = vit_pool.gen;
    if (pthread_create(&vit_workers[id], NULL, vit_worker, (void *)(intptr_t)id) != 0) break;
    vit_pool.started = id;
  }
  if (threads > vit_pool.started + 1) threads = vit_pool.started + 1;
  if (threads <= 1) {
    pthread_mutex_unlock(&vit_pool.mu);
    for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
    return;
  }
  vit_pool.fn = fn;
  vit_pool.ctx = ctx;
  vit_pool.ntasks = ntasks;
  vit_pool.participants = threads;
  atomic_store_explicit(&vit_pool_pending, threads - 1, memory_order_relaxed);
  atomic_store_explicit(&vit_pool_next, 0, memory_order_relaxed);
  vit_pool.gen++;
  atomic_store_explicit(&vit_pool_gen, vit_pool.gen, memory_order_release);
  pthread_cond_broadcast(&vit_pool.wake);
  pthread_mutex_unlock(&vit_pool.mu);

  vit_run_tasks(fn, ctx, ntasks, 0);

  for (int s = 0; s < VIT_SPIN; s++) {
    if (atomic_load_explicit(&vit_pool_pending, memory_order_acquire) == 0) return;
    vit_cpu_relax();
  }
  pthread_mutex_lock(&vit_pool.mu);
  while (atomic_load_explicit(&vit_pool_pending, memory_order_acquire) > 0)
    pthread_cond_wait(&vit_pool.done, &vit_pool.mu);
  pthread_mutex_unlock(&vit_pool.mu);
}

#endif /* VIT_NO_THREADS */

/* ---- layernorm -------------------------------------------------------------------------- */

void vit_layernorm_f32(const float *x, int rows, int c, const float *restrict w,
                       const float *restrict b, float eps, float *y) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * c;
    float *yr = y + (size_t)r * c;
    /* Two passes in double, four partial sums each (a fixed order). */
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int j = 0;
    for (; j + 4 <= c; j += 4) {
      s0 += xr[j];
      s1 += xr[j + 1];
      s2 += xr[j + 2];
      s3 += xr[j + 3];
    }
    for (; j < c; j++) s0 += xr[j];
    const double mean = ((s0 + s1) + (s2 + s3)) / c;
    s0 = s1 = s2 = s3 = 0;
    for (j = 0; j + 4 <= c; j += 4) {
      const double d0 = xr[j] - mean, d1 = xr[j + 1] - mean;
      const double d2 = xr[j + 2] - mean, d3 = xr[j + 3] - mean;
      s0 += d0 * d0;
      s1 += d1 * d1;
      s2 += d2 * d2;
      s3 += d3 * d3;
    }
    for (; j < c; j++) {
      const double d = xr[j] - mean;
      s0 += d * d;
    }
    const double var = ((s0 + s1) + (s2 + s3)) / c;
    const double rstd = 1.0 / sqrt(var + (double)eps);
    for (j = 0; j < c; j++) {
      float t = (float)((xr[j] - mean) * rstd);
      if (w) t *= w[j];
      if (b) t += b[j];
      yr[j] = t;
    }
  }
}

/* ---- attention -------------------------------------------------------------------------- */

size_t vit_attention_scratch_floats(int n, int heads, int head_dim, int threads) {
  if (threads < 1) threads = 1;
  return VIT_ATTENTION_SCRATCH_FLOATS_T(n, heads, head_dim, threads);
}

struct vit_attention_job {
  const float *qkv;
  int n, heads, d, C;
  float scale;
  const float *key_bias;
  float *cls_attn, *out;
  float *kp, *vp, *tiles; /* packed keys [heads][kp_size], values [heads][vp_size], score tiles */
  size_t kp_size, vp_size, tile_size, lds;
  int row_tiles;
};

/* Phase 1, task 2h: pack head h's keys as W = K ([n][d]); task 2h+1: its values as
   W = Vᵀ ([d][n]), so that scores = Q·Kᵀ and context = P·V are both x·Wᵀ. */
static void vit_attention_pack_task(void *ctx, int task, int thread) {
  (void)thread;
  const struct vit_attention_job *j = ctx;
  const int h = task / 2;
  const size_t ld = (size_t)3 * j->C;
  if (task % 2 == 0) {
    vit_pack_panels_f32(j->qkv + j->C + (size_t)h * j->d, ld, 1, j->n, j->d, 0,
                        (j->n + VIT_NR - 1) / VIT_NR, j->kp + h * j->kp_size);
  } else {
    vit_pack_panels_f32(j->qkv + 2 * (size_t)j->C + (size_t)h * j->d, 1, ld, j->d, j->n, 0,
                        (j->d + VIT_NR - 1) / VIT_NR, j->vp + h * j->vp_size);
  }
}

/* Phase 2: one head, one tile of up to VIT_ATTENTION_ROWS query rows. */
static void vit_attention_rows_task(void *ctx, int task, int thread) {
  const struct vit_attention_job *j = ctx;
  const int h = task / j->row_tiles;
  const int i0 = task % j->row_tiles * VIT_ATTENTION_ROWS;
  const int rows = j->n - i0 < VIT_ATTENTION_ROWS ? j->n - i0 : VIT_ATTENTION_ROWS;
  const size_t ld = (size_t)3 * j->C;
  float *s = j->tiles + (size_t)thread * j->tile_size; /* [rows][lds] */

  /* scores = q · kᵀ */
  vit_gemm_panels_f32(j->qkv + (size_t)i0 * ld + (size_t)h * j->d, ld, rows, j->d,
                      j->kp + h * j->kp_size, j->n, 0, (j->n + VIT_NR - 1) / VIT_NR, NULL,
                      VIT_EPI_NONE, NULL, 0, s, j->lds);
  for (int r = 0; r < rows; r++)
    vit_softmax_row_f32(s + (size_t)r * j->lds, j->n, j->scale, j->key_bias);
  if (i0 == 0 && j->cls_attn)
    memcpy(j->cls_attn + (size_t)h * j->n, s, (size_t)j->n * sizeof(float));
  /* context = p · v */
  vit_gemm_panels_f32(s, j->lds, rows, j->n, j->vp + h * j->vp_size, j->d, 0,
                      (j->d + VIT_NR - 1) / VIT_NR, NULL, VIT_EPI_NONE, NULL, 0,
                      j->out + (size_t)i0 * j->C + (size_t)h * j->d, (size_t)j->C);
}

void vit_attention_f32(const float *restrict qkv, int n, int heads, int head_dim, float scale,
                       const float *key_bias, float *restrict cls_attn, float *restrict scratch,
                       float *restrict out) {
  if (n <= 0 || heads <= 0 || head_dim <= 0) return;
  struct vit_attention_job j;
  j.qkv = qkv;
  j.n = n;
  j.heads = heads;
  j.d = head_dim;
  j.C = heads * head_dim;
  j.scale = scale;
  j.key_bias = key_bias;
  j.cls_attn = cls_attn;
  j.out = out;
  j.kp_size = VIT_PACKED_FLOATS(n, head_dim);
  j.vp_size = VIT_PACKED_FLOATS(head_dim, n);
  j.lds = VIT_PACKED_FLOATS(n, 1);
  j.tile_size = VIT_ATTENTION_ROWS * j.lds;
  j.row_tiles = (n + VIT_ATTENTION_ROWS - 1) / VIT_ATTENTION_ROWS;
  /* 64-byte align (the header's size includes 16 floats of slack for this). */
  float *base = scratch + ((64 - (uintptr_t)scratch % 64) % 64) / sizeof(float);
  j.kp = base;
  j.vp = j.kp + (size_t)heads * j.kp_size;
  j.tiles = j.vp + (size_t)heads * j.vp_size;

  /* At most one thread per ~1 MFLOP. */
  int threads = vit_get_threads();
  const double flops = 4.0 * n * n * j.C;
  if (flops < threads * 1e6) threads = (int)(flops / 1e6) + 1;
  vit_parallel_for(vit_attention_pack_task, &j, 2 * heads, threads);
  vit_parallel_for(vit_attention_rows_task, &j, heads * j.row_tiles, threads);
}

/* ---- gather ----------------------------------------------------------------------------- */

void vit_gather_rows_f32(const float *restrict x, const int *restrict idx, int count, int c,
                         float *restrict y) {
  for (int i = 0; i < count; i++)
    memcpy(y + (size_t)i * c, x + (size_t)idx[i] * c, (size_t)c * sizeof(float));
}
