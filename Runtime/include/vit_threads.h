/*
 * vit_threads.h: layer 1 of the runtime, the thread pool (src/vit_threads.c). It uses no other
 * layer; vit_gemm.c and vit_attention.c run their tasks on it. See Runtime/README.md.
 */
#ifndef VIT_THREADS_H
#define VIT_THREADS_H

#ifdef __cplusplus
extern "C" {
#endif

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

/* Runs fn(ctx, task, thread) for task = 0 .. ntasks-1 on up to `threads` pool threads
   (0 <= thread < threads; the caller is thread 0), and returns when all are done. Tasks are
   handed out dynamically, so a task's work must not depend on which thread runs it. The
   caller runs tasks too and waits only for tasks another thread has taken: a worker that is
   not running when the call starts may take none. A call from inside a task runs serially. */
typedef void (*vit_task_fn)(void *ctx, int task, int thread);
void vit_parallel_for(vit_task_fn fn, void *ctx, int ntasks, int threads);

/* Stops the pool's workers and joins them (none running, none allocated afterwards; a later
   vit_parallel_for starts them again). The driver (main/main.c) calls it before it exits, so
   that a leak checker sees no thread stacks. Not from inside vit_parallel_for. */
void vit_join_threads(void);

#ifdef __cplusplus
}
#endif

#endif /* VIT_THREADS_H */
