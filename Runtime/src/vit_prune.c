/*
 * vit_prune.c: the token-pruning kernels (DynamicViT, EViT, AS-ViT, BAT, ToMe). The contract,
 * shapes and tie rules are in include/vit_prune.h; the methods in ../shared/SEMANTICS.md.
 *
 * Layer 5 of the runtime, the top (Runtime/README.md), and it calls no other layer: the kernels
 * are small next to the GEMMs, so they run serially, and their scores are in double, so the cls
 * softmax here (cls_softmax_row) is a double one of its own, not the float softmax of vit_math.c.
 *
 * Portable C11, serial, no malloc, no stdio; it does not depend on the ISA flags. Scores,
 * distances, densities and merged rows are computed in double and rounded to float once.
 * The double parts of `scratch` start at the first 8-byte boundary (see as_doubles), so
 * scratch only needs float alignment; the scratch macros reserve the float this may skip.
 *
 * Every token-rewriting kernel first builds row_new[old row] = new row (or -1 when the row is
 * dropped) in iscratch, then maps owner through it, so owner_in == owner_out is fine.
 */
#include "vit_prune.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */

/* The start of scratch rounded up to 8 bytes, seen as doubles (at most one float skipped). */
static double *as_doubles(float *scratch) {
  uintptr_t p = (uintptr_t)scratch;
  p = (p + sizeof(double) - 1) & ~(uintptr_t)(sizeof(double) - 1);
  return (double *)p;
}

/* owner_out[p] = row_new[owner_in[p]]; rows outside 0 .. n-1 (i.e. -1) stay -1. */
static void remap_owner(const int *owner_in, int patches, const int *row_new, int n,
                        int *owner_out) {
  for (int p = 0; p < patches; p++) {
    const int t = owner_in[p];
    owner_out[p] = (t >= 0 && t < n) ? row_new[t] : -1;
  }
}

static void copy_row(const float *x, int from, int c, float *y, int to) {
  memcpy(y + (size_t)to * c, x + (size_t)from * c, (size_t)c * sizeof(float));
}

/* Dot product and squared distance in double. Four interleaved partial sums, added as
   (0+1)+(2+3), then the tail: a fixed order, so still deterministic, and ~4x faster than one
   serial chain (the BAT similarity and ToMe score matrices are most of these kernels' time). */
static double dot_d(const float *a, const float *b, int len) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int j = 0;
  for (; j + 4 <= len; j += 4) { /* products as their own statements: never fused into an FMA */
    const double p0 = (double)a[j] * b[j], p1 = (double)a[j + 1] * b[j + 1];
    const double p2 = (double)a[j + 2] * b[j + 2], p3 = (double)a[j + 3] * b[j + 3];
    s0 += p0;
    s1 += p1;
    s2 += p2;
    s3 += p3;
  }
  double acc = (s0 + s1) + (s2 + s3);
  for (; j < len; j++) {
    const double p = (double)a[j] * b[j];
    acc += p;
  }
  return acc;
}

static double sqdist_d(const float *a, const float *b, int len) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int j = 0;
  for (; j + 4 <= len; j += 4) {
    const double d0 = (double)a[j] - b[j], d1 = (double)a[j + 1] - b[j + 1];
    const double d2 = (double)a[j + 2] - b[j + 2], d3 = (double)a[j + 3] - b[j + 3];
    const double q0 = d0 * d0, q1 = d1 * d1, q2 = d2 * d2, q3 = d3 * d3;
    s0 += q0;
    s1 += q1;
    s2 += q2;
    s3 += q3;
  }
  double acc = (s0 + s1) + (s2 + s3);
  for (; j < len; j++) {
    const double d = (double)a[j] - b[j], q = d * d;
    acc += q;
  }
  return acc;
}

/* dot_d(a, b_{j0+l}) for the four rows l = 0..3 at once, bit for bit: bt holds the rows
   transposed (bt[k * ld + j] = b_j[k]), and lane l sums in dot_d's order (partial k mod 4,
   ascending k; (s0+s1)+(s2+s3); then the tail), so the compiler may keep the lanes in one
   vector register. ToMe's a×b scores and BAT's attentive pairs. */
static void dot4_d(const float *a, const float *bt, int ld, int j0, int len, double out[4]) {
  double s[4][4] = {{0}};
  int k = 0;
  for (; k + 4 <= len; k += 4)
    for (int p = 0; p < 4; p++) {
      const double av = a[k + p];
      const float *row = bt + (size_t)(k + p) * ld + j0;
      for (int l = 0; l < 4; l++) {
        const double prod = av * row[l];
        s[p][l] += prod;
      }
    }
  for (int l = 0; l < 4; l++) out[l] = (s[0][l] + s[1][l]) + (s[2][l] + s[3][l]);
  for (; k < len; k++) {
    const double av = a[k];
    for (int l = 0; l < 4; l++) {
      const double prod = av * bt[(size_t)k * ld + j0 + l];
      out[l] += prod;
    }
  }
}

/* sqdist_d(a, b_{j0+l}) for four rows at once, in sqdist_d's order (as dot4_d). BAT's DPC-kNN. */
static void sqdist4_d(const float *a, const float *bt, int ld, int j0, int len, double out[4]) {
  double s[4][4] = {{0}};
  int k = 0;
  for (; k + 4 <= len; k += 4)
    for (int p = 0; p < 4; p++) {
      const double av = a[k + p];
      const float *row = bt + (size_t)(k + p) * ld + j0;
      for (int l = 0; l < 4; l++) {
        const double dl = av - row[l], q = dl * dl;
        s[p][l] += q;
      }
    }
  for (int l = 0; l < 4; l++) out[l] = (s[0][l] + s[1][l]) + (s[2][l] + s[3][l]);
  for (; k < len; k++) {
    const double av = a[k];
    for (int l = 0; l < 4; l++) {
      const double dl = av - bt[(size_t)k * ld + j0 + l], q = dl * dl;
      out[l] += q;
    }
  }
}

/* rows[0..count) of x (row ids, each c wide) transposed into t[c][count]. */
static void transpose_rows(const float *x, int c, const int *ids, int offset, int count, float *t) {
  for (int j = 0; j < count; j++) {
    const float *row = x + (size_t)(offset + ids[j]) * c;
    for (int k = 0; k < c; k++) t[(size_t)k * count + j] = row[k];
  }
}

/* Cosine similarity a·b / sqrt((a·a)(b·b)) from the dot product and the squared norms; a zero
   row has cosine 0. In this form two identical rows have cosine exactly 1 (sqrt(fl(x*x)) == x
   in binary floating point), whatever the summation order, so duplicate tokens tie exactly. */
static double cosine(double dot, double sq_a, double sq_b) {
  return (sq_a > 0 && sq_b > 0) ? dot / sqrt(sq_a * sq_b) : 0.0;
}

/* The k largest of v[0 .. m-1] in descending order, equal values in ascending index order:
   insertion into idx[0 .. k), a newcomer only passes strictly smaller values. O(m k). */
static void top_desc_d(const double *v, int m, int k, int *idx) {
  int count = 0;
  if (k <= 0) return;
  for (int j = 0; j < m; j++) {
    if (count == k && !(v[j] > v[idx[k - 1]])) continue;
    int pos = count < k ? count++ : k - 1;
    while (pos > 0 && v[j] > v[idx[pos - 1]]) {
      idx[pos] = idx[pos - 1];
      pos--;
    }
    idx[pos] = j;
  }
}

/* p[t] = softmax_t(scale * q_h[0]·k_h[t]) over all n keys, max-subtracted, in double. */
static void cls_softmax_row(const float *qkv, int n, int heads, int d, int h, float scale,
                            double *p) {
  const int C = heads * d;
  const size_t ld = (size_t)3 * C;
  const float *q = qkv + (size_t)h * d;
  double mx = -HUGE_VAL, sum = 0;
  for (int t = 0; t < n; t++) {
    p[t] = dot_d(q, qkv + t * ld + C + (size_t)h * d, d) * scale;
    if (p[t] > mx) mx = p[t];
  }
  for (int t = 0; t < n; t++) {
    p[t] = exp(p[t] - mx);
    sum += p[t];
  }
  for (int t = 0; t < n; t++) p[t] /= sum;
}

/* ||context[t][h*d .. h*d+d)||_2 in double (AS-ViT's head importance). */
static double head_norm(const float *context, int heads, int d, int t, int h) {
  const float *v = context + (size_t)t * heads * d + (size_t)h * d;
  return sqrt(dot_d(v, v, d));
}

/* ---- scores ----------------------------------------------------------------------------- */

/* EViT/BAT: cls-query attention averaged over heads. */
void vit_cls_attention_np_f32(const float *qkv, int n, int prefix, int heads, int head_dim,
                              float scale, float *scratch, float *s) {
  double *p = as_doubles(scratch), *acc = p + n;
  for (int t = 0; t < n; t++) acc[t] = 0;
  for (int h = 0; h < heads; h++) {
    cls_softmax_row(qkv, n, heads, head_dim, h, scale, p);
    for (int t = prefix; t < n; t++) acc[t] += p[t];
  }
  for (int j = 0; j < n - prefix; j++) s[j] = (float)(acc[prefix + j] / heads);
}

void vit_cls_attention_f32(const float *qkv, int n, int heads, int head_dim, float scale,
                           float *scratch, float *s) {
  vit_cls_attention_np_f32(qkv, n, 1, heads, head_dim, scale, scratch, s);
}

/* AS-ViT eq. 5-7: cls attention of each head weighted by that head's share of the context
   norm of the key token. */
void vit_asvit_scores_np_f32(const float *qkv, const float *context, int n, int prefix,
                             int heads, int head_dim, float scale, float *scratch, float *s) {
  double *p = as_doubles(scratch), *den = p + n, *acc = den + n;
  for (int t = prefix; t < n; t++) { /* den[t] = sum_h' imp_h'[t] + 1e-8 */
    double sum = 0;
    for (int h = 0; h < heads; h++) sum += head_norm(context, heads, head_dim, t, h);
    den[t] = sum + 1e-8;
    acc[t] = 0;
  }
  for (int h = 0; h < heads; h++) {
    cls_softmax_row(qkv, n, heads, head_dim, h, scale, p);
    for (int t = prefix; t < n; t++)
      acc[t] += p[t] * (head_norm(context, heads, head_dim, t, h) / den[t]); /* A_h * R_h */
  }
  for (int j = 0; j < n - prefix; j++) s[j] = (float)acc[prefix + j];
}

void vit_asvit_scores_f32(const float *qkv, const float *context, int n, int heads, int head_dim,
                          float scale, float *scratch, float *s) {
  vit_asvit_scores_np_f32(qkv, context, n, 1, heads, head_dim, scale, scratch, s);
}

/* DynamicViT predictor: local half as is, global half replaced by its mean over the rows. */
void vit_dyvit_mix_f32(const float *u, int m, int c, float *y) {
  const int half = c / 2;
  for (int i = 0; i < m; i++)
    memcpy(y + (size_t)i * c, u + (size_t)i * c, (size_t)half * sizeof(float));
  for (int j = half; j < c; j++) {
    double sum = 0;
    for (int r = 0; r < m; r++) sum += u[(size_t)r * c + j];
    const float mean = (float)(sum / m);
    for (int i = 0; i < m; i++) y[(size_t)i * c + j] = mean;
  }
}

/* DynamicViT: log_softmax channel 0 ("keep"), in PyTorch's max-subtracted form. */
void vit_keep_score_f32(const float *l, int m, float *s) {
  for (int i = 0; i < m; i++) {
    const double l0 = l[2 * i], l1 = l[2 * i + 1], mx = l0 > l1 ? l0 : l1;
    s[i] = (float)((l0 - mx) - log(exp(l0 - mx) + exp(l1 - mx)));
  }
}

/* ToMe: the keys averaged over heads. */
void vit_tome_metric_f32(const float *qkv, int n, int heads, int head_dim, float *metric) {
  const int C = heads * head_dim;
  for (int t = 0; t < n; t++) {
    const float *k = qkv + (size_t)t * 3 * C + C;
    for (int j = 0; j < head_dim; j++) {
      double sum = 0;
      for (int h = 0; h < heads; h++) sum += k[h * head_dim + j];
      metric[(size_t)t * head_dim + j] = (float)(sum / heads);
    }
  }
}

/* ---- selection -------------------------------------------------------------------------- */

/* DynamicViT/EViT/BAT top-k: a stable descending sort, cut at k (see top_desc_d). */
void vit_topk_keep_f32(const float *s, int m, int k, int *idx) {
  int count = 0;
  if (k <= 0) return;
  for (int j = 0; j < m; j++) {
    if (count == k && !(s[j] > s[idx[k - 1]])) continue;
    int pos = count < k ? count++ : k - 1;
    while (pos > 0 && s[j] > s[idx[pos - 1]]) {
      idx[pos] = idx[pos - 1];
      pos--;
    }
    idx[pos] = j;
  }
}

/* AS-ViT (B = 1): every score strictly above the learned threshold, in index order. */
int vit_threshold_keep_f32(const float *s, int m, float theta, int *idx) {
  int count = 0;
  for (int j = 0; j < m; j++)
    if (s[j] > theta) idx[count++] = j;
  return count;
}

/* ---- token rewriting -------------------------------------------------------------------- */

/* y = [x[0 .. prefix); x[prefix + keep[i]] ...]; row_new gets t -> t for the prefix rows,
   prefix + keep[i] -> prefix + i, others -1. */
static void gather_kept(const float *x, int n, int prefix, int c, const int *keep, int k,
                        int *row_new, float *y) {
  for (int t = 0; t < n; t++) row_new[t] = -1;
  for (int t = 0; t < prefix; t++) {
    row_new[t] = t;
    copy_row(x, t, c, y, t);
  }
  for (int i = 0; i < k; i++) {
    copy_row(x, prefix + keep[i], c, y, prefix + i);
    row_new[prefix + keep[i]] = prefix + i;
  }
}

/* DynamicViT / AS-ViT / EViT without fusion: keep the selected rows, drop the rest. */
void vit_gather_tokens_np_f32(const float *x, int n, int prefix, int c, const int *keep, int k,
                              const int *owner_in, int patches, int *owner_out, int *iscratch,
                              float *y) {
  gather_kept(x, n, prefix, c, keep, k, iscratch, y);
  remap_owner(owner_in, patches, iscratch, n, owner_out);
}

void vit_gather_tokens_f32(const float *x, int n, int c, const int *keep, int k,
                           const int *owner_in, int patches, int *owner_out, int *iscratch,
                           float *y) {
  vit_gather_tokens_np_f32(x, n, 1, c, keep, k, owner_in, patches, owner_out, iscratch, y);
}

/* EViT with fusion: the dropped rows become one extra token, sum_j s[j] x[prefix+j]. */
void vit_gather_fuse_tokens_np_f32(const float *x, int n, int prefix, int c, const int *keep,
                                   int k, const float *s, const int *owner_in, int patches,
                                   int *owner_out, int *iscratch, float *y) {
  int *row_new = iscratch;
  const int fused = prefix + k;
  gather_kept(x, n, prefix, c, keep, k, row_new, y);
  for (int t = prefix; t < n; t++) /* complement_idx: the dropped rows go to the fused row */
    if (row_new[t] < 0) row_new[t] = fused;
  for (int ch = 0; ch < c; ch++) {
    double acc = 0;
    for (int j = 0; j < n - prefix; j++)
      if (row_new[prefix + j] == fused) acc += (double)s[j] * x[(size_t)(prefix + j) * c + ch];
    y[(size_t)fused * c + ch] = (float)acc;
  }
  remap_owner(owner_in, patches, row_new, n, owner_out);
}

void vit_gather_fuse_tokens_f32(const float *x, int n, int c, const int *keep, int k,
                                const float *s, const int *owner_in, int patches, int *owner_out,
                                int *iscratch, float *y) {
  vit_gather_fuse_tokens_np_f32(x, n, 1, c, keep, k, s, owner_in, patches, owner_out, iscratch, y);
}

/* BAT: attentive tokens matched in pairs, inattentive ones clustered with DPC-kNN.
   Out-of-contract counts are clamped so that no more rows are written than promised: k to
   [0, n-1], pairs to [0, k/2], clusters to [0, M]; with clusters = 0 and M > 0 the
   inattentive rows are dropped (owner -1). */
int vit_bat_merge_np_f32(const float *x, int n, int prefix, int c, const float *s, int k,
                         int clusters, int pairs, const int *owner_in, int patches,
                         int *owner_out, float *scratch, int *iscratch, float *y) {
  if (k < 0) k = 0;
  if (k > n - prefix) k = n - prefix;
  const int m = n - prefix - k; /* inattentive tokens */
  const int np = pairs < 0 ? 0 : pairs > k / 2 ? k / 2 : pairs;
  const int nc = clusters < 0 ? 0 : clusters > m ? m : clusters;
  const double sqrt_c = sqrt((double)c);
  /* ints: att[k] ina[m] pair_of[k] pair_a[np] pair_b[np] centre[nc] cluster_of[m]
           start[nc+1] member[m] row_new[n]  (<= 6n) */
  int *att = iscratch, *ina = att + k, *pair_of = ina + m, *pair_a = pair_of + k,
      *pair_b = pair_a + np, *centre = pair_b + np, *cluster_of = centre + nc,
      *start = cluster_of + m, *member = start + nc + 1, *row_new = member + m;
  /* doubles: sim[k*k] sq[k] dist[m*m] rho[m] delta[m] score[m]  (<= (n-1)^2 + 4n);
     then floats tr[c][max(k, m)]: the attentive, later the inattentive rows transposed */
  double *sim = as_doubles(scratch), *sq = sim + (size_t)k * k, *dist = sq + k,
         *rho = dist + (size_t)m * m, *delta = rho + m, *score = delta + m;
  float *tr = (float *)(score + m);

  /* decoupler: top-k of the cls attention attentive, the rest inattentive (ascending) */
  vit_topk_keep_f32(s, n - prefix, k, att);
  for (int t = 0; t < n; t++) row_new[t] = -1;
  for (int i = 0; i < k; i++) row_new[prefix + att[i]] = 0;
  for (int j = 0, q = 0; j < n - prefix; j++)
    if (row_new[prefix + j] < 0) ina[q++] = j;

  /* attentive pairs: cosine similarity, greedy disjoint matching, largest first */
  for (int a = 0; a < k; a++) {
    const float *xa = x + (size_t)(prefix + att[a]) * c;
    sq[a] = dot_d(xa, xa, c);
    pair_of[a] = -1;
  }
  transpose_rows(x, c, att, prefix, k, tr); /* the attentive rows, column-major, for dot4_d */
  for (int a = 0; a < k; a++) {
    const float *xa = x + (size_t)(prefix + att[a]) * c;
    double d4[4];
    int b = a + 1;
    for (; b + 4 <= k; b += 4) {
      dot4_d(xa, tr, k, b, c, d4);
      for (int l = 0; l < 4; l++) sim[(size_t)a * k + b + l] = cosine(d4[l], sq[a], sq[b + l]);
    }
    for (; b < k; b++) sim[(size_t)a * k + b] = cosine(dot_d(xa, x + (size_t)(prefix + att[b]) * c, c), sq[a], sq[b]);
  }
  for (int p = 0; p < np; p++) {
    int best_a = -1, best_b = -1;
    for (int a = 0; a < k; a++) {
      if (pair_of[a] >= 0) continue;
      for (int b = a + 1; b < k; b++)
        if (pair_of[b] < 0 && (best_a < 0 || sim[(size_t)a * k + b] >
                                                 sim[(size_t)best_a * k + best_b])) {
          best_a = a;
          best_b = b;
        }
    }
    pair_a[p] = best_a;
    pair_b[p] = best_b;
    pair_of[best_a] = pair_of[best_b] = p;
  }

  /* DPC-kNN on the inattentive rows: distance, density, delta, centres, assignment */
  transpose_rows(x, c, ina, prefix, m, tr); /* the inattentive rows, for sqdist4_d */
  for (int i = 0; i < m; i++) {
    const float *xi = x + (size_t)(prefix + ina[i]) * c;
    dist[(size_t)i * m + i] = 0;
    double d4[4];
    int j = i + 1;
    for (; j + 4 <= m; j += 4) {
      sqdist4_d(xi, tr, m, j, c, d4);
      for (int l = 0; l < 4; l++) dist[(size_t)i * m + j + l] = dist[(size_t)(j + l) * m + i] = sqrt(d4[l]) / sqrt_c;
    }
    for (; j < m; j++) {
      const double d2 = sqdist_d(xi, x + (size_t)(prefix + ina[j]) * c, c);
      dist[(size_t)i * m + j] = dist[(size_t)j * m + i] = sqrt(d2) / sqrt_c;
    }
  }
  const int kk = m < 5 ? m : 5;
  for (int i = 0; i < m; i++) { /* rho_i = exp(-mean of the kk smallest D_ij^2) */
    double near[5];
    int count = 0;
    for (int j = 0; j < m; j++) {
      const double d2 = dist[(size_t)i * m + j] * dist[(size_t)i * m + j];
      if (count == kk && !(d2 < near[kk - 1])) continue;
      int pos = count < kk ? count++ : kk - 1;
      while (pos > 0 && d2 < near[pos - 1]) {
        near[pos] = near[pos - 1];
        pos--;
      }
      near[pos] = d2;
    }
    double sum = 0;
    for (int q = 0; q < kk; q++) sum += near[q]; /* ascending */
    rho[i] = exp(-(sum / kk));
  }
  for (int i = 0; i < m; i++) { /* delta_i: distance to the nearest denser token */
    double dmin = HUGE_VAL, dmax = 0;
    int found = 0;
    for (int j = 0; j < m; j++) {
      const double dij = dist[(size_t)i * m + j];
      if (dij > dmax) dmax = dij;
      if (rho[j] > rho[i] || (rho[j] == rho[i] && j < i)) {
        found = 1;
        if (dij < dmin) dmin = dij;
      }
    }
    delta[i] = found ? dmin : dmax;
    score[i] = rho[i] * delta[i];
  }
  top_desc_d(score, m, nc, centre);
  for (int i = 0; i < m; i++) cluster_of[i] = -1;
  for (int r = 0; r < nc; r++) cluster_of[centre[r]] = r;
  for (int i = 0; i < m && nc > 0; i++) { /* nearest centre, first minimum in rank order */
    if (cluster_of[i] >= 0) continue;
    int best = 0;
    for (int r = 1; r < nc; r++)
      if (dist[(size_t)i * m + centre[r]] < dist[(size_t)i * m + centre[best]]) best = r;
    cluster_of[i] = best;
  }
  /* members of each cluster, ascending: member[start[r] .. start[r+1]) */
  for (int r = 0; r <= nc; r++) start[r] = 0;
  for (int i = 0; i < m; i++)
    if (cluster_of[i] >= 0) start[cluster_of[i] + 1]++;
  for (int r = 0; r < nc; r++) start[r + 1] += start[r];
  for (int i = 0; i < m; i++)
    if (cluster_of[i] >= 0) member[start[cluster_of[i]]++] = i;
  for (int r = nc; r > 0; r--) start[r] = start[r - 1];
  start[0] = 0;

  /* output: [prefix rows; merged pairs; unpaired attentive (descending s); clusters (rank order)] */
  for (int t = 0; t < n; t++) row_new[t] = -1;
  for (int t = 0; t < prefix; t++) {
    row_new[t] = t;
    copy_row(x, t, c, y, t);
  }
  for (int p = 0; p < np; p++) { /* (s_i x_i + s_j x_j) / (s_i + s_j + 1e-6) */
    const int ri = prefix + att[pair_a[p]], rj = prefix + att[pair_b[p]];
    const double si = s[ri - prefix], sj = s[rj - prefix], den = si + sj + 1e-6;
    for (int ch = 0; ch < c; ch++)
      y[(size_t)(prefix + p) * c + ch] =
          (float)((si * x[(size_t)ri * c + ch] + sj * x[(size_t)rj * c + ch]) / den);
    row_new[ri] = row_new[rj] = prefix + p;
  }
  int row = prefix + np;
  for (int a = 0; a < k; a++) {
    if (pair_of[a] >= 0) continue;
    copy_row(x, prefix + att[a], c, y, row);
    row_new[prefix + att[a]] = row++;
  }
  for (int r = 0; r < nc; r++, row++) { /* sum s_j x_j / (sum s_j + 1e-6) */
    double wsum = 0;
    for (int q = start[r]; q < start[r + 1]; q++) wsum += s[ina[member[q]]];
    const double den = wsum + 1e-6;
    for (int ch = 0; ch < c; ch++) {
      double acc = 0;
      for (int q = start[r]; q < start[r + 1]; q++) {
        const int j = ina[member[q]];
        acc += (double)s[j] * x[(size_t)(prefix + j) * c + ch];
      }
      y[(size_t)row * c + ch] = (float)(acc / den);
    }
    for (int q = start[r]; q < start[r + 1]; q++) row_new[prefix + ina[member[q]]] = row;
  }
  remap_owner(owner_in, patches, row_new, n, owner_out);
  return row;
}

int vit_bat_merge_f32(const float *x, int n, int c, const float *s, int k, int clusters,
                      int pairs, const int *owner_in, int patches, int *owner_out,
                      float *scratch, int *iscratch, float *y) {
  return vit_bat_merge_np_f32(x, n, 1, c, s, k, clusters, pairs, owner_in, patches, owner_out,
                              scratch, iscratch, y);
}

/* ToMe bipartite soft matching, merge_wavg, the first `prefix` rows protected. The sequence
   splits by row parity as ToMe splits it: a = even rows, b = odd rows; a-rows before the prefix
   end are never sources (their node_max is -inf), b-rows before it never destinations, and
   every prefix row stays where it is. r is clamped to (n-prefix)/2; with r <= 0 nothing is
   merged and the tokens are copied unchanged (ToMe skips the step). */
void vit_bipartite_merge_np_f32(const float *x, const float *metric, const float *size, int n,
                                int prefix, int c, int d, int r, const int *owner_in,
                                int patches, int *owner_out, float *scratch, int *iscratch,
                                float *y, float *size_out) {
  if (r > (n - prefix) / 2) r = (n - prefix) / 2;
  if (r <= 0) {
    memcpy(y, x, (size_t)n * c * sizeof(float));
    memcpy(size_out, size, (size_t)n * sizeof(float));
    if (owner_out != owner_in) memcpy(owner_out, owner_in, (size_t)patches * sizeof(int));
    return;
  }
  /* a-rows 2i (i < na), the first a_first of them prefix rows; b-rows 2j+1 (j < nb), the first
     b_first prefix rows; nu unmerged patch a-rows; rows out */
  const int na = (n + 1) / 2, nb = n / 2, a_first = (prefix + 1) / 2, b_first = prefix / 2;
  const int nbp = nb - b_first, nu = na - a_first - r, rows = n - r;
  /* doubles: sq[n] node_max[na] sq_b[nb], then floats bt[d][nb]; acc[c] (merging) over them;
     ints: node_idx[na] src[r] row_new[n] head[rows] next[n] */
  double *sq = as_doubles(scratch), *node_max = sq + n, *sq_b = node_max + na;
  float *bt = (float *)(sq_b + nb);
  double *acc = sq;
  int *node_idx = iscratch, *src = node_idx + na, *row_new = src + r, *head = row_new + n,
      *next = head + rows;

  /* node_max/node_idx: best patch b-row (odd) for every patch a-row (even) */
  for (int t = 0; t < n; t++) {
    const float *mt = metric + (size_t)t * d;
    sq[t] = dot_d(mt, mt, d);
  }
  for (int j = 0; j < nbp; j++) {
    const int row = 2 * (b_first + j) + 1;
    sq_b[j] = sq[row];
    for (int k = 0; k < d; k++) bt[(size_t)k * nbp + j] = metric[(size_t)row * d + k];
  }
  for (int i = 0; i < a_first; i++) {
    node_max[i] = -HUGE_VAL;
    node_idx[i] = b_first;
  }
  for (int i = a_first; i < na; i++) {
    const float *ma = metric + (size_t)(2 * i) * d;
    const double sq_a = sq[2 * i];
    double sc[4];
    for (int j0 = 0; j0 < nbp; j0 += 4) {
      const int lanes = nbp - j0 < 4 ? nbp - j0 : 4;
      if (lanes == 4) {
        dot4_d(ma, bt, nbp, j0, d, sc);
        for (int l = 0; l < 4; l++) sc[l] = cosine(sc[l], sq_a, sq_b[j0 + l]);
      } else {
        for (int l = 0; l < lanes; l++)
          sc[l] = cosine(dot_d(ma, metric + (size_t)(2 * (b_first + j0 + l) + 1) * d, d), sq_a,
                         sq_b[j0 + l]);
      }
      for (int l = 0; l < lanes; l++)
        if (j0 + l == 0 || sc[l] > node_max[i]) {
          node_max[i] = sc[l];
          node_idx[i] = b_first + j0 + l;
        }
    }
  }
  /* the r a-rows of largest node_max merge; the prefix rows stay first, then the other patch
     a-rows ascending, then every patch b-row */
  top_desc_d(node_max, na, r, src);
  for (int t = 0; t < n; t++) row_new[t] = 0;
  for (int q = 0; q < r; q++) row_new[2 * src[q]] = -1;
  for (int t = 0; t < prefix; t++) row_new[t] = t;
  for (int i = a_first, u = 0; i < na; i++)
    row_new[2 * i] = row_new[2 * i] < 0 ? prefix + nu + node_idx[i] - b_first : prefix + u++;
  for (int j = b_first; 2 * j + 1 < n; j++) row_new[2 * j + 1] = prefix + nu + j - b_first;

  /* merge_wavg: every out row = sum size_t x_t / sum size_t over its rows t, ascending t */
  for (int o = 0; o < rows; o++) head[o] = -1;
  for (int t = n - 1; t >= 0; t--) {
    next[t] = head[row_new[t]];
    head[row_new[t]] = t;
  }
  for (int o = 0; o < rows; o++) { /* row by row: the same sums in the same order per channel */
    double wsum = 0;
    for (int t = head[o]; t >= 0; t = next[t]) wsum += size[t];
    for (int ch = 0; ch < c; ch++) acc[ch] = 0;
    for (int t = head[o]; t >= 0; t = next[t]) {
      const double w = size[t];
      const float *xt = x + (size_t)t * c;
      for (int ch = 0; ch < c; ch++) {
        const double prod = (double)xt[ch] * w;
        acc[ch] += prod;
      }
    }
    for (int ch = 0; ch < c; ch++) y[(size_t)o * c + ch] = (float)(acc[ch] / wsum);
    size_out[o] = (float)wsum;
  }
  remap_owner(owner_in, patches, row_new, n, owner_out);
}

void vit_bipartite_merge_f32(const float *x, const float *metric, const float *size, int n,
                             int c, int d, int r, const int *owner_in, int patches,
                             int *owner_out, float *scratch, int *iscratch, float *y,
                             float *size_out) {
  vit_bipartite_merge_np_f32(x, metric, size, n, 1, c, d, r, owner_in, patches, owner_out, scratch,
                             iscratch, y, size_out);
}

/* ---- trace ------------------------------------------------------------------------------ */

/* Counting sort of the patches by owner row. The write cursor of row t lives in
   first[t-prefix]: it starts at the end of row t's range and counts down to its start, which is
   the end of row t-1, i.e. the final first[t-prefix]. */
void vit_trace_stage_np(const int *owner, int patches, int tokens, int prefix, int16_t *first,
                        int16_t *members) {
  int total = 0;
  const int groups = tokens - prefix;
  if (groups < 0) return;
  for (int t = 0; t <= groups; t++) first[t] = 0;
  for (int p = 0; p < patches; p++)
    if (owner[p] >= prefix && owner[p] < tokens) first[owner[p] - prefix]++;
  for (int g = 0; g < groups; g++) { /* first[g] = end of group g */
    total += first[g];
    first[g] = (int16_t)total;
  }
  for (int p = patches - 1; p >= 0; p--)
    if (owner[p] >= prefix && owner[p] < tokens) members[--first[owner[p] - prefix]] = (int16_t)p;
  first[groups] = (int16_t)total;
}

void vit_trace_stage(const int *owner, int patches, int tokens, int16_t *first,
                     int16_t *members) {
  vit_trace_stage_np(owner, patches, tokens, 1, first, members);
}
