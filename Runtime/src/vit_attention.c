/*
 * vit_attention.c: layer 4 of the runtime, multi-head attention (vit_attention_f32) and
 * layernorm (vit_layernorm_f32). Attention packs K and V and multiplies with the GEMM layer
 * (vit_pack_panels_f32, vit_gemm_panels_f32: vit_gemm.c, layer 3), takes its row softmax from
 * vit_math.c (vit_softmax_row_f32, layer 2) and runs its tasks on the thread pool
 * (vit_threads.c, layer 1). Layernorm is portable C on its own. No kernel allocates or prints.
 */
#include "vit_attention.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vit_gemm.h"
#include "vit_math.h"
#include "vit_threads.h"

/* ---- layernorm -------------------------------------------------------------------------- */

void vit_layernorm_f32(const float *x, int rows, int c, const float *restrict w,
                       const float *restrict b, float eps, float *y) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * c;
    float *yr = y + (size_t)r * c;
    /* Two passes in double, four partial sums each (a fixed order). */
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int j = 0;
    for (; j + 4 <= c; j += 4) {
      s0 += xr[j];
      s1 += xr[j + 1];
      s2 += xr[j + 2];
      s3 += xr[j + 3];
    }
    for (; j < c; j++) s0 += xr[j];
    const double mean = ((s0 + s1) + (s2 + s3)) / c;
    s0 = s1 = s2 = s3 = 0;
    for (j = 0; j + 4 <= c; j += 4) {
      const double d0 = xr[j] - mean, d1 = xr[j + 1] - mean;
      const double d2 = xr[j + 2] - mean, d3 = xr[j + 3] - mean;
      s0 += d0 * d0;
      s1 += d1 * d1;
      s2 += d2 * d2;
      s3 += d3 * d3;
    }
    for (; j < c; j++) {
      const double d = xr[j] - mean;
      s0 += d * d;
    }
    const double var = ((s0 + s1) + (s2 + s3)) / c;
    const double rstd = 1.0 / sqrt(var + (double)eps);
    for (j = 0; j < c; j++) {
      float t = (float)((xr[j] - mean) * rstd);
      if (w) t *= w[j];
      if (b) t += b[j];
      yr[j] = t;
    }
  }
}

/* ---- attention -------------------------------------------------------------------------- */


struct vit_attention_job {
  const float *qkv;
  int n, heads, d, C;
  float scale;
  const float *key_bias;
  float *cls_attn, *out;
  float *kp, *vp, *tiles; /* packed keys [heads][kp_size], values [heads][vp_size], score tiles */
  size_t kp_size, vp_size, tile_size, lds;
  int row_tiles;
};

/* Phase 1, task 2h: pack head h's keys as W = K ([n][d]); task 2h+1: its values as
   W = Vᵀ ([d][n]), so that scores = Q·Kᵀ and context = P·V are both x·Wᵀ. */
static void vit_attention_pack_task(void *ctx, int task, int thread) {
  (void)thread;
  const struct vit_attention_job *j = ctx;
  const int h = task / 2;
  const size_t ld = (size_t)3 * j->C;
  if (task % 2 == 0) {
    vit_pack_panels_f32(j->qkv + j->C + (size_t)h * j->d, ld, 1, j->n, j->d, 0,
                        (j->n + VIT_NR - 1) / VIT_NR, j->kp + h * j->kp_size);
  } else {
    vit_pack_panels_f32(j->qkv + 2 * (size_t)j->C + (size_t)h * j->d, 1, ld, j->d, j->n, 0,
                        (j->d + VIT_NR - 1) / VIT_NR, j->vp + h * j->vp_size);
  }
}

/* Phase 2: one head, one tile of up to VIT_ATTENTION_ROWS query rows. */
static void vit_attention_rows_task(void *ctx, int task, int thread) {
  const struct vit_attention_job *j = ctx;
  const int h = task / j->row_tiles;
  const int i0 = task % j->row_tiles * VIT_ATTENTION_ROWS;
  const int rows = j->n - i0 < VIT_ATTENTION_ROWS ? j->n - i0 : VIT_ATTENTION_ROWS;
  const size_t ld = (size_t)3 * j->C;
  float *s = j->tiles + (size_t)thread * j->tile_size; /* [rows][lds] */

  /* scores = q · kᵀ */
  vit_gemm_panels_f32(j->qkv + (size_t)i0 * ld + (size_t)h * j->d, ld, rows, j->d,
                      j->kp + h * j->kp_size, j->n, 0, (j->n + VIT_NR - 1) / VIT_NR, NULL,
                      VIT_EPI_NONE, NULL, 0, s, j->lds);
  for (int r = 0; r < rows; r++)
    vit_softmax_row_f32(s + (size_t)r * j->lds, j->n, j->scale, j->key_bias);
  if (i0 == 0 && j->cls_attn)
    memcpy(j->cls_attn + (size_t)h * j->n, s, (size_t)j->n * sizeof(float));
  /* context = p · v */
  vit_gemm_panels_f32(s, j->lds, rows, j->n, j->vp + h * j->vp_size, j->d, 0,
                      (j->d + VIT_NR - 1) / VIT_NR, NULL, VIT_EPI_NONE, NULL, 0,
                      j->out + (size_t)i0 * j->C + (size_t)h * j->d, (size_t)j->C);
}

void vit_attention_f32(const float *restrict qkv, int n, int heads, int head_dim, float scale,
                       const float *key_bias, float *restrict cls_attn, float *restrict scratch,
                       float *restrict out) {
  if (n <= 0 || heads <= 0 || head_dim <= 0) return;
  struct vit_attention_job j;
  j.qkv = qkv;
  j.n = n;
  j.heads = heads;
  j.d = head_dim;
  j.C = heads * head_dim;
  j.scale = scale;
  j.key_bias = key_bias;
  j.cls_attn = cls_attn;
  j.out = out;
  j.kp_size = VIT_PACKED_FLOATS(n, head_dim);
  j.vp_size = VIT_PACKED_FLOATS(head_dim, n);
  j.lds = VIT_PACKED_FLOATS(n, 1);
  j.tile_size = VIT_ATTENTION_ROWS * j.lds;
  j.row_tiles = (n + VIT_ATTENTION_ROWS - 1) / VIT_ATTENTION_ROWS;
  /* 64-byte align (the header's size includes 16 floats of slack for this). */
  float *base = scratch + ((64 - (uintptr_t)scratch % 64) % 64) / sizeof(float);
  j.kp = base;
  j.vp = j.kp + (size_t)heads * j.kp_size;
  j.tiles = j.vp + (size_t)heads * j.vp_size;

  /* At most one thread per ~1 MFLOP. */
  int threads = vit_get_threads();
  const double flops = 4.0 * n * n * j.C;
  if (flops < threads * 1e6) threads = (int)(flops / 1e6) + 1;
  vit_parallel_for(vit_attention_pack_task, &j, 2 * heads, threads);
  vit_parallel_for(vit_attention_rows_task, &j, heads * j.row_tiles, threads);
}


/* ---- conv2d (LV-ViT's stem) ------------------------------------------------------------- */

struct vit_conv_job {
  const float *x, *w, *bias;
  float *packed, *y;
  int ci, h, wd, co, k, stride, pad, wo, field;
  int oy0, pixels; /* the band: first output row, output pixels in it */
  size_t ldy;      /* ho * wo */
};

/* One panel of 16 output pixels of the band: its im2col columns written straight into the
   GEMM's panel layout (packed[kk][16], kk = (c*k + ky)*k + kx), then that panel of the output
   for every channel, y[o][pixel] = sum_kk W[o][kk] * column[kk][pixel] (+ bias[o]). */
static void vit_conv_panel_task(void *ctx, int p, int thread) {
  (void)thread;
  const struct vit_conv_job *j = ctx;
  float *dst = j->packed + (size_t)p * j->field * VIT_NR;
  int iy0[VIT_NR], ix0[VIT_NR], valid = 0, interior = 1;
  for (int t = 0; t < VIT_NR; t++) {
    const int q = p * VIT_NR + t;
    if (q >= j->pixels) {
      iy0[t] = ix0[t] = 0;
      interior = 0;
      continue;
    }
    valid++;
    iy0[t] = (j->oy0 + q / j->wo) * j->stride - j->pad;
    ix0[t] = q % j->wo * j->stride - j->pad;
    if (iy0[t] < 0 || iy0[t] + j->k > j->h || ix0[t] < 0 || ix0[t] + j->k > j->wd) interior = 0;
  }
  /* 16 pixels of one output row, stride 1, every window inside the map: each tap's 16 values
     are 16 consecutive input floats. */
  const int run = interior && j->stride == 1 && iy0[0] == iy0[VIT_NR - 1];
  for (int c = 0; c < j->ci; c++) {
    const float *xc = j->x + (size_t)c * j->h * j->wd;
    for (int ky = 0; ky < j->k; ky++) {
      for (int kx = 0; kx < j->k; kx++) {
        float *d = dst + ((size_t)(c * j->k + ky) * j->k + kx) * VIT_NR;
        if (run) {
          memcpy(d, xc + (size_t)(iy0[0] + ky) * j->wd + ix0[0] + kx, VIT_NR * sizeof(float));
        } else if (interior) {
          for (int t = 0; t < VIT_NR; t++) d[t] = xc[(size_t)(iy0[t] + ky) * j->wd + ix0[t] + kx];
        } else {
          for (int t = 0; t < VIT_NR; t++) {
            const int iy = iy0[t] + ky, ix = ix0[t] + kx;
            d[t] = t < valid && iy >= 0 && iy < j->h && ix >= 0 && ix < j->wd ? xc[(size_t)iy * j->wd + ix] : 0.0f;
          }
        }
      }
    }
  }
  float *y = j->y + (size_t)j->oy0 * j->wo;
  vit_gemm_panels_f32(j->w, (size_t)j->field, j->co, j->field, j->packed, j->pixels, p, p + 1, NULL,
                      VIT_EPI_NONE, NULL, 0, y, j->ldy);
  if (j->bias) {
    for (int o = 0; o < j->co; o++)
      for (int t = 0; t < valid; t++) y[(size_t)o * j->ldy + p * VIT_NR + t] += j->bias[o];
  }
}

void vit_conv2d_f32(const float *restrict x, int ci, int h, int w, const float *restrict weight,
                    const float *restrict bias, int co, int k, int stride, int pad, int band_rows,
                    float *restrict scratch, float *restrict y) {
  struct vit_conv_job j;
  j.x = x;
  j.w = weight;
  j.bias = bias;
  j.y = y;
  j.ci = ci;
  j.h = h;
  j.wd = w;
  j.co = co;
  j.k = k;
  j.stride = stride;
  j.pad = pad;
  j.wo = (w + 2 * pad - k) / stride + 1;
  j.field = ci * k * k;
  const int ho = (h + 2 * pad - k) / stride + 1;
  j.ldy = (size_t)ho * j.wo;
  j.packed = scratch + ((64 - (uintptr_t)scratch % 64) % 64) / sizeof(float);
  for (j.oy0 = 0; j.oy0 < ho; j.oy0 += band_rows) {
    const int rows = j.oy0 + band_rows <= ho ? band_rows : ho - j.oy0;
    j.pixels = rows * j.wo;
    vit_parallel_for(vit_conv_panel_task, &j, (j.pixels + VIT_NR - 1) / VIT_NR, vit_get_threads());
  }
}
