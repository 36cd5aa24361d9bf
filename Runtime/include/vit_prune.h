/*
 * vit_prune.h: the token-pruning kernels that emitted models call (DynamicViT, EViT, AS-ViT,
 * BAT, ToMe). Semantics: ../shared/SEMANTICS.md and docs/methods.md; each function here is the
 * C form of one IR op of the same name (Sources/VitIR/OpKind.swift).
 *
 * Conventions.
 * - n is the current token count including the cls token (row 0); c the width; rows are
 *   row-major [n][c]. "Patch tokens" are rows 1 .. n-1; scores s[j] belong to row 1+j.
 * - Prefix tokens (docs/graph-format.md, "Token layout"): a model may lead its sequence with
 *   another number of tokens than the one cls token (none; cls and distillation: 2). Each
 *   kernel that reads rows as tokens has an _np form taking `prefix`, the rows before the patch
 *   tokens: rows 0 .. prefix-1 are never scored, dropped, merged or moved, patch tokens are rows
 *   prefix .. n-1, s[j] belongs to row prefix+j, and every count in the descriptions below
 *   that says n-1 is n-prefix. The plain form is the _np form with prefix = 1.
 * - owner [patches]: for each original patch p (0 .. patches-1, row-major over the patch grid)
 *   the row of the current sequence that stands for it (1 .. n-1), or -1 once it is dropped.
 *   Every token-rewriting kernel reads owner_in and writes owner_out; they may be the same
 *   pointer.
 * - Selection ties always go to the lower current index; nothing depends on the thread count.
 * - No malloc, no stdio. Scratch is passed in; its size is given by a macro of the static
 *   bounds (a constant expression), so emitted code can declare it statically. Float scratch
 *   needs only float alignment: the kernels put their doubles from its first 8-byte boundary
 *   on, and every macro counts the one float this may skip.
 * - Scores, distances and densities are accumulated in double; the merged rows in double, then
 *   rounded to float once. A mean written (1/m) * sum is the double sum in index order divided
 *   by m. Cosine similarity is cos(a, b) = a·b / sqrt((a·a)(b·b)) (so identical rows give
 *   exactly 1 and tie exactly, whatever the summation order), and 0 if either row is all zero.
 */
#ifndef VIT_PRUNE_H
#define VIT_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- scores ----------------------------------------------------------------------------- */

/* EViT/BAT score: post-softmax attention of query row 0, averaged over heads, for the non-cls
   keys: s[j] = (1/heads) * sum_h softmax_t(q_h[0]·k_h[t]·scale)[1+j], j = 0 .. n-2 (the
   softmax runs over all n keys t, cls included, max-subtracted; the head sum runs h = 0, 1, ..
   then is divided by heads). qkv [n][3C] in timm's layout (q col h*d+j, k col C+h*d+j).
   scratch: VIT_CLS_ATTENTION_SCRATCH_FLOATS(n) floats (two rows of n doubles: one softmax
   row, the head sum). s [n-1]. */
#define VIT_CLS_ATTENTION_SCRATCH_FLOATS(n) ((size_t)4 * (size_t)(n) + 2)
void vit_cls_attention_f32(const float *qkv, int n, int heads, int head_dim, float scale,
                           float *scratch, float *s);
/* prefix >= 1 (row 0 is the cls token whose query is read); s [n-prefix]. */
void vit_cls_attention_np_f32(const float *qkv, int n, int prefix, int heads, int head_dim,
                              float scale, float *scratch, float *s);

/* AS-ViT score (SEMANTICS §4.2): with A_h the post-softmax cls-query row of head h as above and
   context [n][C] the merged per-head context (column h*d+j = (A_h·v_h)[t][j]):
   imp_h[t] = ||context[t][h*d .. h*d+d)||_2, R_h[t] = imp_h[t] / (sum_h' imp_h'[t] + 1e-8),
   s[j] = sum_h A_h[0][1+j] * R_h[1+j], j = 0 .. n-2.
   scratch: VIT_ASVIT_SCORES_SCRATCH_FLOATS(n, heads) floats (three rows of n doubles: one
   softmax row, the sum over heads of imp, the score sum; heads is not used). s [n-1]. */
#define VIT_ASVIT_SCORES_SCRATCH_FLOATS(n, heads) ((size_t)6 * (size_t)(n) + 2)
void vit_asvit_scores_f32(const float *qkv, const float *context, int n, int heads, int head_dim,
                          float scale, float *scratch, float *s);
void vit_asvit_scores_np_f32(const float *qkv, const float *context, int n, int prefix,
                             int heads, int head_dim, float scale, float *scratch, float *s);

/* DynamicViT predictor, the part between in_conv and out_conv (SEMANTICS §2.3): u [m][c] ->
   y [m][c] with y[i][j] = u[i][j] for j < c/2 and y[i][j] = (1/m) * sum_r u[r][j] for j >= c/2
   (the mean in double, rows in order). y must not overlap u. */
void vit_dyvit_mix_f32(const float *u, int m, int c, float *y);

/* DynamicViT keep score: s[i] = log_softmax(l[i][0..1])[0], computed as PyTorch does:
   mx = max(l0, l1); s = (l0 - mx) - log(exp(l0 - mx) + exp(l1 - mx)). l [m][2], s [m]. */
void vit_keep_score_f32(const float *l, int m, float *s);

/* ToMe metric: keys averaged over heads, metric[t][j] = (1/heads) * sum_h qkv[t][C + h*d + j],
   t < n, j < d. metric [n][d]. */
void vit_tome_metric_f32(const float *qkv, int n, int heads, int head_dim, float *metric);

/* ---- selection -------------------------------------------------------------------------- */

/* The k largest of s[0 .. m-1] (1 <= k <= m), in descending score order, equal scores in
   ascending index order (a stable descending sort). idx [k]. */
void vit_topk_keep_f32(const float *s, int m, int k, int *idx);

/* AS-ViT: the indices j with s[j] > theta (strictly), ascending; returns their count (0 .. m).
   idx [m]. */
int vit_threshold_keep_f32(const float *s, int m, float theta, int *idx);

/* ---- token rewriting -------------------------------------------------------------------- */

/* y = [x[0]; x[1 + keep[0]]; ...; x[1 + keep[k-1]]], y [k+1][c]. owner: a patch of row
   1 + keep[i] moves to row 1 + i; patches of rows not kept become -1.
   iscratch: n ints. y must not overlap x. */
void vit_gather_tokens_f32(const float *x, int n, int c, const int *keep, int k,
                           const int *owner_in, int patches, int *owner_out, int *iscratch,
                           float *y);
void vit_gather_tokens_np_f32(const float *x, int n, int prefix, int c, const int *keep, int k,
                              const int *owner_in, int patches, int *owner_out, int *iscratch,
                              float *y);

/* EViT with fusion: as vit_gather_tokens_f32, plus row k+1 = sum over the dropped j (the
   complement of keep in 0 .. n-2, in ascending j) of s[j] * x[1+j] (not normalised; 0 when
   nothing is dropped). y [k+2][c]. Patches of dropped rows move to row k+1.
   iscratch: n ints. y must not overlap x. */
void vit_gather_fuse_tokens_f32(const float *x, int n, int c, const int *keep, int k,
                                const float *s, const int *owner_in, int patches, int *owner_out,
                                int *iscratch, float *y);
void vit_gather_fuse_tokens_np_f32(const float *x, int n, int prefix, int c, const int *keep,
                                   int k, const float *s, const int *owner_in, int patches,
                                   int *owner_out, int *iscratch, float *y);

/* BAT (docs/methods.md, SEMANTICS §5.3) with k attentive tokens (the top-k of s, descending,
   ties lower index), M = n-1-k inattentive ones (ascending index), `clusters` = n_c
   (0 <= n_c <= M; n_c = 0 only when M = 0) and `pairs` = n_p (0 <= n_p <= k/2):
   - pairs: greedy disjoint matching on the cosine similarity of the attentive tokens' rows
     (diagonal excluded), largest first, ties to the lexicographically smallest (i, j) in
     attentive order (i < j); a pair merges as (s_i x_i + s_j x_j) / (s_i + s_j + 1e-6);
   - clusters: DPC-kNN on the inattentive rows: D = Euclidean distance / sqrt(c);
     rho_i = exp(-mean of the kk = min(5, M) smallest D_ij^2 over j, itself included);
     delta_i = min D_ij over j denser than i (rho_j > rho_i, or rho_j == rho_i and j < i), or,
     for a token with no denser one, max_j D_ij; centres = top-n_c of rho*delta (ties to the
     lower index), in that rank order; every token joins its nearest centre (first minimum in
     centre-rank order), a centre joins itself; a cluster merges as
     sum s_j x_j / (sum s_j + 1e-6);
   - y = [x[0]; merged pairs in selection order;
     unpaired attentive rows in descending s; cluster rows in centre-rank order].
   Returns the rows written, 1 + (k - n_p) + n_c. owner follows every row to where it went.
   scratch: VIT_BAT_SCRATCH_FLOATS(n, c) floats;
   iscratch: VIT_BAT_SCRATCH_INTS(n) ints. y must not overlap x. */
#define VIT_BAT_SCRATCH_FLOATS(n, c) \
  ((size_t)4 * (size_t)(n) * (size_t)(n) + (size_t)16 * (size_t)(n) + (size_t)(n) * (size_t)(c) + 16)
#define VIT_BAT_SCRATCH_INTS(n) ((size_t)8 * (size_t)(n) + 16)
int vit_bat_merge_f32(const float *x, int n, int c, const float *s, int k, int clusters,
                      int pairs, const int *owner_in, int patches, int *owner_out,
                      float *scratch, int *iscratch, float *y);
int vit_bat_merge_np_f32(const float *x, int n, int prefix, int c, const float *s, int k,
                         int clusters, int pairs, const int *owner_in, int patches,
                         int *owner_out, float *scratch, int *iscratch, float *y);

/* ToMe bipartite soft matching with the cls token protected (SEMANTICS §6.3), merging r
   tokens (the caller passes r_eff = min(r, (n-1)/2) >= 1; a larger r is clamped to (n-1)/2,
   r <= 0 copies x, size and owner unchanged). metric [n][d] (vit_tome_metric_f32),
   size [n] (patches per token, cls 1). a = even rows (a[0] = cls), b = odd rows; scores =
   cos(a_i, b_j) with the cls row at -inf; node_max/node_idx = max over j (first index among
   ties); the r a-rows of largest node_max (descending, ties lower index) merge into their
   node_idx b-row by size-weighted average; y = [unmerged a-rows ascending; all b-rows in
   order] / their sizes, size_out the summed sizes. y [n-r][c], size_out [n-r].
   scratch: VIT_TOME_SCRATCH_FLOATS(n, c, d) floats; iscratch: VIT_TOME_SCRATCH_INTS(n) ints. */
#define VIT_TOME_SCRATCH_FLOATS(n, c, d) \
  ((size_t)6 * (size_t)(n) + (size_t)(n) * (size_t)(d) + (size_t)2 * (size_t)(c) + 16)
#define VIT_TOME_SCRATCH_INTS(n) ((size_t)4 * (size_t)(n) + 16)
void vit_bipartite_merge_f32(const float *x, const float *metric, const float *size, int n,
                             int c, int d, int r, const int *owner_in, int patches,
                             int *owner_out, float *scratch, int *iscratch, float *y,
                             float *size_out);
/* With `prefix` rows protected: the split stays by row parity (a = even rows, b = odd rows, as
   ToMe splits the whole sequence); a-rows before `prefix` are never sources, b-rows before it
   never destinations; y = [x[0 .. prefix); unmerged patch a-rows ascending; patch b-rows];
   r is clamped to (n-prefix)/2. With prefix = 1 this is the function above. */
void vit_bipartite_merge_np_f32(const float *x, const float *metric, const float *size, int n,
                                int prefix, int c, int d, int r, const int *owner_in,
                                int patches, int *owner_out, float *scratch, int *iscratch,
                                float *y, float *size_out);

/* ---- trace ------------------------------------------------------------------------------ */

/* One stage of the trace (docs/trace-format.md) from owner: for each non-cls row t = 1 ..
   tokens-1, members[first[t-1] .. first[t]) are the patches p with owner[p] == t, ascending.
   Owners outside 1 .. tokens-1 (-1) are left out. first [tokens] (first[0] = 0),
   members [patches]; tokens >= 1. */
void vit_trace_stage(const int *owner, int patches, int tokens, int16_t *first,
                     int16_t *members);
/* The same for rows t = prefix .. tokens-1, group t-prefix: first [tokens-prefix+1]. */
void vit_trace_stage_np(const int *owner, int patches, int tokens, int prefix, int16_t *first,
                        int16_t *members);

#ifdef __cplusplus
}
#endif

#endif /* VIT_PRUNE_H */
