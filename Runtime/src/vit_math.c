/*
 * vit_math.c: layer 2 of the runtime, softmax and GELU over arrays. It uses only the inline
 * vector code of vit_simd.h (layer 0); no other file of the runtime.
 *
 * Two softmaxes with different contracts: vit_softmax_f32 is the emitted softmax op, loop for
 * loop (serial max and sum, libm's expf in every build), and vit_softmax_row_f32 is attention's
 * fused scale + bias + softmax, vectorised (lane-wise max and sum, the vector exp with
 * -DVIT_VECTOR_MATH).
 */
#include "vit_math.h"

#include <math.h>
#include <string.h>

#include "vit_simd.h"

/* ---- GELU ------------------------------------------------------------------------------- */

#ifdef VIT_VECTOR_MATH

void vit_gelu_f32(const float *x, size_t count, float *y) {
  size_t i = 0;
  for (; i + VIT_VLEN <= count; i += VIT_VLEN) VF_STORE(y + i, vit_vgelu(VF_LOAD(x + i)));
  if (i < count) { /* the tail through a padded buffer, so every element takes the same path */
    float t[VIT_VLEN] = {0};
    memcpy(t, x + i, (count - i) * sizeof(float));
    vit_gelu_row(t, VIT_VLEN);
    memcpy(y + i, t, (count - i) * sizeof(float));
  }
}

#else /* libm */

void vit_gelu_f32(const float *x, size_t count, float *y) {
  for (size_t i = 0; i < count; i++) y[i] = vit_gelu1(x[i]);
}

#endif

/* ---- softmax ---------------------------------------------------------------------------- */

void vit_softmax_f32(const float *x, int rows, int c, float *y) {
  if (c <= 0) return;
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * c;
    float *yr = y + (size_t)r * c;
    float max = xr[0], sum = 0.0f;
    for (int i = 1; i < c; i++) max = xr[i] > max ? xr[i] : max;
    for (int i = 0; i < c; i++) {
      yr[i] = expf(xr[i] - max);
      sum += yr[i];
    }
    for (int i = 0; i < c; i++) yr[i] /= sum;
  }
}

#ifdef VIT_VECTOR_MATH

void vit_softmax_row_f32(float *s, int n, float scale, const float *key_bias) {
  if (n <= 0) return;
  float pad[VIT_VLEN]; /* the tail, padded with -inf: exp gives 0 there */
  const int body = n / VIT_VLEN * VIT_VLEN, tail = n - body;
  vit_vf vmax = VF_SET1(-INFINITY);
  int j = 0;
  for (; j < body; j += VIT_VLEN) {
    vit_vf v = VF_MUL(VF_LOAD(s + j), VF_SET1(scale));
    if (key_bias) v = VF_ADD(v, VF_LOAD(key_bias + j));
    VF_STORE(s + j, v);
    vmax = VF_MAX(vmax, v);
  }
  if (tail) {
    for (int i = 0; i < VIT_VLEN; i++) {
      float v = -INFINITY;
      if (i < tail) {
        v = s[body + i] * scale;
        if (key_bias) v += key_bias[body + i];
      }
      pad[i] = v;
    }
    vmax = VF_MAX(vmax, VF_LOAD(pad));
  }
  const vit_vf max = VF_SET1(VF_HMAX(vmax));
  vit_vf vsum = VF_ZERO();
  for (j = 0; j < body; j += VIT_VLEN) {
    const vit_vf e = vit_vexp(VF_SUB(VF_LOAD(s + j), max));
    VF_STORE(s + j, e);
    vsum = VF_ADD(vsum, e);
  }
  if (tail) {
    const vit_vf e = vit_vexp(VF_SUB(VF_LOAD(pad), max));
    VF_STORE(pad, e);
    vsum = VF_ADD(vsum, e);
  }
  const vit_vf sum = VF_SET1(VF_HSUM(vsum));
  for (j = 0; j < body; j += VIT_VLEN) VF_STORE(s + j, VF_DIV(VF_LOAD(s + j), sum));
  if (tail) {
    VF_STORE(pad, VF_DIV(VF_LOAD(pad), sum));
    memcpy(s + body, pad, (size_t)tail * sizeof(float));
  }
}

#else /* libm expf; max and sum over four lanes in a fixed order */

void vit_softmax_row_f32(float *s, int n, float scale, const float *key_bias) {
  if (n <= 0) return;
  for (int j = 0; j < n; j++) {
    float t = s[j] * scale;
    if (key_bias) t += key_bias[j];
    s[j] = t;
  }
  float m0 = s[0], m1 = s[0], m2 = s[0], m3 = s[0];
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    m0 = s[j] > m0 ? s[j] : m0;
    m1 = s[j + 1] > m1 ? s[j + 1] : m1;
    m2 = s[j + 2] > m2 ? s[j + 2] : m2;
    m3 = s[j + 3] > m3 ? s[j + 3] : m3;
  }
  for (; j < n; j++) m0 = s[j] > m0 ? s[j] : m0;
  m0 = m1 > m0 ? m1 : m0;
  m2 = m3 > m2 ? m3 : m2;
  const float max = m2 > m0 ? m2 : m0;
  float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (j = 0; j + 4 <= n; j += 4) {
    s[j] = expf(s[j] - max);
    s[j + 1] = expf(s[j + 1] - max);
    s[j + 2] = expf(s[j + 2] - max);
    s[j + 3] = expf(s[j + 3] - max);
    a0 += s[j];
    a1 += s[j + 1];
    a2 += s[j + 2];
    a3 += s[j + 3];
  }
  for (; j < n; j++) {
    s[j] = expf(s[j] - max);
    a0 += s[j];
  }
  const float sum = (a0 + a1) + (a2 + a3);
  for (j = 0; j < n; j++) s[j] = s[j] / sum;
}

#endif
