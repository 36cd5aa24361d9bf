/*
 * vit_threads.c: layer 1 of the runtime, the thread pool (vit_set_threads, vit_get_threads,
 * vit_parallel_for). It uses no other layer of the runtime.
 *
 * The pool lives in static storage and is started on the first call that wants more than one
 * thread; build with -DVIT_NO_THREADS to leave out pthreads altogether. With
 * -DVIT_BLAS_OPENBLAS, vit_set_threads also sets OpenBLAS's thread count.
 */
#if !defined(VIT_NO_THREADS) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "vit_threads.h"

#include <stdint.h>

#ifndef VIT_NO_THREADS
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#endif
#ifdef VIT_BLAS_OPENBLAS
#include <cblas.h>
#endif

#ifdef VIT_NO_THREADS

void vit_set_threads(int n) { (void)n; }
int vit_get_threads(void) { return 1; }
void vit_join_threads(void) {}

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
  int stop;         /* set by vit_join_threads: workers return at the next generation */
} vit_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
              0, 0, 0, NULL, NULL, 0, 0, 0};
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
    if (vit_pool.stop) {
      pthread_mutex_unlock(&vit_pool.mu);
      return NULL;
    }
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

/* Stops and joins every worker (a new generation with stop set wakes them all), so that a
   program can end with no thread running and nothing of the pool allocated. Not during a
   vit_parallel_for. The next vit_parallel_for that wants threads starts new workers. */
void vit_join_threads(void) {
  pthread_mutex_lock(&vit_pool.mu);
  const int started = vit_pool.started;
  vit_pool.stop = 1;
  vit_pool.gen++;
  atomic_store_explicit(&vit_pool_gen, vit_pool.gen, memory_order_release);
  pthread_cond_broadcast(&vit_pool.wake);
  pthread_mutex_unlock(&vit_pool.mu);
  for (int id = 1; id <= started; id++) pthread_join(vit_workers[id], NULL);
  pthread_mutex_lock(&vit_pool.mu);
  vit_pool.started = 0;
  vit_pool.stop = 0;
  pthread_mutex_unlock(&vit_pool.mu);
}

#endif /* VIT_NO_THREADS */
