/*
 * vit_runtime.h: the kernels that vitc's emitted model code calls, one header for all the
 * runtime's layers (the token-pruning kernels are in vit_prune.h).
 *
 * C11, libc + libm (+ pthreads unless built with -DVIT_NO_THREADS). No kernel allocates memory
 * or prints: every buffer is passed in by the caller (the emitted code's static arena and scratch).
 *
 * The runtime is in layers, each file using only the layers below it (Runtime/README.md):
 *   vit_threads.h    src/vit_threads.c    the thread pool: vit_set_threads, vit_parallel_for
 *   vit_math.h       src/vit_math.c       softmax and GELU over arrays
 *   vit_gemm.h       src/vit_gemm.c       vit_linear_f32 on packed weights, packing
 *   vit_qgemm.h      src/vit_qgemm.c      vit_linear_s8: int8 weights and activations
 *   vit_attention.h  src/vit_attention.c  vit_attention_f32, vit_layernorm_f32
 * (src/vit_simd.h, below them all, is the inline vector code of math and GEMM.)
 *
 * Shapes are written [rows][cols]; every matrix is row-major and densely packed unless a
 * row stride ("ld...") says otherwise.
 */
#ifndef VIT_RUNTIME_H
#define VIT_RUNTIME_H

#include "vit_threads.h"
#include "vit_math.h"
#include "vit_gemm.h"
#include "vit_qgemm.h"
#include "vit_attention.h"

#endif /* VIT_RUNTIME_H */
