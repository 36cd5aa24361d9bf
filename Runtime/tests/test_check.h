/* test_check.h: the pass/fail counting both kernel harnesses share (test_kernels.c,
   test_prune.c). Each prints "FAIL …" for a failed check and ends with "N passed, N failed". */
#ifndef VIT_TEST_CHECK_H
#define VIT_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>

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

#endif
