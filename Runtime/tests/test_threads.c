/*
 * test_threads.c: the thread pool (src/vit_threads.c) on its own, built by run_tests.sh
 * plainly and under ThreadSanitizer (gcc -fsanitize=thread):
 *   cc -std=c11 -O2 -Wall -Wextra -Werror -IRuntime/include Runtime/tests/test_threads.c \
 *      Runtime/src/vit_threads.c -lpthread
 * - stress: thousands of jobs of random sizes and thread counts, one after the other; every
 *   task runs exactly once and only on a thread id below the job's thread count, with thread
 *   counts changed and the pool joined and restarted along the way;
 * - more tasks than the pool's claim word counts (tasks grouped into chunks);
 * - a call from inside a task runs serially, on the calling thread;
 * - a worker that cannot run (held in a signal handler) costs the caller nothing: the job
 *   finishes on the caller alone. The old pool waited for every worker and hung here; an
 *   alarm ends a hung run, so a regression fails instead of blocking the suite (the check is
 *   that the job finishes at all, not how fast).
 * Prints one line per failure and "N passed, N failed" last; exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <time.h>

#include "vit_threads.h"

static int passed, failed;
static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...) {
  if (ok) {
    passed++;
    return;
  }
  failed++;
  va_list ap;
  va_start(ap, fmt);
  printf("FAIL ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

#ifndef VIT_NO_THREADS
#include <pthread.h>
#endif

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static unsigned rnd(unsigned n) { /* uniform enough in [0, n) */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (unsigned)((rng_state >> 33) % n);
}

/* ---- every task once, on an allowed thread ---------------------------------------------- */

#define MAX_TASKS 512
struct job {
  atomic_int runs[MAX_TASKS];
  atomic_int bad_thread;
  int threads;     /* thread ids must stay below this */
  int work;        /* busy-loop length per task */
  atomic_int sink; /* keeps the busy loop */
};

static void count_task(void *ctx, int task, int thread) {
  struct job *j = ctx;
  atomic_fetch_add_explicit(&j->runs[task], 1, memory_order_relaxed);
  if (thread < 0 || thread >= j->threads) atomic_store(&j->bad_thread, 1);
  int acc = 0;
  for (int i = 0; i < j->work; i++) acc += i ^ task;
  atomic_fetch_add_explicit(&j->sink, acc, memory_order_relaxed);
}

static void test_stress(int jobs) {
  static struct job j;
  int once = 1, allowed = 1;
  for (int r = 0; r < jobs; r++) {
    if (r % 997 == 0) vit_set_threads((int)rnd(5)); /* 0 = all cores */
    if (r % 1499 == 1498) vit_join_threads();       /* the next job starts them again */
    const int ntasks = (int)rnd(MAX_TASKS + 1);
    const int threads = 1 + (int)rnd(6);
    for (int t = 0; t < MAX_TASKS; t++) atomic_init(&j.runs[t], 0);
    atomic_init(&j.bad_thread, 0);
    /* The pool never uses more than vit_get_threads() threads, nor more than asked. */
    const int limit = vit_get_threads();
    j.threads = threads < limit ? threads : limit;
    j.work = (int)rnd(4) == 0 ? (int)rnd(20000) : 0;
    vit_parallel_for(count_task, &j, ntasks, threads);
    for (int t = 0; t < MAX_TASKS; t++)
      if (atomic_load(&j.runs[t]) != (t < ntasks ? 1 : 0)) once = 0;
    if (atomic_load(&j.bad_thread)) allowed = 0;
  }
  check(once, "stress: %d jobs, every task run exactly once", jobs);
  check(allowed, "stress: %d jobs, thread ids below the job's thread count", jobs);
  vit_set_threads(1);
}

/* ---- more tasks than one claim word counts ---------------------------------------------- */

static atomic_uint_fast64_t big_sum;
static atomic_int big_bad_thread;
static void big_task(void *ctx, int task, int thread) {
  (void)ctx;
  atomic_fetch_add_explicit(&big_sum, (uint64_t)task + 1, memory_order_relaxed);
  if (thread < 0 || thread >= 2) atomic_store(&big_bad_thread, 1);
}

static void test_many_tasks(void) {
  const int n = (1 << 20) + 12345; /* above the 2^20 - 1 chunks the word holds */
  vit_set_threads(2);
  atomic_init(&big_sum, 0);
  atomic_init(&big_bad_thread, 0);
  vit_parallel_for(big_task, NULL, n, 2);
  const uint64_t want = (uint64_t)n * (uint64_t)(n + 1) / 2; /* each task once: sum of t + 1 */
  check(atomic_load(&big_sum) == want && !atomic_load(&big_bad_thread),
        "%d tasks: each run once (sum %llu, want %llu)", n, (unsigned long long)atomic_load(&big_sum),
        (unsigned long long)want);
  vit_set_threads(1);
}

/* ---- nesting ---------------------------------------------------------------------------- */

static atomic_int nested_off_thread, nested_runs;
static void inner_task(void *ctx, int task, int thread) {
  (void)task;
  if (thread != *(int *)ctx) atomic_store(&nested_off_thread, 1);
  atomic_fetch_add(&nested_runs, 1);
}
static void outer_task(void *ctx, int task, int thread) {
  (void)ctx;
  (void)task;
  int me = 0; /* a nested call runs serially: its tasks see thread 0 */
  vit_parallel_for(inner_task, &me, 7, 4);
  (void)thread;
}

static void test_nesting(void) {
  vit_set_threads(4);
  atomic_init(&nested_off_thread, 0);
  atomic_init(&nested_runs, 0);
  vit_parallel_for(outer_task, NULL, 9, 4);
  check(atomic_load(&nested_runs) == 63 && !atomic_load(&nested_off_thread),
        "a call from inside a task runs serially (%d inner tasks of 63)", atomic_load(&nested_runs));
  vit_set_threads(1);
}

/* ---- a worker that cannot run ------------------------------------------------------------ */

#ifndef VIT_NO_THREADS
static int hold_pipe[2];
static atomic_int held;
static void hold_handler(int sig) { /* keeps the interrupted worker here until released */
  (void)sig;
  atomic_store(&held, 1);
  char c;
  while (read(hold_pipe[0], &c, 1) < 0) {
  }
}

static pthread_t worker_id;
static atomic_int seen_worker;
static void find_worker(void *ctx, int task, int thread) {
  (void)ctx;
  (void)task;
  if (thread == 1 && !atomic_exchange(&seen_worker, 1)) worker_id = pthread_self();
  for (volatile int i = 0; i < 20000; i++) {
  }
}

static atomic_int held_runs, held_off_caller;
static void caller_only_task(void *ctx, int task, int thread) {
  (void)ctx;
  (void)task;
  if (thread != 0) atomic_store(&held_off_caller, 1);
  atomic_fetch_add(&held_runs, 1);
}

static void test_held_worker(void) {
  vit_set_threads(2);
  atomic_init(&seen_worker, 0);
  /* Run jobs until worker 1 has taken a task, to learn which thread it is. */
  for (int r = 0; r < 100000 && !atomic_load(&seen_worker); r++)
    vit_parallel_for(find_worker, NULL, 64, 2);
  if (!atomic_load(&seen_worker)) {
    check(0, "held worker: worker 1 never took a task in 100000 jobs");
    return;
  }
  if (pipe(hold_pipe) != 0) {
    check(0, "held worker: pipe");
    return;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = hold_handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  atomic_init(&held, 0);
  pthread_kill(worker_id, SIGUSR1);
  while (!atomic_load(&held)) nanosleep(&(struct timespec){0, 100000}, NULL);
  /* The worker is in the handler and can claim nothing: 200 jobs must finish on the caller. */
  alarm(60); /* a hang guard, not a time limit on the pool: the default action ends the run */
  atomic_init(&held_runs, 0);
  atomic_init(&held_off_caller, 0);
  for (int r = 0; r < 200; r++) vit_parallel_for(caller_only_task, NULL, 16, 2);
  alarm(0);
  check(atomic_load(&held_runs) == 200 * 16 && !atomic_load(&held_off_caller),
        "held worker: 200 jobs finish on the caller alone (%d tasks of 3200)", atomic_load(&held_runs));
  if (write(hold_pipe[1], "x", 1) != 1) check(0, "held worker: release");
  /* Released, it takes part again. */
  atomic_init(&seen_worker, 0);
  for (int r = 0; r < 100000 && !atomic_load(&seen_worker); r++)
    vit_parallel_for(find_worker, NULL, 64, 2);
  check(atomic_load(&seen_worker), "held worker: released, worker 1 takes tasks again");
  vit_set_threads(1);
}
#endif

int main(int argc, char **argv) {
  const int jobs = argc > 1 ? atoi(argv[1]) : 5000;
  test_stress(jobs);
  test_many_tasks();
  test_nesting();
#ifndef VIT_NO_THREADS
  test_held_worker();
#endif
  vit_join_threads();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
