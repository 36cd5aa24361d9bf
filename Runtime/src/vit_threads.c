/*
 * vit_threads.c: layer 1 of the runtime, the thread pool (vit_set_threads, vit_get_threads,
 * vit_parallel_for, vit_join_threads). It uses no other layer of the runtime.
 *
 * The pool lives in static storage and is started on the first call that wants more than one
 * thread; build with -DVIT_NO_THREADS to leave out pthreads altogether. With
 * -DVIT_BLAS_OPENBLAS, vit_set_threads also sets OpenBLAS's thread count.
 *
 * Built so that threads never make a call slower than the caller alone would be:
 * - A job's tasks are grouped into chunks, claimed one at a time from one atomic word that
 *   also holds the job's generation and chunk count (so a claim can never land in another
 *   job). The caller claims chunks too, until none are left.
 * - The caller then waits only for chunks another thread has claimed and not finished. A
 *   worker that wakes after the last chunk was claimed finds nothing, takes nothing, and
 *   nobody waits for it: a worker the OS has not scheduled costs the caller nothing.
 * - Waiting is bounded spinning with a pause instruction (VIT_SPIN_NS; the caller, waiting
 *   for claimed chunks, up to twice its own mean chunk time, VIT_SPIN_MAX_NS at most), then a
 *   few sched_yield calls (VIT_YIELDS), then sleep on a condition variable. Workers wait for a
 *   new job the same way, so they do not take a busy machine's CPU for long.
 * Which thread runs a task never changes what the task computes (the kernels' contract), so
 * results are the same bits for any thread count and any timing.
 */
#if !defined(VIT_NO_THREADS) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#if !defined(VIT_NO_THREADS) && defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1 /* syscall(), for the futexes */
#endif
#include "vit_threads.h"

#include <stdint.h>

#ifndef VIT_NO_THREADS
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
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

/* How long a thread spins (pause instruction, then a clock check every 64 polls) before it
   starts yielding, in nanoseconds (the caller waiting for claimed chunks: twice its own mean
   chunk time, within these bounds), and how many sched_yield calls come before it sleeps. */
#ifndef VIT_SPIN_NS
#define VIT_SPIN_NS 30000
#endif
#ifndef VIT_SPIN_MAX_NS
#define VIT_SPIN_MAX_NS 1000000
#endif
#ifndef VIT_YIELDS
#define VIT_YIELDS 4
#endif

/* The claim word: generation (24 bits) | chunks (20 bits) | next chunk (20 bits). A claim is
   a compare-and-swap of next -> next + 1 while next < chunks, so it fails once the job is
   taken up or replaced, and a thread holding a stale word cannot take a chunk of a newer job
   (the generation would have to come round again, 2^24 jobs later, while it sleeps between
   one load and the next CAS). */
#define VIT_CHUNK_BITS 20
#define VIT_MAX_CHUNKS ((1 << VIT_CHUNK_BITS) - 1)
#define VIT_GEN_SHIFT (2 * VIT_CHUNK_BITS)
#define VIT_WORD_GEN(w) ((uint32_t)((w) >> VIT_GEN_SHIFT))
#define VIT_WORD_CHUNKS(w) ((int)(((w) >> VIT_CHUNK_BITS) & VIT_MAX_CHUNKS))
#define VIT_WORD_NEXT(w) ((int)((w)&VIT_MAX_CHUNKS))

/* The sleeping and the workers' creation, under mu. The caller of vit_parallel_for never
   needs mu on its way through a job (the settings are atomics, and waking sleepers only tries
   the lock): a worker descheduled, or held in a signal handler, while it holds mu cannot stop
   the caller; the caller takes mu only to sleep, waiting for a chunk another thread claimed. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t wake; /* workers sleep here until the generation changes */
  pthread_cond_t done; /* the caller sleeps here until every claimed chunk is finished */
  atomic_int threads;  /* vit_set_threads value; 0 = not set yet (all online cores) */
  atomic_int started;  /* workers created: ids 1 .. started (written under mu) */
} vit_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0,
              0};
static pthread_t vit_workers[VIT_MAX_THREADS];
static uint32_t vit_worker_gen0[VIT_MAX_THREADS]; /* generation before each was created */

/* The current job. The caller writes fn .. per while no chunk of the old job can be claimed
   (its word is used up), then publishes the word; a worker reads them after loading the
   word and trusts them only once its CAS on that same word has succeeded. */
static _Atomic uint64_t vit_job_word;
static _Atomic(vit_task_fn) vit_job_fn;
static _Atomic(void *) vit_job_ctx;
static atomic_int vit_job_ntasks;
static atomic_int vit_job_per;          /* tasks per chunk */
static atomic_int vit_job_participants; /* thread ids below this may claim */
static atomic_int vit_job_done;         /* chunks finished */
static atomic_int vit_stop;             /* set by vit_join_threads */
static atomic_int vit_sleepers;         /* workers asleep (or about to be) on wake */
static atomic_int vit_caller_asleep;    /* the caller sleeps (or is about to) on done */
static _Thread_local int vit_in_task;   /* set while running a task: no nesting */

static inline void vit_cpu_relax(void) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_ia32_pause();
#elif (defined(__aarch64__) || defined(__arm__)) && (defined(__GNUC__) || defined(__clang__))
  __asm__ __volatile__("yield");
#endif
}

static int64_t vit_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins for up to spin_ns, then yields (bounded), while ready(arg) is false; returns 1 when
   it became true, 0 when the caller should go to sleep. */
static int vit_wait_briefly(int (*ready)(const void *), const void *arg, int64_t spin_ns) {
  int64_t start = 0;
  for (int s = 1;; s++) {
    if (ready(arg)) return 1;
    vit_cpu_relax();
    if (s % 64 == 0) {
      const int64_t now = vit_now_ns();
      if (start == 0) start = now;
      else if (now - start > spin_ns) break;
    }
  }
  for (int y = 0; y < VIT_YIELDS; y++) {
    if (ready(arg)) return 1;
    sched_yield();
  }
  return ready(arg);
}

static int vit_gen_changed(const void *arg) {
  const uint32_t seen = *(const uint32_t *)arg;
  return VIT_WORD_GEN(atomic_load_explicit(&vit_job_word, memory_order_acquire)) != seen;
}

/* ---- sleeping and waking, once spinning and yielding are over ----------------------------
   On Linux, futexes: a wake never waits for the thread it wakes. glibc's condition variables
   can (pthread_cond_broadcast waits for the waiters an earlier broadcast woke to leave the old
   group), so a worker the OS had not run again, or one held in a signal handler inside
   pthread_cond_wait, stalled the caller's next broadcast: test_threads.c's held worker hung 1
   run in 20 that way. Elsewhere, condition variables, and a job's wake-up only tries the lock
   (a worker holding mu is about to test the generation under it, or has just woken; one that
   sleeps through a job took nothing of it, and nobody waits for it). The caller sleeps only to
   wait for a chunk another thread has claimed. */
#ifdef __linux__
static atomic_int vit_wake_seq; /* bumped by every publish: what sleeping workers wait on */

static void vit_futex(atomic_int *word, int op, int value) {
  (void)syscall(SYS_futex, (int *)word, op, value, NULL, NULL, 0);
}

static void vit_sleep_until_job(uint32_t seen) {
  atomic_fetch_add_explicit(&vit_sleepers, 1, memory_order_seq_cst);
  for (;;) {
    const int seq = atomic_load_explicit(&vit_wake_seq, memory_order_seq_cst);
    if (vit_gen_changed(&seen)) break;
    vit_futex(&vit_wake_seq, FUTEX_WAIT_PRIVATE, seq); /* returns at once if seq moved on */
  }
  atomic_fetch_sub_explicit(&vit_sleepers, 1, memory_order_seq_cst);
}

static void vit_wake_workers(int must_wake) {
  (void)must_wake; /* a futex wake never blocks */
  atomic_fetch_add_explicit(&vit_wake_seq, 1, memory_order_seq_cst);
  if (atomic_load_explicit(&vit_sleepers, memory_order_seq_cst) > 0)
    vit_futex(&vit_wake_seq, FUTEX_WAKE_PRIVATE, VIT_MAX_THREADS);
}

static void vit_sleep_until_done(int chunks) {
  atomic_store_explicit(&vit_caller_asleep, 1, memory_order_seq_cst);
  for (;;) {
    const int done = atomic_load_explicit(&vit_job_done, memory_order_seq_cst);
    if (done == chunks) break;
    vit_futex(&vit_job_done, FUTEX_WAIT_PRIVATE, done);
  }
  atomic_store_explicit(&vit_caller_asleep, 0, memory_order_seq_cst);
}

static void vit_wake_caller(void) { vit_futex(&vit_job_done, FUTEX_WAKE_PRIVATE, 1); }
#else
static void vit_sleep_until_job(uint32_t seen) {
  pthread_mutex_lock(&vit_pool.mu);
  atomic_fetch_add_explicit(&vit_sleepers, 1, memory_order_seq_cst);
  while (!vit_gen_changed(&seen)) pthread_cond_wait(&vit_pool.wake, &vit_pool.mu);
  atomic_fetch_sub_explicit(&vit_sleepers, 1, memory_order_seq_cst);
  pthread_mutex_unlock(&vit_pool.mu);
}

static void vit_wake_workers(int must_wake) {
  if (atomic_load_explicit(&vit_sleepers, memory_order_seq_cst) > 0) {
    if (must_wake) pthread_mutex_lock(&vit_pool.mu);
    else if (pthread_mutex_trylock(&vit_pool.mu) != 0) return;
    pthread_cond_broadcast(&vit_pool.wake);
    pthread_mutex_unlock(&vit_pool.mu);
  }
}

static void vit_sleep_until_done(int chunks) {
  pthread_mutex_lock(&vit_pool.mu);
  atomic_store_explicit(&vit_caller_asleep, 1, memory_order_seq_cst);
  while (atomic_load_explicit(&vit_job_done, memory_order_seq_cst) != chunks)
    pthread_cond_wait(&vit_pool.done, &vit_pool.mu);
  atomic_store_explicit(&vit_caller_asleep, 0, memory_order_relaxed);
  pthread_mutex_unlock(&vit_pool.mu);
}

static void vit_wake_caller(void) {
  pthread_mutex_lock(&vit_pool.mu);
  pthread_cond_signal(&vit_pool.done);
  pthread_mutex_unlock(&vit_pool.mu);
}
#endif

/* Claims and runs chunks of the job whose word is w until none are left. Returns when the
   word shows the job used up or replaced by another, with the number of chunks it ran. */
static int vit_run_chunks(uint64_t w, int thread) {
  int ran = 0;
  const uint32_t gen = VIT_WORD_GEN(w);
  const vit_task_fn fn = atomic_load_explicit(&vit_job_fn, memory_order_relaxed);
  void *const ctx = atomic_load_explicit(&vit_job_ctx, memory_order_relaxed);
  const int ntasks = atomic_load_explicit(&vit_job_ntasks, memory_order_relaxed);
  const int per = atomic_load_explicit(&vit_job_per, memory_order_relaxed);
  const int chunks = VIT_WORD_CHUNKS(w);
  vit_in_task = 1;
  while (VIT_WORD_GEN(w) == gen && VIT_WORD_NEXT(w) < chunks) {
    /* On failure w becomes the current word, maybe another job's: the loop test rechecks. */
    if (!atomic_compare_exchange_weak_explicit(&vit_job_word, &w, w + 1, memory_order_acquire,
                                               memory_order_acquire))
      continue;
    /* Claimed chunk c of the job fn .. per were read for: the word had not moved on. */
    const int c = VIT_WORD_NEXT(w);
    const int t1 = (c + 1) * per < ntasks ? (c + 1) * per : ntasks;
    for (int t = c * per; t < t1; t++) fn(ctx, t, thread);
    ran++;
    if (atomic_fetch_add_explicit(&vit_job_done, 1, memory_order_seq_cst) + 1 == chunks &&
        atomic_load_explicit(&vit_caller_asleep, memory_order_seq_cst))
      vit_wake_caller();
    w = atomic_load_explicit(&vit_job_word, memory_order_acquire);
  }
  vit_in_task = 0;
  return ran;
}


static void *vit_worker(void *arg) {
  const int id = (int)(intptr_t)arg;
  uint32_t seen = vit_worker_gen0[id]; /* so that it takes part in the job that started it */
  for (;;) {
    if (!vit_wait_briefly(vit_gen_changed, &seen, VIT_SPIN_NS)) vit_sleep_until_job(seen);
    if (atomic_load_explicit(&vit_stop, memory_order_acquire)) return NULL;
    const uint64_t w = atomic_load_explicit(&vit_job_word, memory_order_acquire);
    seen = VIT_WORD_GEN(w);
    if (id < atomic_load_explicit(&vit_job_participants, memory_order_relaxed))
      vit_run_chunks(w, id);
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
  atomic_store(&vit_pool.threads, n);
#ifdef VIT_BLAS_OPENBLAS
  openblas_set_num_threads(n); /* vit_linear_f32 is then cblas_sgemm */
#endif
}

int vit_get_threads(void) {
  int n = atomic_load(&vit_pool.threads);
  if (n == 0) {
    int unset = 0;
    n = vit_online_cores();
    if (!atomic_compare_exchange_strong(&vit_pool.threads, &unset, n)) n = unset; /* set meanwhile */
  }
  return n;
}

/* Publishes a new generation with `chunks` chunks (0 for a stop) and wakes sleeping workers.
   Only the caller of vit_parallel_for or vit_join_threads writes the word this way, and only
   when the old job is used up. */
static void vit_publish(int chunks, int must_wake) {
  const uint64_t old = atomic_load_explicit(&vit_job_word, memory_order_relaxed);
  const uint64_t gen = (VIT_WORD_GEN(old) + 1) & ((1u << 24) - 1);
  atomic_store_explicit(&vit_job_word, gen << VIT_GEN_SHIFT | (uint64_t)chunks << VIT_CHUNK_BITS,
                        memory_order_seq_cst);
  vit_wake_workers(must_wake);
}

static int vit_all_done(const void *arg) {
  return atomic_load_explicit(&vit_job_done, memory_order_acquire) == *(const int *)arg;
}

void vit_parallel_for(vit_task_fn fn, void *ctx, int ntasks, int threads) {
  const int limit = vit_get_threads();
  if (threads > limit) threads = limit;
  if (threads > ntasks) threads = ntasks;
  if (threads <= 1 || vit_in_task) { /* serial, also when called from inside a task */
    for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
    return;
  }
  if (atomic_load(&vit_pool.started) < threads - 1) { /* the first calls only: start workers */
    pthread_mutex_lock(&vit_pool.mu);
    while (atomic_load(&vit_pool.started) < threads - 1) {
      const int id = atomic_load(&vit_pool.started) + 1;
      vit_worker_gen0[id] = VIT_WORD_GEN(atomic_load_explicit(&vit_job_word, memory_order_relaxed));
      if (pthread_create(&vit_workers[id], NULL, vit_worker, (void *)(intptr_t)id) != 0) break;
      atomic_store(&vit_pool.started, id);
    }
    pthread_mutex_unlock(&vit_pool.mu);
  }
  if (threads > atomic_load(&vit_pool.started) + 1) threads = atomic_load(&vit_pool.started) + 1;
  if (threads <= 1) {
    for (int t = 0; t < ntasks; t++) fn(ctx, t, 0);
    return;
  }
  /* One task per chunk, unless there are more tasks than the word can count. */
  const int per = ntasks <= VIT_MAX_CHUNKS ? 1 : (ntasks + VIT_MAX_CHUNKS - 1) / VIT_MAX_CHUNKS;
  const int chunks = (ntasks + per - 1) / per;
  atomic_store_explicit(&vit_job_fn, fn, memory_order_relaxed);
  atomic_store_explicit(&vit_job_ctx, ctx, memory_order_relaxed);
  atomic_store_explicit(&vit_job_ntasks, ntasks, memory_order_relaxed);
  atomic_store_explicit(&vit_job_per, per, memory_order_relaxed);
  atomic_store_explicit(&vit_job_participants, threads, memory_order_relaxed);
  atomic_store_explicit(&vit_job_done, 0, memory_order_relaxed);
  vit_publish(chunks, 0);

  const int64_t t0 = vit_now_ns();
  const int ran = vit_run_chunks(atomic_load_explicit(&vit_job_word, memory_order_acquire), 0);

  /* Every chunk is claimed now; wait for those others are still running. A thread that is
     running finishes its chunk within about one chunk's time, so spin for up to twice the
     caller's own mean chunk time (at least VIT_SPIN_NS, at most VIT_SPIN_MAX_NS) before
     giving way: longer means the thread holding it is not running. */
  if (vit_all_done(&chunks)) return;
  int64_t spin = ran > 0 ? 2 * (vit_now_ns() - t0) / ran : 0;
  spin = spin < VIT_SPIN_NS ? VIT_SPIN_NS : spin > VIT_SPIN_MAX_NS ? VIT_SPIN_MAX_NS : spin;
  if (vit_wait_briefly(vit_all_done, &chunks, spin)) return;
  vit_sleep_until_done(chunks);
}

/* Stops and joins every worker (a new generation with the stop flag set wakes them all), so
   that a program can end with no thread running and nothing of the pool allocated. Not
   during a vit_parallel_for. The next vit_parallel_for that wants threads starts new workers. */
void vit_join_threads(void) {
  const int started = atomic_load(&vit_pool.started);
  atomic_store_explicit(&vit_stop, 1, memory_order_seq_cst);
  vit_publish(0, 1);
  for (int id = 1; id <= started; id++) pthread_join(vit_workers[id], NULL);
  atomic_store(&vit_pool.started, 0);
  atomic_store_explicit(&vit_stop, 0, memory_order_seq_cst);
}

#endif /* VIT_NO_THREADS */
