/*
 * vecmath_accuracy.c: max error of the runtime's vector exp and erf (-DVIT_VECTOR_MATH), in
 * ulps of the correctly rounded float result, over every float in a range (exhaustive), against
 * double-precision libm; and the same for libm's expf/erff for comparison.
 *
 *   cc -std=c11 -O2 -march=x86-64-v4 -DVIT_VECTOR_MATH bench/runtime/vecmath_accuracy.c -lm \
 *      && ./a.out
 * (vit_vexp and vit_verf are inline in Runtime/src/vit_simd.h)
 */
#include "../../Runtime/src/vit_simd.h"

#include <float.h>
#include <stdio.h>

static double ulps(float got, double want) {
  const float r = (float)want;
  const double ulp = r == 0 ? FLT_TRUE_MIN : (double)nextafterf(fabsf(r), INFINITY) - fabsf(r);
  return fabs((double)got - want) / ulp;
}

static float from_bits(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

/* every float from lo to hi (same sign), through fn in chunks of VIT_VLEN */
#define SWEEP(name, lo, hi, vec, ref, lib)                                                       \
  do {                                                                                         \
    double worst = 0, worst_lib = 0;                                                           \
    float at = 0, at_lib = 0;                                                                  \
    uint32_t b0, b1;                                                                           \
    float lo_ = (lo), hi_ = (hi);                                                              \
    memcpy(&b0, &lo_, 4);                                                                      \
    memcpy(&b1, &hi_, 4);                                                                      \
    if (b0 > b1) { uint32_t t_ = b0; b0 = b1; b1 = t_; }                                       \
    float in[VIT_VLEN], out[VIT_VLEN];                                                         \
    for (uint64_t b = b0; b <= b1; b += VIT_VLEN) {                                            \
      for (int i = 0; i < VIT_VLEN; i++) in[i] = from_bits((uint32_t)(b + i <= b1 ? b + i : b1)); \
      VF_STORE(out, vec(VF_LOAD(in)));                                                         \
      for (int i = 0; i < VIT_VLEN; i++) {                                                     \
        const double want = ref((double)in[i]);                                                \
        const double e = ulps(out[i], want), el = ulps(lib(in[i]), want);                      \
        if (e > worst) { worst = e; at = in[i]; }                                              \
        if (el > worst_lib) { worst_lib = el; at_lib = in[i]; }                                \
      }                                                                                        \
    }                                                                                          \
    printf("%-5s [%g, %g]: vector %.3f ulp (at %a), libm %.3f ulp (at %a)\n", name, (double)(lo), \
           (double)(hi), worst, (double)at, worst_lib, (double)at_lib);                        \
  } while (0)

int main(void) {
  printf("gemm=%s\n", VIT_KERNEL_NAME);
  SWEEP("exp", -87.3f, -0.0f, vit_vexp, exp, expf);
  SWEEP("exp", 0.0f, 88.0f, vit_vexp, exp, expf);
  SWEEP("erf", 0.0f, 5.0f, vit_verf, erf, erff);
  SWEEP("erf", -0.0f, -5.0f, vit_verf, erf, erff);
  return 0;
}
