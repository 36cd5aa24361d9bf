/*
 * test_prune.c: every token-pruning kernel of vit_prune.c against a naive double-precision
 * reference written here (plain loops, O(m^2) selection sorts), on odd sizes and on the edge
 * cases of each method (k = 1, k = all, nothing above the threshold, exactly one above, tied
 * scores, duplicate rows, BAT with M = 0 / M < 5 / n_c = M / n_p = k/2, ToMe with
 * r = (n-1)/2), plus the owner/trace invariants and an owner_in == owner_out run of every
 * rewriting kernel. Compiled like emitted code (see run_tests.sh):
 *   cc -std=c11 -O2 -Wall -Wextra -Werror -IRuntime/include \
 *      Runtime/tests/test_prune.c Runtime/src/vit_prune.c -lm
 * Prints one line per failure and "N passed, N failed" last; exits 1 on any failure.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vit_prune.h"

#include "test_check.h"

/* ---- data ------------------------------------------------------------------------------- */

#ifndef TEST_SEED /* -DTEST_SEED=... reruns everything on other data */
#define TEST_SEED 0x243f6a8885a308d3ull
#endif
static uint64_t rng_state = TEST_SEED;

static uint32_t urand(void) { /* xorshift64, seeded, reproducible */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 32);
}

static float frand(float lo, float hi) {
  return lo + (hi - lo) * (float)((urand() >> 8) * (1.0 / 16777216.0));
}

static int irand(int n) { return (int)(urand() % (uint32_t)n); } /* 0 .. n-1 */

static float *rand_array(size_t count, float lo, float hi) {
  float *a = malloc((count ? count : 1) * sizeof(float));
  for (size_t i = 0; i < count; i++) a[i] = frand(lo, hi);
  return a;
}

static void *xmalloc(size_t bytes) { return calloc(bytes ? bytes : 1, 1); } /* zeroed */

/* Int buffers with a guard tail, like guarded() of test_check.h. */
static const int iguard_value = -777777;

static int *iguarded(size_t count) {
  int *a = malloc((count + GUARD) * sizeof(int));
  for (size_t i = 0; i < count + GUARD; i++) a[i] = iguard_value;
  return a;
}

static int iguard_intact(const int *a, size_t count) {
  for (size_t i = count; i < count + GUARD; i++)
    if (a[i] != iguard_value) return 0;
  return 1;
}

/* |got - ref| <= rel |ref| + abs (tiny probabilities are float subnormals: abs >= an ulp) */
static int close_to(double got, double ref, double rel, double abs_tol) {
  return fabs(got - ref) <= rel * fabs(ref) + abs_tol;
}

/* ---- naive references -------------------------------------------------------------------- */

/* The full order "descending value, equal values by ascending index", by selection sort. */
static void ref_order(const double *v, int m, int *order) {
  int *used = calloc((size_t)(m ? m : 1), sizeof(int));
  for (int pos = 0; pos < m; pos++) {
    int best = -1;
    for (int j = 0; j < m; j++) {
      if (used[j]) continue;
      if (best < 0 || v[j] > v[best]) best = j; /* equal: keep the lower j */
    }
    used[best] = 1;
    order[pos] = best;
  }
  free(used);
}

static double ref_norm(const float *a, int len) {
  double s = 0;
  for (int j = 0; j < len; j++) s += (double)a[j] * (double)a[j];
  return sqrt(s);
}

/* a·b / sqrt((a·a)(b·b)) (the header's form: identical rows give exactly 1), 0 for a zero row */
static double ref_cos(const float *a, const float *b, int len) {
  double dot = 0, aa = 0, bb = 0;
  for (int j = 0; j < len; j++) {
    dot += (double)a[j] * (double)b[j];
    aa += (double)a[j] * (double)a[j];
    bb += (double)b[j] * (double)b[j];
  }
  if (aa == 0 || bb == 0) return 0;
  return dot / sqrt(aa * bb);
}

/* cls-query softmax of head h in double: p [n] */
static void ref_cls_softmax(const float *qkv, int n, int heads, int d, int h, double scale,
                            double *p) {
  const int C = heads * d;
  double mx = -INFINITY, sum = 0;
  for (int t = 0; t < n; t++) {
    double dot = 0;
    for (int j = 0; j < d; j++)
      dot += (double)qkv[h * d + j] * (double)qkv[(size_t)t * 3 * C + C + h * d + j];
    p[t] = dot * scale;
    if (p[t] > mx) mx = p[t];
  }
  for (int t = 0; t < n; t++) sum += exp(p[t] - mx);
  for (int t = 0; t < n; t++) p[t] = exp(p[t] - mx) / sum;
}

/* A previous stage's owner array: each patch on a random row 1 .. n-1, or dropped. */
static void rand_owner(int *owner, int patches, int n) {
  for (int p = 0; p < patches; p++) owner[p] = (n < 2 || irand(5) == 0) ? -1 : 1 + irand(n - 1);
}

/* Owner rows in 1 .. rows-1 or -1; the trace partitions exactly the non-dropped patches, each
   token's members ascending and all owned by it. With `no_drop`, every patch is owned. */
static void check_owner(const char *what, const int *owner, int patches, int rows, int no_drop) {
  int bad = 0, dropped = 0;
  for (int p = 0; p < patches; p++) {
    if (owner[p] == -1) {
      dropped++;
      continue;
    }
    if (owner[p] < 1 || owner[p] >= rows) bad++;
  }
  check(bad == 0, "%s: %d owners outside 1..%d", what, bad, rows - 1);
  if (no_drop) check(dropped == 0, "%s: %d patches dropped", what, dropped);
  int16_t *first = malloc(((size_t)rows + 1) * sizeof(int16_t));
  int16_t *members = malloc(((size_t)patches + 1) * sizeof(int16_t));
  int *seen = calloc((size_t)patches + 1, sizeof(int));
  vit_trace_stage(owner, patches, rows, first, members);
  int ok = first[0] == 0 && first[rows - 1] == patches - dropped;
  for (int t = 1; t < rows && ok; t++) {
    if (first[t] < first[t - 1]) ok = 0;
    for (int q = first[t - 1]; q < first[t] && ok; q++) {
      const int p = members[q];
      if (p < 0 || p >= patches || owner[p] != t || seen[p]) ok = 0;
      else seen[p] = 1;
      if (q > first[t - 1] && members[q - 1] >= p) ok = 0;
    }
  }
  check(ok, "%s: trace members do not partition the kept patches", what);
  free(first);
  free(members);
  free(seen);
}

/* ---- scores ----------------------------------------------------------------------------- */

static const int score_ns[] = {2, 3, 17, 197};
static const int head_cfg[][2] = {{1, 64}, {5, 8}, {6, 64}, {3, 13}}; /* C = 64, 40, 384, 39 */

static void test_cls_attention(void) {
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 4; b++)
      for (int big = 0; big < 2; big++)
        for (int off = 0; off < 2; off++) {
          const int n = score_ns[a], heads = head_cfg[b][0], d = head_cfg[b][1], C = heads * d;
          const float mag = big ? 6.0f : 1.0f, scale = (float)(1.0 / sqrt((double)d));
          float *qkv = rand_array((size_t)n * 3 * C, -mag, mag);
          const size_t ss = VIT_CLS_ATTENTION_SCRATCH_FLOATS(n);
          float *scratch = guarded(ss + 1), *s = guarded((size_t)n - 1);
          vit_cls_attention_f32(qkv, n, heads, d, scale, scratch + off, s);
          double *p = malloc((size_t)n * sizeof(double)), *acc = calloc((size_t)n, sizeof(double));
          for (int h = 0; h < heads; h++) {
            ref_cls_softmax(qkv, n, heads, d, h, scale, p);
            for (int t = 0; t < n; t++) acc[t] += p[t];
          }
          int bad = 0;
          for (int j = 0; j < n - 1; j++)
            if (!close_to(s[j], acc[1 + j] / heads, 1e-6, 2 * FLT_TRUE_MIN)) bad++;
          check(bad == 0, "cls_attention n=%d heads=%d d=%d mag=%g: %d wrong", n, heads, d, mag,
                bad);
          check(guard_intact(s, (size_t)n - 1) && guard_intact(scratch + off, ss) &&
                    (off == 0 || scratch[0] == guard_value),
                "cls_attention n=%d: wrote past a buffer", n);
          free(qkv), free(scratch), free(s), free(p), free(acc);
        }
}

static void test_asvit_scores(void) {
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 4; b++)
      for (int off = 0; off < 2; off++) {
        const int n = score_ns[a], heads = head_cfg[b][0], d = head_cfg[b][1], C = heads * d;
        const float scale = (float)(1.0 / sqrt((double)d));
        float *qkv = rand_array((size_t)n * 3 * C, -2, 2);
        float *ctx = rand_array((size_t)n * C, -1, 1);
        if (n > 2) memset(ctx + (size_t)1 * C, 0, (size_t)C * sizeof(float)); /* imp = 0 */
        if (n > 3) memset(ctx + (size_t)2 * C, 0, (size_t)d * sizeof(float)); /* head 0 only */
        const size_t ss = VIT_ASVIT_SCORES_SCRATCH_FLOATS(n, heads);
        float *scratch = guarded(ss + 1), *s = guarded((size_t)n - 1);
        vit_asvit_scores_f32(qkv, ctx, n, heads, d, scale, scratch + off, s);
        double *A = malloc((size_t)heads * n * sizeof(double));
        for (int h = 0; h < heads; h++)
          ref_cls_softmax(qkv, n, heads, d, h, scale, A + (size_t)h * n);
        int bad = 0;
        for (int j = 0; j < n - 1; j++) {
          const int t = 1 + j;
          double total = 0, ref = 0;
          for (int h = 0; h < heads; h++) total += ref_norm(ctx + (size_t)t * C + h * d, d);
          for (int h = 0; h < heads; h++)
            ref += A[(size_t)h * n + t] * ref_norm(ctx + (size_t)t * C + h * d, d) / (total + 1e-8);
          if (!close_to(s[j], ref, 1e-6, 2 * FLT_TRUE_MIN)) bad++;
        }
        check(bad == 0, "asvit_scores n=%d heads=%d d=%d: %d wrong", n, heads, d, bad);
        check(guard_intact(s, (size_t)n - 1) && guard_intact(scratch + off, ss) &&
                  (off == 0 || scratch[0] == guard_value),
              "asvit_scores n=%d: wrote past a buffer", n);
        free(qkv), free(ctx), free(scratch), free(s), free(A);
      }
}

static void test_dyvit_mix(void) {
  static const int ms[] = {1, 2, 3, 17, 196}, cs[] = {1, 7, 40, 64, 384};
  for (size_t a = 0; a < 5; a++)
    for (size_t b = 0; b < 5; b++) {
      const int m = ms[a], c = cs[b];
      float *u = rand_array((size_t)m * c, -3, 3), *y = guarded((size_t)m * c);
      vit_dyvit_mix_f32(u, m, c, y);
      int bad = 0;
      for (int j = 0; j < c; j++) {
        double mean = 0;
        for (int r = 0; r < m; r++) mean += u[(size_t)r * c + j];
        mean /= m;
        for (int i = 0; i < m; i++) {
          const float got = y[(size_t)i * c + j];
          if (j < c / 2 ? got != u[(size_t)i * c + j] : !close_to(got, mean, 1e-6, 1e-9)) bad++;
        }
      }
      check(bad == 0 && guard_intact(y, (size_t)m * c), "dyvit_mix m=%d c=%d: %d wrong", m, c, bad);
      free(u), free(y);
    }
}

static void test_keep_score(void) {
  static const float fixed[] = {0,   0,   100,  -100, -100, 100, 88,  88, -87,
                                -87, 1e-7f, 0, 30,  29,  800, 790, -800, -790, 3e38f, -3e38f};
  const int nf = (int)(sizeof fixed / sizeof *fixed), m = nf / 2 + 196; /* exp(800) overflows */
  float *l = malloc((size_t)2 * m * sizeof(float)), *s = guarded((size_t)m);
  memcpy(l, fixed, sizeof fixed);
  for (int i = nf; i < 2 * m; i++) l[i] = frand(-10, 10);
  vit_keep_score_f32(l, m, s);
  int bad = 0;
  for (int i = 0; i < m; i++) { /* log(e^l0 / (e^l0 + e^l1)) written with log1p */
    const double l0 = l[2 * i], l1 = l[2 * i + 1];
    const double ref = l1 <= l0 ? -log1p(exp(l1 - l0)) : (l0 - l1) - log1p(exp(l0 - l1));
    if (!close_to(s[i], ref, 1e-6, 1e-9)) bad++;
  }
  check(bad == 0 && guard_intact(s, (size_t)m), "keep_score: %d wrong", bad);
  free(l), free(s);
}

static void test_tome_metric(void) {
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 4; b++) {
      const int n = score_ns[a], heads = head_cfg[b][0], d = head_cfg[b][1], C = heads * d;
      float *qkv = rand_array((size_t)n * 3 * C, -2, 2), *metric = guarded((size_t)n * d);
      vit_tome_metric_f32(qkv, n, heads, d, metric);
      int bad = 0;
      for (int t = 0; t < n; t++)
        for (int j = 0; j < d; j++) {
          double sum = 0;
          for (int h = 0; h < heads; h++) sum += qkv[(size_t)t * 3 * C + C + h * d + j];
          if (!close_to(metric[(size_t)t * d + j], sum / heads, 1e-6, 1e-9)) bad++;
        }
      check(bad == 0 && guard_intact(metric, (size_t)n * d),
            "tome_metric n=%d heads=%d d=%d: %d wrong", n, heads, d, bad);
      free(qkv), free(metric);
    }
}

/* ---- selection -------------------------------------------------------------------------- */

/* kind 0: continuous, 1: values 0..3 (many ties), 2: all equal, 3: two levels, largest last */
static void fill_scores(float *s, int m, int kind) {
  for (int j = 0; j < m; j++) {
    switch (kind) {
    case 0: s[j] = frand(0, 1); break;
    case 1: s[j] = (float)irand(4) * 0.25f; break;
    case 2: s[j] = 0.5f; break;
    default: s[j] = j < m / 2 ? 0.1f : 0.2f; break;
    }
  }
}

static void test_topk(void) {
  static const int ms[] = {1, 2, 3, 16, 17, 196};
  for (size_t a = 0; a < 6; a++)
    for (int kind = 0; kind < 4; kind++) {
      const int m = ms[a];
      const int ks[] = {1, (m + 1) / 2, m - 1 > 0 ? m - 1 : 1, m};
      float *s = malloc((size_t)m * sizeof(float));
      double *v = malloc((size_t)m * sizeof(double));
      int *order = malloc((size_t)m * sizeof(int));
      fill_scores(s, m, kind);
      for (int j = 0; j < m; j++) v[j] = s[j];
      ref_order(v, m, order);
      for (int q = 0; q < 4; q++) {
        const int k = ks[q];
        int *idx = iguarded((size_t)k);
        vit_topk_keep_f32(s, m, k, idx);
        int bad = 0;
        for (int i = 0; i < k; i++) bad += idx[i] != order[i];
        check(bad == 0 && iguard_intact(idx, (size_t)k), "topk m=%d k=%d kind=%d: %d wrong", m, k,
              kind, bad);
        free(idx);
      }
      free(s), free(v), free(order);
    }
}

static void test_threshold(void) {
  static const int ms[] = {1, 2, 17, 196};
  for (size_t a = 0; a < 4; a++)
    for (int kind = 0; kind < 4; kind++)
      for (int which = 0; which < 5; which++) {
        const int m = ms[a];
        float *s = malloc((size_t)m * sizeof(float));
        fill_scores(s, m, kind);
        float mx = s[0], mn = s[0], second = -INFINITY;
        for (int j = 0; j < m; j++) {
          if (s[j] > mx) mx = s[j];
          if (s[j] < mn) mn = s[j];
        }
        for (int j = 0; j < m; j++)
          if (s[j] < mx && s[j] > second) second = s[j];
        float theta;
        switch (which) {
        case 0: theta = mx + 1; break;           /* none kept */
        case 1: theta = mx; break;               /* equal is not above: none kept */
        case 2: theta = second; break;           /* the maximum(s) only; one when unique */
        case 3: theta = mn - 1; break;           /* all kept */
        default: theta = s[m / 2]; break;        /* a value that occurs */
        }
        int *idx = iguarded((size_t)m);
        const int count = vit_threshold_keep_f32(s, m, theta, idx);
        int expect = 0, bad = 0;
        for (int j = 0; j < m; j++)
          if ((double)s[j] > (double)theta) bad += expect >= count || idx[expect++] != j;
        check(bad == 0 && count == expect && iguard_intact(idx, (size_t)m),
              "threshold m=%d kind=%d case=%d: count %d expected %d", m, kind, which, count,
              expect);
        if (kind == 0 && which == 2) check(count == 1, "threshold m=%d: exactly one above", m);
        if (which <= 1) check(count == 0, "threshold m=%d: none above", m);
        free(s), free(idx);
      }
}

/* ---- token rewriting -------------------------------------------------------------------- */

static const int tok_ns[] = {2, 3, 17, 197};
static const int tok_cs[] = {40, 64, 384};
#define PATCHES 196

/* Duplicate some rows (ties in every similarity and distance); all = 1: rows 1 .. n-1 equal. */
static void duplicate_rows(float *x, int n, int c, int all) {
  for (int t = 2; t < n; t += all ? 1 : 3) {
    const int from = all ? 1 : 1 + irand(t - 1);
    memcpy(x + (size_t)t * c, x + (size_t)from * c, (size_t)c * sizeof(float));
  }
}

static void test_gather(int fuse) {
  const char *name = fuse ? "gather_fuse" : "gather";
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 3; b++)
      for (int kind = 0; kind < 2; kind++) {
        const int n = tok_ns[a], c = tok_cs[b], m = n - 1;
        const int ks[] = {1, (m + 1) / 2, m};
        float *x = rand_array((size_t)n * c, -1, 1), *s = malloc((size_t)m * sizeof(float));
        double *v = malloc((size_t)m * sizeof(double));
        int *order = malloc((size_t)m * sizeof(int));
        fill_scores(s, m, kind);
        for (int j = 0; j < m; j++) v[j] = s[j];
        ref_order(v, m, order);
        for (int q = 0; q < 3; q++) {
          const int k = ks[q], rows = k + 1 + fuse;
          int *owner_in = malloc(PATCHES * sizeof(int)), *owner = iguarded(PATCHES);
          int *iscratch = iguarded((size_t)n);
          float *y = guarded((size_t)rows * c);
          rand_owner(owner_in, PATCHES, n);
          if (fuse)
            vit_gather_fuse_tokens_f32(x, n, c, order, k, s, owner_in, PATCHES, owner, iscratch, y);
          else
            vit_gather_tokens_f32(x, n, c, order, k, owner_in, PATCHES, owner, iscratch, y);
          int bad = 0;
          for (int ch = 0; ch < c; ch++) bad += y[ch] != x[ch];
          for (int i = 0; i < k; i++)
            for (int ch = 0; ch < c; ch++)
              bad += y[(size_t)(1 + i) * c + ch] != x[(size_t)(1 + order[i]) * c + ch];
          if (fuse)
            for (int ch = 0; ch < c; ch++) { /* dropped = order[k..m), summed ascending */
              double ref = 0, mag = 0;
              for (int j = 0; j < m; j++) {
                int kept = 0;
                for (int i = 0; i < k; i++) kept |= order[i] == j;
                if (kept) continue;
                ref += (double)s[j] * x[(size_t)(1 + j) * c + ch];
                mag += fabs((double)s[j] * x[(size_t)(1 + j) * c + ch]);
              }
              const float got = y[(size_t)(k + 1) * c + ch];
              bad += k == m ? got != 0.0f : !close_to(got, ref, 1e-6, 1e-12 * mag);
            }
          int bad_owner = 0;
          for (int p = 0; p < PATCHES; p++) {
            int expect = -1;
            for (int i = 0; i < k; i++)
              if (owner_in[p] == 1 + order[i]) expect = 1 + i;
            if (fuse && expect < 0 && owner_in[p] >= 1) expect = k + 1;
            bad_owner += owner[p] != expect;
          }
          check(bad == 0, "%s n=%d c=%d k=%d kind=%d: %d wrong values", name, n, c, k, kind, bad);
          check(bad_owner == 0, "%s n=%d c=%d k=%d: %d wrong owners", name, n, c, k, bad_owner);
          check(guard_intact(y, (size_t)rows * c) && iguard_intact(iscratch, (size_t)n) &&
                    iguard_intact(owner, PATCHES),
                "%s n=%d c=%d k=%d: wrote past a buffer", name, n, c, k);
          check_owner(name, owner, PATCHES, rows, 0);
          /* owner_in == owner_out */
          int *inplace = malloc(PATCHES * sizeof(int));
          memcpy(inplace, owner_in, PATCHES * sizeof(int));
          if (fuse)
            vit_gather_fuse_tokens_f32(x, n, c, order, k, s, inplace, PATCHES, inplace,
                                       iscratch, y);
          else
            vit_gather_tokens_f32(x, n, c, order, k, inplace, PATCHES, inplace, iscratch, y);
          check(memcmp(inplace, owner, PATCHES * sizeof(int)) == 0,
                "%s n=%d k=%d: in-place owner differs", name, n, k);
          free(owner_in), free(owner), free(iscratch), free(y), free(inplace);
        }
        free(x), free(s), free(v), free(order);
      }
}

/* BAT, written out step by step from the header's definition. Returns the rows; y [rows][c]. */
typedef struct {
  double sim;
  int a, b;
} pair_t;

static int pair_cmp(const void *p, const void *q) { /* sim descending, then (a, b) ascending */
  const pair_t *u = p, *v = q;
  if (u->sim != v->sim) return u->sim > v->sim ? -1 : 1;
  if (u->a != v->a) return u->a < v->a ? -1 : 1;
  return (u->b > v->b) - (u->b < v->b);
}

static int dbl_cmp(const void *p, const void *q) {
  const double u = *(const double *)p, v = *(const double *)q;
  return (u > v) - (u < v);
}

static int ref_bat(const float *x, int n, int c, const float *s, int k, int nc, int np,
                   const int *owner_in, int patches, int *owner_out, double *y) {
  const int m = n - 1 - k;
  int *order = xmalloc((size_t)n * sizeof(int)), *ina = xmalloc((size_t)n * sizeof(int));
  int *row_new = xmalloc((size_t)n * sizeof(int)), *used = calloc((size_t)n + 1, sizeof(int));
  double *v = xmalloc((size_t)n * sizeof(double));
  for (int j = 0; j < n - 1; j++) v[j] = s[j];
  ref_order(v, n - 1, order); /* order[0 .. k) attentive */
  for (int j = 0, q = 0; j < n - 1; j++) {
    int att = 0;
    for (int i = 0; i < k; i++) att |= order[i] == j;
    if (!att) ina[q++] = j;
  }
  for (int t = 0; t < n; t++) row_new[t] = -1;
  row_new[0] = 0;
  for (int ch = 0; ch < c; ch++) y[ch] = x[ch];
  int row = 1;
  /* pairs: all (a, b) sorted, then taken greedily */
  const int npairs = k * (k - 1) / 2;
  pair_t *pl = xmalloc((size_t)npairs * sizeof(pair_t));
  int cnt = 0;
  for (int a = 0; a < k; a++)
    for (int b = a + 1; b < k; b++) {
      pl[cnt].sim = ref_cos(x + (size_t)(1 + order[a]) * c, x + (size_t)(1 + order[b]) * c, c);
      pl[cnt].a = a;
      pl[cnt].b = b;
      cnt++;
    }
  qsort(pl, (size_t)npairs, sizeof(pair_t), pair_cmp);
  for (int q = 0, taken = 0; q < npairs && taken < np; q++) {
    if (used[pl[q].a] || used[pl[q].b]) continue;
    used[pl[q].a] = used[pl[q].b] = 1;
    const int ri = 1 + order[pl[q].a], rj = 1 + order[pl[q].b];
    const double si = s[ri - 1], sj = s[rj - 1];
    for (int ch = 0; ch < c; ch++)
      y[(size_t)row * c + ch] =
          (si * x[(size_t)ri * c + ch] + sj * x[(size_t)rj * c + ch]) / (si + sj + 1e-6);
    row_new[ri] = row_new[rj] = row++;
    taken++;
  }
  for (int a = 0; a < k; a++) {
    if (used[a]) continue;
    for (int ch = 0; ch < c; ch++) y[(size_t)row * c + ch] = x[(size_t)(1 + order[a]) * c + ch];
    row_new[1 + order[a]] = row++;
  }
  /* DPC-kNN */
  double *D = xmalloc((size_t)m * m * sizeof(double)), *rho = xmalloc((size_t)m * sizeof(double));
  double *delta = xmalloc((size_t)m * sizeof(double)), *gamma = xmalloc((size_t)m * sizeof(double));
  double *tmp = xmalloc((size_t)m * sizeof(double));
  int *rank = xmalloc((size_t)m * sizeof(int)), *cl = xmalloc((size_t)m * sizeof(int));
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      double sq = 0;
      for (int ch = 0; ch < c; ch++) {
        const double diff =
            (double)x[(size_t)(1 + ina[i]) * c + ch] - x[(size_t)(1 + ina[j]) * c + ch];
        sq += diff * diff;
      }
      D[(size_t)i * m + j] = sqrt(sq) / sqrt((double)c);
    }
  const int kk = m < 5 ? m : 5;
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < m; j++) tmp[j] = D[(size_t)i * m + j] * D[(size_t)i * m + j];
    qsort(tmp, (size_t)m, sizeof(double), dbl_cmp);
    double sum = 0;
    for (int q = 0; q < kk; q++) sum += tmp[q];
    rho[i] = exp(-(sum / kk));
  }
  for (int i = 0; i < m; i++) {
    double best = INFINITY, mx = 0;
    int any = 0;
    for (int j = 0; j < m; j++) {
      if (D[(size_t)i * m + j] > mx) mx = D[(size_t)i * m + j];
      if ((rho[j] > rho[i] || (rho[j] == rho[i] && j < i)) && D[(size_t)i * m + j] < best) {
        best = D[(size_t)i * m + j];
        any = 1;
      }
    }
    delta[i] = any ? best : mx;
    gamma[i] = rho[i] * delta[i];
  }
  ref_order(gamma, m, rank); /* centres: rank[0 .. nc) */
  for (int i = 0; i < m; i++) {
    cl[i] = -1;
    for (int r = 0; r < nc; r++)
      if (rank[r] == i) cl[i] = r;
    if (cl[i] >= 0) continue;
    for (int r = 0; r < nc; r++)
      if (cl[i] < 0 || D[(size_t)i * m + rank[r]] < D[(size_t)i * m + rank[cl[i]]]) cl[i] = r;
  }
  for (int r = 0; r < nc; r++, row++) {
    double wsum = 0;
    for (int i = 0; i < m; i++)
      if (cl[i] == r) wsum += s[ina[i]];
    for (int ch = 0; ch < c; ch++) {
      double acc = 0;
      for (int i = 0; i < m; i++)
        if (cl[i] == r) acc += (double)s[ina[i]] * x[(size_t)(1 + ina[i]) * c + ch];
      y[(size_t)row * c + ch] = acc / (wsum + 1e-6);
    }
    for (int i = 0; i < m; i++)
      if (cl[i] == r) row_new[1 + ina[i]] = row;
  }
  for (int p = 0; p < patches; p++) owner_out[p] = owner_in[p] < 0 ? -1 : row_new[owner_in[p]];
  free(order), free(ina), free(row_new), free(used), free(v), free(pl), free(D), free(rho);
  free(delta), free(gamma), free(tmp), free(rank), free(cl);
  return row;
}

/* scores kind as fill_scores, features: dup = 1 duplicated rows, 2 all non-cls rows equal,
   zero = one all-zero row */
static void bat_case(int n, int c, int k, int nc, int np, int kind, int dup, int zero, int off) {
  float *x = rand_array((size_t)n * c, -1, 1), *s = xmalloc((size_t)n * sizeof(float));
  if (dup) duplicate_rows(x, n, c, dup == 2);
  if (zero && n > 2) memset(x + (size_t)(n / 2) * c, 0, (size_t)c * sizeof(float));
  fill_scores(s, n - 1, kind);
  for (int j = 0; j < n - 1; j++) s[j] += 0.01f; /* weights > 0 */
  const int expect_rows = 1 + (k - np) + nc;
  const size_t ss = VIT_BAT_SCRATCH_FLOATS(n, c), is = VIT_BAT_SCRATCH_INTS(n);
  float *scratch = guarded(ss + 1), *y = guarded((size_t)expect_rows * c);
  int *iscratch = iguarded(is), *owner_in = malloc(PATCHES * sizeof(int)),
      *owner = iguarded(PATCHES);
  int *ref_owner = malloc(PATCHES * sizeof(int));
  double *ref_y = xmalloc((size_t)n * c * sizeof(double));
  rand_owner(owner_in, PATCHES, n);
  const int rows = vit_bat_merge_f32(x, n, c, s, k, nc, np, owner_in, PATCHES, owner, scratch + off,
                                     iscratch, y);
  const int ref_rows = ref_bat(x, n, c, s, k, nc, np, owner_in, PATCHES, ref_owner, ref_y);
  check(rows == expect_rows && ref_rows == expect_rows,
        "bat n=%d k=%d nc=%d np=%d: %d rows (ref %d), expected %d",
        n, k, nc, np, rows, ref_rows, expect_rows);
  int bad = 0, bad_owner = 0;
  for (size_t e = 0; e < (size_t)expect_rows * c; e++) bad += !close_to(y[e], ref_y[e], 1e-6, 1e-9);
  for (int p = 0; p < PATCHES; p++) bad_owner += owner[p] != ref_owner[p];
  check(bad == 0, "bat n=%d c=%d k=%d nc=%d np=%d kind=%d dup=%d zero=%d: %d wrong values", n, c, k,
        nc, np, kind, dup, zero, bad);
  check(bad_owner == 0, "bat n=%d c=%d k=%d nc=%d np=%d kind=%d dup=%d: %d wrong owners", n, c, k,
        nc, np, kind, dup, bad_owner);
  check(guard_intact(y, (size_t)expect_rows * c) && guard_intact(scratch + off, ss) &&
            (off == 0 || scratch[0] == guard_value) && iguard_intact(iscratch, is) &&
            iguard_intact(owner, PATCHES),
        "bat n=%d k=%d nc=%d np=%d: wrote past a buffer", n, k, nc, np);
  check_owner("bat", owner, PATCHES, expect_rows, 0);
  int *inplace = malloc(PATCHES * sizeof(int));
  memcpy(inplace, owner_in, PATCHES * sizeof(int));
  vit_bat_merge_f32(x, n, c, s, k, nc, np, inplace, PATCHES, inplace, scratch + off, iscratch, y);
  check(memcmp(inplace, owner, PATCHES * sizeof(int)) == 0, "bat n=%d k=%d: in-place owner differs",
        n, k);
  free(x), free(s), free(scratch), free(y), free(iscratch), free(owner_in), free(owner);
  free(ref_owner), free(ref_y), free(inplace);
}

static void test_bat(void) {
  /* {n, k, nc, np}; M = n-1-k */
  static const int cases[][4] = {
      /* n = 2, 3 */
      {2, 1, 0, 0}, {2, 0, 1, 0}, {3, 1, 1, 0}, {3, 2, 0, 0}, {3, 2, 0, 1}, {3, 0, 2, 0},
      /* n = 17: n_c = M, n_c = 1, n_p = 0, n_p = k/2, M < 5, M = 0 */
      {17, 1, 15, 0}, {17, 1, 1, 0}, {17, 8, 2, 1}, {17, 8, 8, 4}, {17, 12, 4, 6}, {17, 12, 1, 0},
      {17, 14, 2, 7}, {17, 15, 1, 7}, {17, 16, 0, 0}, {17, 16, 0, 8}, {17, 9, 7, 4}, {17, 6, 9, 3},
      {17, 13, 1, 0}, {17, 13, 2, 1}, {17, 12, 2, 2}, {17, 12, 3, 0},
      /* n = 197: the DeiT-S first stage at 0.7 and the same edges */
      {197, 138, 12, 11}, {197, 138, 58, 69}, {197, 138, 1, 0}, {197, 193, 3, 96},
      {197, 193, 1, 0}, {197, 195, 1, 5}, {197, 196, 0, 0}, {197, 196, 0, 98}, {197, 1, 195, 0},
      {197, 98, 20, 49}, {197, 192, 4, 4}, {197, 150, 45, 20}, {197, 192, 1, 0}, {197, 192, 2, 2},
      {197, 193, 2, 1},
  };
  static const int kind[] = {0, 1, 0, 2, 0}, dup[] = {0, 0, 1, 1, 2};
  static const int zero[] = {0, 0, 0, 1, 0};
  for (size_t q = 0; q < sizeof cases / sizeof *cases; q++)
    for (size_t b = 0; b < 3; b++)
      for (int variant = 0; variant < 5; variant++) {
        const int n = cases[q][0], c = tok_cs[b];
        if (n == 197 && c != 384 && variant > 1) continue; /* keep the run short */
        bat_case(n, c, cases[q][1], cases[q][2], cases[q][3], kind[variant], dup[variant],
                 zero[variant], variant & 1);
      }
}

/* ToMe, the literal bipartite soft matching of the header (double). Returns nothing; y, size. */
static void ref_tome(const float *x, const float *metric, const float *size, int n, int c, int d,
                     int r, const int *owner_in, int patches, int *owner_out, double *y,
                     double *size_out) {
  const int na = (n + 1) / 2, nb = n / 2, nu = na - r;
  double *node_max = xmalloc((size_t)na * sizeof(double));
  int *node_idx = xmalloc((size_t)na * sizeof(int)), *order = xmalloc((size_t)na * sizeof(int));
  int *is_src = calloc((size_t)na, sizeof(int)), *pos = xmalloc((size_t)na * sizeof(int));
  for (int i = 0; i < na; i++) {
    node_max[i] = -INFINITY;
    node_idx[i] = 0;
    for (int j = 0; j < nb; j++) {
      const double sc = i == 0 ? -INFINITY
                               : ref_cos(metric + (size_t)(2 * i) * d,
                                         metric + (size_t)(2 * j + 1) * d, d);
      if (sc > node_max[i]) {
        node_max[i] = sc;
        node_idx[i] = j;
      }
    }
  }
  ref_order(node_max, na, order);
  for (int q = 0; q < r; q++) is_src[order[q]] = 1;
  for (int i = 0, u = 0; i < na; i++) pos[i] = is_src[i] ? -1 : u++;
  for (int i = 0; i < na; i++)
    if (!is_src[i]) { /* unmerged: x*size/size */
      for (int ch = 0; ch < c; ch++)
        y[(size_t)pos[i] * c + ch] =
            (double)x[(size_t)(2 * i) * c + ch] * size[2 * i] / size[2 * i];
      size_out[pos[i]] = size[2 * i];
    }
  for (int j = 0; j < nb; j++) {
    double sz = size[2 * j + 1];
    for (int ch = 0; ch < c; ch++)
      y[(size_t)(nu + j) * c + ch] = (double)x[(size_t)(2 * j + 1) * c + ch] * sz;
    for (int q = 0; q < r; q++) {
      const int i = order[q];
      if (node_idx[i] != j) continue;
      for (int ch = 0; ch < c; ch++)
        y[(size_t)(nu + j) * c + ch] += (double)x[(size_t)(2 * i) * c + ch] * size[2 * i];
      sz += size[2 * i];
    }
    for (int ch = 0; ch < c; ch++) y[(size_t)(nu + j) * c + ch] /= sz;
    size_out[nu + j] = sz;
  }
  for (int p = 0; p < patches; p++) {
    const int t = owner_in[p];
    if (t < 0) owner_out[p] = -1;
    else if (t % 2 == 1) owner_out[p] = nu + (t - 1) / 2;
    else owner_out[p] = is_src[t / 2] ? nu + node_idx[t / 2] : pos[t / 2];
  }
  free(node_max), free(node_idx), free(order), free(is_src), free(pos);
}

/* kind 0: random metric, 1: duplicated metric rows (ties), 2: + an all-zero metric row,
   3: all non-cls metric rows equal */
static void tome_case(int n, int c, int d, int r, int kind, int off) {
  float *x = rand_array((size_t)n * c, -1, 1), *metric = rand_array((size_t)n * d, -1, 1);
  float *size = xmalloc((size_t)n * sizeof(float));
  if (kind >= 1) duplicate_rows(metric, n, d, kind == 3);
  if (kind == 2 && n > 3) memset(metric + (size_t)3 * d, 0, (size_t)d * sizeof(float));
  double in_sum = 0;
  for (int t = 0; t < n; t++) {
    size[t] = t == 0 ? 1.0f : (float)(1 + irand(4));
    in_sum += size[t];
  }
  const int rows = n - r;
  const size_t ss = VIT_TOME_SCRATCH_FLOATS(n, c, d), is = VIT_TOME_SCRATCH_INTS(n);
  float *scratch = guarded(ss + 1), *y = guarded((size_t)rows * c),
      *size_out = guarded((size_t)rows);
  int *iscratch = iguarded(is), *owner_in = malloc(PATCHES * sizeof(int)),
      *owner = iguarded(PATCHES);
  int *ref_owner = malloc(PATCHES * sizeof(int));
  double *ref_y = xmalloc((size_t)rows * c * sizeof(double)),
      *ref_size = xmalloc((size_t)rows * sizeof(double));
  rand_owner(owner_in, PATCHES, n);
  vit_bipartite_merge_f32(x, metric, size, n, c, d, r, owner_in, PATCHES, owner, scratch + off,
                          iscratch, y, size_out);
  ref_tome(x, metric, size, n, c, d, r, owner_in, PATCHES, ref_owner, ref_y, ref_size);
  int bad = 0, bad_size = 0, bad_owner = 0;
  double out_sum = 0;
  for (size_t e = 0; e < (size_t)rows * c; e++) bad += !close_to(y[e], ref_y[e], 1e-6, 1e-9);
  for (int o = 0; o < rows; o++) {
    bad_size += size_out[o] != ref_size[o];
    out_sum += size_out[o];
  }
  for (int p = 0; p < PATCHES; p++) bad_owner += owner[p] != ref_owner[p];
  check(bad == 0, "tome n=%d c=%d d=%d r=%d kind=%d: %d wrong values", n, c, d, r, kind, bad);
  check(bad_size == 0 && out_sum == in_sum, "tome n=%d r=%d kind=%d: sizes wrong (sum %g, in %g)",
        n, r, kind, out_sum, in_sum);
  check(size_out[0] == 1.0f, "tome n=%d r=%d: cls size %g", n, r, size_out[0]);
  check(bad_owner == 0, "tome n=%d c=%d d=%d r=%d kind=%d: %d wrong owners", n, c, d, r, kind,
        bad_owner);
  check(guard_intact(y, (size_t)rows * c) && guard_intact(size_out, (size_t)rows) &&
            guard_intact(scratch + off, ss) && (off == 0 || scratch[0] == guard_value) &&
            iguard_intact(iscratch, is) && iguard_intact(owner, PATCHES),
        "tome n=%d r=%d: wrote past a buffer", n, r);
  check_owner("tome", owner, PATCHES, rows, 0);
  int *inplace = malloc(PATCHES * sizeof(int));
  memcpy(inplace, owner_in, PATCHES * sizeof(int));
  vit_bipartite_merge_f32(x, metric, size, n, c, d, r, inplace, PATCHES, inplace, scratch + off,
                          iscratch, y, size_out);
  check(memcmp(inplace, owner, PATCHES * sizeof(int)) == 0,
        "tome n=%d r=%d: in-place owner differs", n, r);
  free(x), free(metric), free(size), free(scratch), free(y), free(size_out), free(iscratch);
  free(owner_in), free(owner), free(ref_owner), free(ref_y), free(ref_size), free(inplace);
}

static void test_tome(void) {
  static const int ns[] = {3, 4, 5, 17, 18, 197};
  static const int ds[] = {64, 13};
  for (size_t a = 0; a < 6; a++)
    for (size_t b = 0; b < 3; b++)
      for (size_t e = 0; e < 2; e++)
        for (int kind = 0; kind < 4; kind++) {
          const int n = ns[a], half = (n - 1) / 2;
          const int rs[] = {1, (half + 1) / 2, half};
          for (int q = 0; q < 3; q++) tome_case(n, tok_cs[b], ds[e], rs[q], kind, (q + kind) & 1);
        }
}

/* ---- trace and whole schedules ----------------------------------------------------------- */

static void test_trace(void) {
  static const int cfg[][2] = {{1, 1}, {0, 3}, {196, 1}, {196, 2}, {196, 17}, {196, 197}, {7, 30}};
  for (size_t q = 0; q < sizeof cfg / sizeof *cfg; q++) {
    const int patches = cfg[q][0], tokens = cfg[q][1];
    int *owner = xmalloc((size_t)patches * sizeof(int));
    for (int p = 0; p < patches; p++) /* some out-of-range owners too: 0 and tokens */
      owner[p] = irand(6) == 0 ? -1 : irand(tokens + 1);
    int16_t *first = malloc(((size_t)tokens + 8) * sizeof(int16_t));
    int16_t *members = malloc(((size_t)patches + 8) * sizeof(int16_t));
    for (int i = 0; i < tokens + 8; i++) first[i] = 12345;
    for (int i = 0; i < patches + 8; i++) members[i] = 12345;
    vit_trace_stage(owner, patches, tokens, first, members);
    int bad = first[0] != 0, at = 0;
    for (int t = 1; t < tokens; t++) {
      for (int p = 0; p < patches; p++)
        if (owner[p] == t) bad += at >= patches || members[at++] != p;
      bad += first[t] != at;
    }
    bad += first[tokens] != 12345 || members[patches] != 12345;
    check(bad == 0, "trace patches=%d tokens=%d: %d wrong", patches, tokens, bad);
    free(owner), free(first), free(members);
  }
}

/* DeiT-S-sized schedules from the identity owner: EViT with fusion, BAT and ToMe never drop a
   patch, so every stage's trace covers all 196; ToMe's sizes equal the member counts. */
static void test_schedules(void) {
  const int c = 384;
  float *y = malloc((size_t)197 * c * sizeof(float));
  float *s = malloc(197 * sizeof(float)),
      *scratch = malloc(VIT_BAT_SCRATCH_FLOATS(197, c) * sizeof(float));
  int *owner = malloc(PATCHES * sizeof(int)),
      *iscratch = malloc(VIT_BAT_SCRATCH_INTS(197) * sizeof(int));
  int *keep = malloc(197 * sizeof(int));
  int16_t first[197], members[PATCHES];
  for (int method = 0; method < 3; method++) {
    int n = 197;
    float *cur = rand_array((size_t)197 * c, -1, 1);
    float size[197], size_out[197];
    for (int p = 0; p < PATCHES; p++) owner[p] = 1 + p;
    for (int t = 0; t < 197; t++) size[t] = 1;
    const int stages = method == 2 ? 12 : 3;
    for (int st = 0; st < stages; st++) {
      for (int j = 0; j < n - 1; j++) s[j] = frand(0.001f, 1);
      int rows;
      if (method == 0) { /* EViT 0.7 fuse: 197 -> 140 -> 100 -> 72 */
        const int k = (int)ceil(0.7 * (n - 1));
        vit_topk_keep_f32(s, n - 1, k, keep);
        vit_gather_fuse_tokens_f32(cur, n, c, keep, k, s, owner, PATCHES, owner, iscratch, y);
        rows = k + 2;
      } else if (method == 1) { /* BAT 0.7, n_c = ceil(0.2 M), n_p = min(n_c - 1, k/2) */
        const int k = (int)ceil(0.7 * (n - 1)), m = n - 1 - k, nc = (int)ceil(0.2 * m);
        const int np = nc - 1 < k / 2 ? (nc > 0 ? nc - 1 : 0) : k / 2;
        rows = vit_bat_merge_f32(cur, n, c, s, k, nc, np, owner, PATCHES, owner, scratch,
                                 iscratch, y);
      } else { /* ToMe r = 13 */
        float *metric = rand_array((size_t)n * 64, -1, 1);
        const int r = 13 < (n - 1) / 2 ? 13 : (n - 1) / 2;
        vit_bipartite_merge_f32(cur, metric, size, n, c, 64, r, owner, PATCHES, owner, scratch,
                                iscratch, y, size_out);
        memcpy(size, size_out, sizeof size);
        rows = n - r;
        free(metric);
      }
      check_owner(method == 0 ? "evit schedule" : method == 1 ? "bat schedule" : "tome schedule",
                  owner, PATCHES, rows, 1);
      if (method == 2) {
        vit_trace_stage(owner, PATCHES, rows, first, members);
        int bad = size[0] != 1;
        for (int t = 1; t < rows; t++) bad += size[t] != first[t] - first[t - 1];
        check(bad == 0, "tome schedule stage %d: sizes differ from member counts", st);
      }
      memcpy(cur, y, (size_t)rows * c * sizeof(float));
      n = rows;
    }
    const int expect = method == 0 ? 72 : method == 1 ? 72 : 41;
    check(n == expect, "schedule %d: %d tokens at the end, expected %d", method, n, expect);
    free(cur);
  }
  free(y), free(s), free(scratch), free(owner), free(iscratch), free(keep);
}

int main(void) {
  test_cls_attention();
  test_asvit_scores();
  test_dyvit_mix();
  test_keep_score();
  test_tome_metric();
  test_topk();
  test_threshold();
  test_gather(0);
  test_gather(1);
  test_bat();
  test_tome();
  test_trace();
  test_schedules();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
