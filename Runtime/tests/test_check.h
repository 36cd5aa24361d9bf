/* test_check.h: what both kernel harnesses share (test_kernels.c, test_prune.c): pass/fail
   counting (each prints "FAIL …" for a failed check and ends with "N passed, N failed") and
   float buffers with a guard tail, to catch writes past the end. */
#ifndef VIT_TEST_CHECK_H
#define VIT_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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

#define GUARD 64
static const float guard_value = -12345.678f;

static float *guarded(size_t count) {
  float *a = malloc((count + GUARD) * sizeof(float));
  for (size_t i = 0; i < count + GUARD; i++) a[i] = guard_value;
  return a;
}

static int guard_intact(const float *a, size_t count) {
  for (size_t i = count; i < count + GUARD; i++)
    if (a[i] != guard_value) return 0;
  return 1;
}

#endif
