/*
 * vitc's standalone driver: the only file of a compiled model that does I/O.
 *
 * Loads an image (PPM P6/P3, 8-bit) and preprocesses it exactly as the Swift interpreter
 * does (Sources/VitFrontend: torchvision Resize(floor(S / crop_pct), bicubic) with Pillow's
 * fixed-point resampler, CenterCrop(S), ToTensor, Normalize, with the graph's settings), or
 * reads a raw float32 tensor; runs the model; or measures accuracy on an evaluation set;
 * prints the top classes; optionally writes the logits, the trace (docs/trace-format.md) and
 * latency statistics. Bad input: one message on stderr, exit status 2.
 *
 * This file is the driver body every model shares, byte for byte; it is not compiled on its
 * own. vitc writes a <stem>_main.c beside each model that defines the model's glue
 * (VIT_MODEL_HEADER, VIT_MODEL_RUN, VIT_MODEL_INPUT_FLOATS, ..., vit_model_labels) and then
 * includes this file, so several models compiled into one folder each build from their own
 * <stem>_main.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef VIT_FUZZ_READERS /* Fuzz/ppm_c.c and Fuzz/evalset_c.c compile the readers alone (docs/reliability.md) */
#ifndef VIT_MODEL_HEADER
#error "main.c is the shared driver body: compile the model's <stem>_main.c, which includes it"
#endif
#include VIT_MODEL_HEADER
#include "vit_runtime.h"
#ifdef VIT_MODEL_LOAD_WEIGHTS
#include "vit_weights.h"
#endif
#endif
#ifndef VIT_MODEL_PREFIX_TOKENS /* rows before the patch tokens: the trace groups start after them */
#define VIT_MODEL_PREFIX_TOKENS 1
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h> /* isatty, for --eval's progress line; stat, mkstemp, fsync for the outputs */
#define VIT_HAVE_POSIX_FILES 1
#endif

#if (defined(VIT_MODEL_WEIGHTS_AT_RUNTIME) || defined(VIT_MODEL_LOAD_WEIGHTS)) && (defined(__unix__) || defined(__APPLE__))
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define VIT_HAVE_MMAP 1
#endif

#define EXIT_BAD_INPUT 2

/* Bad input: one line, then exit. The atexit handler main() installs (driver_exit) frees what
   the driver still owns, removes a half-written output and joins the worker threads. */
static void fail(const char *path, const char *message) {
  fprintf(stderr, "%s: error: %s\n", path, message);
  exit(EXIT_BAD_INPUT);
}

/* ---- what the driver owns: released on every exit ------------------------------------------ */

/* Every buffer this file allocates is listed in driver_owned until it is freed; so is the file
   open for reading and the temporary file being written. driver_release() frees, closes and
   removes whatever is left, so no exit, good or bad, leaves memory or a partial file behind
   (valgrind --errors-for-leak-kinds=all, docs/reliability.md). At most 32 buffers are alive at
   once (run_eval with a resize in flight holds 11). */
#define VIT_DRIVER_MAX_OWNED 32
static void *driver_owned[VIT_DRIVER_MAX_OWNED];
static FILE *driver_reading, *driver_writing;
static char driver_temp[4200]; /* the temporary output being written, "" if none */

/* Lists p (NULL: fails naming `what`) as owned by the driver; returns it. */
static void *owned(void *p, const char *what) {
  if (!p) fail(what, "out of memory");
  for (int i = 0; i < VIT_DRIVER_MAX_OWNED; i++)
    if (!driver_owned[i]) return driver_owned[i] = p;
  abort(); /* more than VIT_DRIVER_MAX_OWNED buffers at once: a bug of this file */
}

static void *owned_malloc(size_t size, const char *what) { return owned(malloc(size ? size : 1), what); }

static void owned_free(void *p) {
  if (!p) return;
  for (int i = 0; i < VIT_DRIVER_MAX_OWNED; i++)
    if (driver_owned[i] == p) driver_owned[i] = NULL;
  free(p);
}

static void *owned_realloc(void *p, size_t size, const char *what) {
  int slot = 0; /* found before realloc: p may not be read after it (gcc -Wuse-after-free) */
  while (slot < VIT_DRIVER_MAX_OWNED && driver_owned[slot] != p) slot++;
  if (slot == VIT_DRIVER_MAX_OWNED) abort(); /* p is not the driver's: a bug of this file */
  void *bigger = realloc(p, size);
  if (!bigger) fail(what, "out of memory"); /* p is still listed, and freed on exit */
  return driver_owned[slot] = bigger;
}

/* ---- files ------------------------------------------------------------------------------ */

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *f = driver_reading = fopen(path, "rb");
  if (!f) fail(path, errno == ENOENT ? "no such file" : strerror(errno));
  size_t capacity = 1 << 20, length = 0;
  unsigned char *data = owned_malloc(capacity, path);
  for (;;) {
    size_t got = fread(data + length, 1, capacity - length, f);
    length += got;
    if (length < capacity) break;
    capacity *= 2;
    data = owned_realloc(data, capacity, path);
  }
  if (ferror(f)) fail(path, errno == EISDIR ? "is a directory" : "read error");
  driver_reading = NULL;
  fclose(f);
  *size = length;
  return data;
}


#if defined(VIT_MODEL_WEIGHTS_AT_RUNTIME) || defined(VIT_MODEL_LOAD_WEIGHTS)
/* A weights file whole in memory: mapped where the system has mmap (the pages stay shared with
   the page cache), else read into 64-byte aligned memory the driver owns. NULL when empty. */
static const unsigned char *map_file(const char *path, size_t *size) {
#ifdef VIT_HAVE_MMAP
  int fd = open(path, O_RDONLY);
  if (fd < 0) fail(path, errno == ENOENT ? "no such file" : strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) fail(path, strerror(errno));
  if (S_ISDIR(st.st_mode)) fail(path, "is a directory");
  *size = (size_t)st.st_size;
  void *mapped = NULL;
  if (*size > 0) {
    mapped = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) fail(path, strerror(errno));
  }
  close(fd);
  return mapped;
#else
  unsigned char *data = read_file(path, size);
  unsigned char *aligned = NULL;
  if (*size > 0) {
    aligned = owned(aligned_alloc(64, (*size + 63) / 64 * 64), path); /* freed on exit or by unmap_file */
    memcpy(aligned, data, *size);
  }
  owned_free(data);
  return aligned;
#endif
}

#ifdef VIT_MODEL_LOAD_WEIGHTS
/* Gives back what map_file returned. */
static void unmap_file(const unsigned char *file, size_t size) {
#ifdef VIT_HAVE_MMAP
  if (file) munmap((void *)file, size);
#else
  (void)size;
  owned_free((void *)file);
#endif
}
#endif
#endif

#ifdef VIT_MODEL_WEIGHTS_AT_RUNTIME
/* The weights file (docs/weights-file.md), mapped, checked and bound in place. */
static void load_weights(const char *path) {
  size_t size = 0;
  const unsigned char *file = map_file(path, &size);
  static const char *const reasons[] = {
      "",
      "not a vitc weights file (no VITCWTS header)",
      "a weights file format this binary does not read",
      "the weights of another model",
      "truncated: shorter than its header says",
      "a weights blob of another size than this model's",
      "corrupt: its checksum does not match its contents",
      "intact, but not the weights this binary was built with (rebuild, or use the file vitc build wrote with it)",
      "not 64-byte aligned in memory",
  };
  const int status = size == 0 ? 1 : VIT_MODEL_BIND_WEIGHTS(file, size);
  if (status != 0) fail(path, reasons[status > 0 && status < (int)(sizeof reasons / sizeof *reasons) ? status : 1]);
}
#endif
#ifdef VIT_MODEL_LOAD_WEIGHTS
static double now_ms(void);

/* What loading the weights cost, for --bench: the whole (map, read, check, convert, pack) and
   the loader's parts. */
static double load_total_ms;
static struct vit_weights_report load_report;
static size_t load_file_bytes;

/* The user's weights (a safetensors file, or a vitc weights file of this model's layout):
   mapped, checked, converted and packed into the model's static memory by the model's loader,
   then unmapped (the model keeps its own copy). */
static void load_weights(const char *path) {
  const double start = now_ms();
  size_t size = 0;
  const unsigned char *file = map_file(path, &size);
  static const unsigned char empty[1];
  const int status = VIT_MODEL_LOAD_WEIGHTS(file ? (const void *)file : (const void *)empty, size, &load_report);
  unmap_file(file, size);
  if (status != 0) fail(path, load_report.message);
  if (load_report.unused)
    fprintf(stderr, "%s: warning: %d tensor%s the model does not read: %s\n", path, load_report.unused,
            load_report.unused == 1 ? "" : "s", load_report.unused_names);
  load_total_ms = now_ms() - start;
  load_file_bytes = size;
}
#endif

/* ---- PPM ---------------------------------------------------------------------------------- */

/* The limits Sources/VitFrontend/Image.swift checks too (docs/reliability.md), before anything
   is allocated: at most 2^26 pixels, the longer side at most 16 times the shorter (so the resize
   of the shorter side to the model's size stays bounded). */
#define VIT_PPM_MAX_PIXELS (1LL << 26)
#define VIT_PPM_MAX_ASPECT 16LL

struct image {
  int width, height;
  unsigned char *rgb; /* [height][width][3] */
};

/* Reads one header field (a decimal number, at most 10^6), skipping white space and # comments;
   -1 with `message` set when there is none. */
static long long ppm_field(const unsigned char *data, size_t size, size_t *at, const char *what, char *message, size_t length) {
  for (;;) {
    while (*at < size && (data[*at] == ' ' || data[*at] == '\t' || data[*at] == '\n' || data[*at] == '\r')) (*at)++;
    if (*at < size && data[*at] == '#') {
      while (*at < size && data[*at] != '\n') (*at)++;
      continue;
    }
    break;
  }
  if (*at >= size || data[*at] < '0' || data[*at] > '9') {
    snprintf(message, length, "bad PPM header: expected the %s", what);
    return -1;
  }
  long long value = 0;
  while (*at < size && data[*at] >= '0' && data[*at] <= '9') {
    value = value * 10 + (data[*at] - '0');
    if (value > 1000000) {
      snprintf(message, length, "bad PPM header: the %s is too large", what);
      return -1;
    }
    (*at)++;
  }
  return value;
}

/* Decodes a P6 or P3 image of `size` bytes into `image` (its pixels malloc'ed); NULL, or the
   reason it is refused (in `message`, nothing allocated). Messages are those of Image.swift. */
static const char *ppm_decode(const unsigned char *data, size_t size, struct image *image, char *message, size_t length) {
  image->rgb = NULL;
  if (size < 2 || data[0] != 'P' || (data[1] != '6' && data[1] != '3')) return "not a PPM image (expected the magic number P6 or P3)";
  int binary = data[1] == '6';
  size_t at = 2;
  long long width = ppm_field(data, size, &at, "width", message, length);
  if (width < 0) return message;
  long long height = ppm_field(data, size, &at, "height", message, length);
  if (height < 0) return message;
  long long maxval = ppm_field(data, size, &at, "maximum value", message, length);
  if (maxval < 0) return message;
  if (width == 0 || height == 0) return "bad PPM header: zero width or height";
  if (maxval < 1 || maxval > 255) {
    snprintf(message, length, "maximum value %lld%s: only 8-bit PPM is supported (maximum value 1 to 255)", maxval,
             maxval > 255 && maxval <= 65535 ? " (a 16-bit PPM)" : "");
    return message;
  }
  if (width * height > VIT_PPM_MAX_PIXELS) { /* each at most 10^6: no overflow in a long long */
    snprintf(message, length, "image of %lldx%lld pixels is too large: vitc reads at most %lld pixels", width, height, (long long)VIT_PPM_MAX_PIXELS);
    return message;
  }
  if ((width > height ? width : height) > VIT_PPM_MAX_ASPECT * (width < height ? width : height)) {
    snprintf(message, length, "image of %lldx%lld pixels is too elongated: the longer side may be at most %lld times the shorter", width,
             height, (long long)VIT_PPM_MAX_ASPECT);
    return message;
  }
  size_t count = (size_t)width * (size_t)height * 3;
  size_t available = size > at ? size - at : 0;
  if (binary) {
    at++; /* exactly one white-space character ends the header */
    available = size > at ? size - at : 0;
    if (available < count) {
      snprintf(message, length, "truncated PPM: expected %zu bytes of pixels, found %zu", count, available);
      return message;
    }
  } else if (available < 2 * count - 1) { /* a P3 sample takes a digit and a separator, the last one */
    snprintf(message, length, "truncated PPM: expected %zu bytes of pixels, found %zu", count, (available + 1) / 2);
    return message;
  }
  unsigned char *rgb = malloc(count);
  if (!rgb) return "out of memory";
  for (size_t i = 0; i < count; i++) {
    long long v;
    if (binary) {
      v = data[at + i];
    } else {
      v = ppm_field(data, size, &at, "sample", message, length);
      if (v < 0) {
        snprintf(message, length, "PPM sample %zu: missing or not a number (truncated P3 data?)", i);
        free(rgb);
        return message;
      }
    }
    if (v > maxval) {
      snprintf(message, length, "PPM sample %zu: %lld is above the maximum %lld", i, v, maxval);
      free(rgb);
      return message;
    }
    rgb[i] = (unsigned char)v;
  }
  if (maxval != 255)
    for (size_t i = 0; i < count; i++) rgb[i] = (unsigned char)((rgb[i] * 255 + maxval / 2) / maxval);
  image->width = (int)width;
  image->height = (int)height;
  image->rgb = rgb;
  return NULL;
}

static struct image read_ppm(const char *path) {
  size_t size;
  unsigned char *data = read_file(path, &size);
  struct image image;
  char message[256];
  const char *error = ppm_decode(data, size, &image, message, sizeof message);
  owned_free(data);
  if (error) fail(path, error);
  owned(image.rgb, path); /* ppm_decode uses malloc, for Fuzz/ppm_c.c */
  return image;
}

/* ---- Pillow's bicubic resize (libImaging/Resample.c, 8 bits per channel) ------------------- */

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/* Coefficients of each output pixel over the input, as fixed-point integers. Returns ksize. */
static int precompute(int in_size, int out_size, int **bounds_out, int32_t **kk_out) {
  double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 2.0 * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  double *prekk = owned_malloc(sizeof(double) * out_size * ksize, "resize");
  int *bounds = owned_malloc(sizeof(int) * out_size * 2, "resize");
  int32_t *kk = owned_malloc(sizeof(int32_t) * out_size * ksize, "resize");
  for (int xx = 0; xx < out_size; xx++) {
    double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double *k = &prekk[xx * ksize];
    int x;
    for (x = 0; x < xmax; x++) {
      double w = bicubic((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (x = 0; x < xmax; x++)
      if (ww != 0.0) k[x] /= ww;
    for (; x < ksize; x++) k[x] = 0;
    bounds[xx * 2 + 0] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  for (int i = 0; i < out_size * ksize; i++)
    kk[i] = prekk[i] < 0 ? (int32_t)(-0.5 + prekk[i] * (1 << PRECISION_BITS)) : (int32_t)(0.5 + prekk[i] * (1 << PRECISION_BITS));
  owned_free(prekk);
  *bounds_out = bounds;
  *kk_out = kk;
  return ksize;
}

static unsigned char clip8(int32_t v) {
  v >>= PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : (unsigned char)v;
}

static struct image resize_bicubic(struct image in, int width, int height) {
  int *bounds_h, *bounds_v;
  int32_t *kk_h, *kk_v;
  int ksize_h = precompute(in.width, width, &bounds_h, &kk_h);
  int ksize_v = precompute(in.height, height, &bounds_v, &kk_v);
  int need_h = width != in.width, need_v = height != in.height;
  int first = bounds_v[0], last = bounds_v[height * 2 - 2] + bounds_v[height * 2 - 1];
  struct image current = in;
  if (need_h) {
    for (int i = 0; i < height; i++) bounds_v[i * 2] -= first;
    struct image t = {width, last - first, owned_malloc((size_t)width * (last - first) * 3, "resize")};
    for (int yy = 0; yy < t.height; yy++)
      for (int xx = 0; xx < width; xx++) {
        int xmin = bounds_h[xx * 2], xmax = bounds_h[xx * 2 + 1];
        const int32_t *k = &kk_h[xx * ksize_h];
        for (int c = 0; c < 3; c++) {
          int32_t ss = 1 << (PRECISION_BITS - 1);
          for (int x = 0; x < xmax; x++) ss += in.rgb[((size_t)(yy + first) * in.width + x + xmin) * 3 + c] * k[x];
          t.rgb[((size_t)yy * width + xx) * 3 + c] = clip8(ss);
        }
      }
    current = t;
  }
  if (need_v) {
    struct image t = {current.width, height, owned_malloc((size_t)current.width * height * 3, "resize")};
    for (int yy = 0; yy < height; yy++) {
      int ymin = bounds_v[yy * 2], ymax = bounds_v[yy * 2 + 1];
      const int32_t *k = &kk_v[yy * ksize_v];
      for (int xx = 0; xx < current.width; xx++)
        for (int c = 0; c < 3; c++) {
          int32_t ss = 1 << (PRECISION_BITS - 1);
          for (int y = 0; y < ymax; y++) ss += current.rgb[((size_t)(y + ymin) * current.width + xx) * 3 + c] * k[y];
          t.rgb[((size_t)yy * current.width + xx) * 3 + c] = clip8(ss);
        }
    }
    if (current.rgb != in.rgb) owned_free(current.rgb);
    current = t;
  }
  owned_free(bounds_h);
  owned_free(bounds_v);
  owned_free(kk_h);
  owned_free(kk_v);
  if (current.rgb == in.rgb) { /* no pass needed: copy, so the caller owns one buffer */
    struct image t = {in.width, in.height, owned_malloc((size_t)in.width * in.height * 3, "resize")};
    memcpy(t.rgb, in.rgb, (size_t)in.width * in.height * 3);
    current = t;
  }
  return current;
}

/* Python's round(x / 2.0) for torchvision's CenterCrop: half to even. */
static int half_to_even_half(int d) {
  int k = d / 2;
  return (d % 2 == 0 || k % 2 == 0) ? k : k + 1;
}

/* timm's evaluation transform with the graph's settings (VIT_MODEL_MEAN, _STD, _CROP_PCT from
   its 'preprocess' line, DeiT's by default): Resize(floor(crop / crop_pct), bicubic),
   CenterCrop(crop), ToTensor, Normalize: CHW floats. */
static void preprocess(struct image image, int crop, float *out) {
  int size = (int)floor(crop / VIT_MODEL_CROP_PCT);
  int width, height;
  if (image.width <= image.height) {
    width = size;
    height = (int)((double)size * image.height / image.width);
  } else {
    height = size;
    width = (int)((double)size * image.width / image.height);
  }
  struct image resized = resize_bicubic(image, width, height);
  int top = half_to_even_half(height - crop), left = half_to_even_half(width - crop);
  static const float mean[3] = VIT_MODEL_MEAN, std[3] = VIT_MODEL_STD;
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < crop; y++)
      for (int x = 0; x < crop; x++) {
        float v = (float)resized.rgb[((size_t)(y + top) * width + x + left) * 3 + c] / 255.0f;
        out[((size_t)c * crop + y) * crop + x] = (v - mean[c]) / std[c];
      }
  owned_free(resized.rgb);
}

/* ---- evaluation sets (docs/eval-set.md; Sources/VitFrontend/EvalSet.swift) ----------------- */

/* Decodes an evaluation set held in memory: `count` labels, each below `classes`, and the
   zero-run encoded images (a 0 byte then a count n of 1..255 stands for n zeros) of side ×
   side grey pixels, one per label, into *grey (owned by the driver). Returns NULL, or the
   reason in `message`, with *about_labels set when it concerns the labels file. Sizes are
   checked before anything is allocated, and decoding stops as soon as there are more pixels
   than the labels announce (a run bomb cannot expand). */
static const char *eval_decode(const unsigned char *labels, size_t count, const unsigned char *encoded, size_t encoded_size,
                               int side, int classes, unsigned char **grey, int *about_labels, char *message, size_t length) {
  const size_t size = (size_t)side * (size_t)side;
  *grey = NULL;
  *about_labels = 1;
  if (count == 0) return snprintf(message, length, "not an evaluation set (docs/eval-set.md): no labels"), message;
  if (size == 0 || count > SIZE_MAX / size) {
    snprintf(message, length, "not an evaluation set (docs/eval-set.md): %zu labels of %dx%d images do not fit in memory", count, side, side);
    return message;
  }
  *about_labels = 0;
  unsigned char *pixels = owned_malloc(count * size, "the evaluation set");
  size_t decoded = 0;
  for (size_t i = 0; i < encoded_size; i++) {
    size_t run = 1;
    unsigned char value = encoded[i];
    if (value == 0) {
      if (i + 1 >= encoded_size || encoded[i + 1] == 0) {
        owned_free(pixels);
        snprintf(message, length, "not an evaluation set (docs/eval-set.md): byte %zu: a zero-run without a count of 1 to 255", i);
        return message;
      }
      run = encoded[++i];
    }
    if (decoded + run > count * size) {
      decoded += run;
      break;
    }
    memset(pixels + decoded, value, run);
    decoded += run;
  }
  if (decoded != count * size) {
    owned_free(pixels);
    snprintf(message, length, "not an evaluation set (docs/eval-set.md): %s pixels decoded, expected %zu images (one per label) of %dx%d",
             decoded > count * size ? "more" : "fewer", count, side, side);
    return message;
  }
  for (size_t i = 0; i < count; i++) {
    if (labels[i] >= classes) {
      owned_free(pixels);
      *about_labels = 1;
      snprintf(message, length, "not an evaluation set (docs/eval-set.md): label %d, the model has %d classes", labels[i], classes);
      return message;
    }
  }
  *grey = pixels;
  return NULL;
}

#ifndef VIT_FUZZ_READERS
/* ---- outputs: never over an input, always whole ------------------------------------------- */

/* Opens a temporary file beside `path` (same directory, so the rename stays on one file
   system), with the mode a new file would get; output_commit() renames it over `path`. A path
   that exists and is not a regular file (/dev/null, a pipe) is written directly. */
static FILE *output_open(const char *path) {
  if (strlen(path) + 16 > sizeof driver_temp) fail(path, "path too long");
  driver_temp[0] = '\0';
#ifdef VIT_HAVE_POSIX_FILES
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) fail(path, "is a directory");
    driver_writing = fopen(path, "wb");
    if (!driver_writing) fail(path, strerror(errno));
    return driver_writing;
  }
  snprintf(driver_temp, sizeof driver_temp, "%s.tmp-XXXXXX", path);
  const int fd = mkstemp(driver_temp);
  if (fd < 0) {
    driver_temp[0] = '\0';
    fail(path, strerror(errno));
  }
  const mode_t mask = umask(0);
  umask(mask);
  if (fchmod(fd, 0666 & ~mask) != 0 || !(driver_writing = fdopen(fd, "wb"))) {
    close(fd);
    fail(path, strerror(errno));
  }
#else
  snprintf(driver_temp, sizeof driver_temp, "%s.tmp", path);
  driver_writing = fopen(driver_temp, "wb");
  if (!driver_writing) fail(path, strerror(errno));
#endif
  return driver_writing;
}

/* Flushes the file output_open() gave (to the disk too), then renames it over `path`. */
static void output_commit(const char *path) {
  FILE *f = driver_writing;
  driver_writing = NULL;
  int failed = fflush(f) != 0 || ferror(f);
#ifdef VIT_HAVE_POSIX_FILES
  if (!failed && driver_temp[0]) failed = fsync(fileno(f)) != 0;
#endif
  failed |= fclose(f) != 0;
  if (failed) fail(path, "write error"); /* the temporary file is removed on exit */
  if (!driver_temp[0]) return;
#ifndef VIT_HAVE_POSIX_FILES
  remove(path); /* C's rename need not replace a file */
#endif
  if (rename(driver_temp, path) != 0) fail(path, strerror(errno));
  driver_temp[0] = '\0';
}

#ifdef VIT_HAVE_POSIX_FILES
/* An interrupted run leaves no temporary file: remove it, then die of the signal as before. */
static void output_interrupted(int sig) {
  if (driver_temp[0]) unlink(driver_temp);
  signal(sig, SIG_DFL);
  raise(sig);
}
#endif

struct named_path {
  const char *path; /* NULL: not given */
  const char *role; /* "--out", "the input image", ... */
};

#ifdef VIT_HAVE_POSIX_FILES
/* The directory part of path stat'ed into *st, and the offset of the last component. */
static int stat_parent(const char *path, struct stat *st, size_t *name) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    *name = 0;
    return stat(".", st);
  }
  *name = (size_t)(slash - path) + 1;
  char parent[sizeof driver_temp];
  snprintf(parent, sizeof parent, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  return stat(parent, st);
}
#endif

/* Is `output` the file `other` names (same device and inode when both exist, so ./x, a/../x,
   links are caught; same directory and name when neither exists yet)? */
static int same_file(const char *output, const char *other, int other_is_output) {
#ifdef VIT_HAVE_POSIX_FILES
  struct stat a, b;
  const int a_exists = stat(output, &a) == 0, b_exists = stat(other, &b) == 0;
  if (a_exists && b_exists) return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
  if (a_exists || b_exists || !other_is_output) return 0;
  size_t a_name, b_name;
  if (stat_parent(output, &a, &a_name) != 0 || stat_parent(other, &b, &b_name) != 0) return 0;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && strcmp(output + a_name, other + b_name) == 0;
#else
  (void)other_is_output;
  return strcmp(output, other) == 0;
#endif
}

/* Refuses an output that names an input, or another output, before anything is read or run. */
static void check_outputs(const struct named_path *outputs, int n_outputs, const struct named_path *inputs, int n_inputs) {
  char message[200];
  for (int o = 0; o < n_outputs; o++) {
    if (!outputs[o].path) continue;
    for (int i = 0; i < n_inputs; i++)
      if (inputs[i].path && same_file(outputs[o].path, inputs[i].path, 0)) {
        snprintf(message, sizeof message, "%s names %s; refusing to overwrite it", outputs[o].role, inputs[i].role);
        fail(outputs[o].path, message);
      }
    for (int p = 0; p < o; p++)
      if (outputs[p].path && same_file(outputs[o].path, outputs[p].path, 1)) {
        snprintf(message, sizeof message, "%s names the same file as %s; give each output its own file", outputs[o].role,
                 outputs[p].role);
        fail(outputs[o].path, message);
      }
  }
}

/* ---- the kept-token map (docs/kept-map.md; Sources/VitFrontend/KeptMap.swift is the same) --- */

#define KEPT_MAP_GAP 4 /* white pixels between two panels */
#define VIT_MODEL_PATCH_COUNT ((int)(sizeof(((VIT_MODEL_TRACE *)0)->members[0]) / sizeof(int16_t)))

static const unsigned char kept_map_palette[12][3] = {
    {230, 25, 75}, {60, 180, 75},  {0, 130, 200},  {245, 130, 48}, {145, 30, 180}, {70, 240, 240},
    {240, 50, 230}, {210, 245, 60}, {0, 128, 128}, {170, 110, 40}, {128, 0, 0},    {0, 0, 128},
};

/* The side of the square patch grid, or 0 (after a message naming path) if there is none. */
static int kept_map_grid(const char *path) {
  int patches = VIT_MODEL_PATCH_COUNT, side = 0;
  while ((side + 1) * (side + 1) <= patches) side++;
  char message[160];
  if (patches <= 0 || side * side != patches) {
    snprintf(message, sizeof message, "--kept-map needs a square patch grid, the model has %d patches", patches);
    fail(path, message);
  }
  if (VIT_MODEL_INPUT_FLOATS != 3 * VIT_MODEL_INPUT_SIZE * VIT_MODEL_INPUT_SIZE) {
    snprintf(message, sizeof message, "--kept-map needs an image input [3,%d,%d]", VIT_MODEL_INPUT_SIZE, VIT_MODEL_INPUT_SIZE);
    fail(path, message);
  }
  if (VIT_MODEL_INPUT_SIZE % side != 0) {
    snprintf(message, sizeof message, "--kept-map: a %dx%d patch grid does not divide the %dx%d input", side, side,
             VIT_MODEL_INPUT_SIZE, VIT_MODEL_INPUT_SIZE);
    fail(path, message);
  }
  return side;
}

/* One input value back to 8 bits: v = x*s + m, w = v*255 in double (x*s is exact, so a fused
   multiply-add gives the same v); NaN and w <= 0 give 0, w >= 255 gives 255, else w rounded
   half away from zero. */
static unsigned char kept_map_sample(float x, int c) {
  static const float mean[3] = VIT_MODEL_MEAN, std[3] = VIT_MODEL_STD;
  double v = (double)x * (double)std[c] + (double)mean[c];
  double w = v * 255.0;
  if (!(w > 0)) return 0;
  if (w >= 255) return 255;
  return (unsigned char)lround(w);
}

static void write_kept_map(const char *path, const float *input, const VIT_MODEL_TRACE *trace) {
  const int side = kept_map_grid(path), size = VIT_MODEL_INPUT_SIZE, patch = size / side;
  const int line = patch / 8 > 1 ? patch / 8 : 1, stages = trace->n_stages;
  const int total = (stages + 1) * size + stages * KEPT_MAP_GAP;
  unsigned char *out = owned_malloc((size_t)total * size * 3, path);
  unsigned char *base = owned_malloc((size_t)size * size * 3, path);
  int *owner = owned_malloc(sizeof(int) * side * side, path);
  memset(out, 255, (size_t)total * size * 3);
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < size; y++)
      for (int x = 0; x < size; x++)
        base[((size_t)y * size + x) * 3 + c] = kept_map_sample(input[((size_t)c * size + y) * size + x], c);
  for (int y = 0; y < size; y++) memcpy(out + (size_t)y * total * 3, base + (size_t)y * size * 3, (size_t)size * 3);

  for (int s = 0; s < stages; s++) {
    const int tokens = trace->tokens[s] - VIT_MODEL_PREFIX_TOKENS;
    for (int q = 0; q < side * side; q++) owner[q] = -1;
    for (int t = 0; t < tokens; t++)
      for (int m = trace->first[s][t]; m < trace->first[s][t + 1]; m++) owner[trace->members[s][m]] = t;
    unsigned char *panel = out + (size_t)(s + 1) * (size + KEPT_MAP_GAP) * 3;
    for (int y = 0; y < size; y++)
      for (int x = 0; x < size; x++) {
        const int gy = y / patch, gx = x / patch, py = y % patch, px = x % patch, t = owner[gy * side + gx];
        const unsigned char *p = base + ((size_t)y * size + x) * 3;
        unsigned char *o = panel + ((size_t)y * total + x) * 3;
        if (t < 0) {
          for (int c = 0; c < 3; c++) o[c] = (unsigned char)((p[c] + 765) / 4);
          continue;
        }
        const int from = trace->first[s][t], to = trace->first[s][t + 1];
        if (to - from > 1) {
#define OTHER(dy, dx)                                                                                   \
  (gy + (dy) < 0 || gy + (dy) >= side || gx + (dx) < 0 || gx + (dx) >= side || \
   owner[(gy + (dy)) * side + gx + (dx)] != t)
          const int up = py < line, down = py >= patch - line, left = px < line, right = px >= patch - line;
          const int boundary = (up && OTHER(-1, 0)) || (down && OTHER(1, 0)) || (left && OTHER(0, -1)) ||
                               (right && OTHER(0, 1)) || (up && left && OTHER(-1, -1)) || (up && right && OTHER(-1, 1)) ||
                               (down && left && OTHER(1, -1)) || (down && right && OTHER(1, 1));
#undef OTHER
          if (boundary) {
            int smallest = trace->members[s][from];
            for (int m = from + 1; m < to; m++)
              if (trace->members[s][m] < smallest) smallest = trace->members[s][m];
            memcpy(o, kept_map_palette[smallest % 12], 3);
            continue;
          }
        }
        memcpy(o, p, 3);
      }
  }

  FILE *f = output_open(path);
  fprintf(f, "P6\n%d %d\n255\n", total, size);
  fwrite(out, 1, (size_t)total * size * 3, f); /* a short write sets the error output_commit checks */
  output_commit(path);
  owned_free(out);
  owned_free(base);
  owned_free(owner);
}

/* ---- the driver --------------------------------------------------------------------------- */

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* ---- --eval: accuracy on an evaluation set (docs/eval-set.md; Sources/VitFrontend/EvalSet.swift) */

/* DIR/name in a new buffer. */
static char *join_path(const char *dir, const char *name) {
  size_t length = strlen(dir) + strlen(name) + 2;
  char *path = owned_malloc(length, dir);
  snprintf(path, length, "%s/%s", dir, name);
  return path;
}

/* Runs the model on the first `limit` images (all if 0) of the set in dir and prints what
   `vitc eval` prints: top-1, mean tokens kept per stage, mean MACs; then the latency. */
static void run_eval(const char *dir, int limit) {
  const int side = VIT_MODEL_INPUT_SIZE, size = side * side;
  char *labels_path = join_path(dir, "test-labels.u8"), *images_path = join_path(dir, "test-images.rle");
  size_t count, encoded_size;
  unsigned char *labels = read_file(labels_path, &count);
  unsigned char *encoded = read_file(images_path, &encoded_size);
  char message[200];
  if (VIT_MODEL_INPUT_FLOATS != 3 * size) fail(dir, "--eval needs a model with an image input [3,S,S]");
  unsigned char *grey;
  int about_labels;
  const char *error = eval_decode(labels, count, encoded, encoded_size, side, VIT_MODEL_CLASSES, &grey, &about_labels, message, sizeof message);
  if (error) fail(about_labels ? labels_path : images_path, error);
  if (limit > 0 && (size_t)limit < count) count = (size_t)limit;

  static float input[VIT_MODEL_INPUT_FLOATS], logits[VIT_MODEL_CLASSES];
  static VIT_MODEL_TRACE trace;
  double tokens[VIT_MODEL_MAX_STAGES] = {0}, macs = 0;
  int stages = 0, correct = 0, blocks[VIT_MODEL_MAX_STAGES] = {0};
  double *times = owned_malloc(sizeof(double) * count, dir);
  struct image image = {side, side, owned_malloc((size_t)size * 3, dir)};
#if defined(__unix__) || defined(__APPLE__)
  const int progress = isatty(STDERR_FILENO);
#else
  const int progress = 0;
#endif
  for (size_t n = 0; n < count; n++) {
    for (int i = 0; i < size; i++) image.rgb[3 * i] = image.rgb[3 * i + 1] = image.rgb[3 * i + 2] = grey[n * size + i];
    preprocess(image, side, input);
    double start = now_ms();
    VIT_MODEL_RUN(input, logits, &trace);
    times[n] = now_ms() - start;
    int best = 0;
    for (int c = 1; c < VIT_MODEL_CLASSES; c++)
      if (logits[c] > logits[best]) best = c;
    correct += best == (int)labels[n];
    stages = trace.n_stages;
    for (int s = 0; s < stages; s++) {
      tokens[s] += trace.tokens[s];
      blocks[s] = trace.block[s];
    }
    macs += (double)VIT_MODEL_MACS(&trace);
    if (progress && ((n + 1) % (count / 100 > 0 ? count / 100 : 1) == 0 || n + 1 == count))
      fprintf(stderr, "\reval: %zu/%zu images", n + 1, count);
  }
  if (progress) fprintf(stderr, "\r\033[K");
  printf("%s, --prune %s, compiled, on %s: %zu images\n", VIT_MODEL_NAME, VIT_MODEL_METHOD, dir, count);
  printf("top-1: %.2f%% (%d of %zu)\n", 100.0 * correct / (double)count, correct, count);
  if (stages > 0) {
    printf("tokens kept (mean, cls included): ");
    for (int s = 0; s < stages; s++) printf("%sblock %d %.2f", s ? ", " : "", blocks[s], tokens[s] / (double)count);
    printf("\n");
  }
  printf("MACs (fvcore, mean per image): %.0f\n", macs / (double)count);
  qsort(times, count, sizeof(double), compare_doubles);
  printf("latency: median %.3f ms per image, p90 %.3f ms, %d threads\n", times[count / 2], times[(count * 9) / 10],
         vit_get_threads()); /* 9n/10 < n for every n >= 1 */
  owned_free(times);
  owned_free(image.rgb);
  owned_free(grey);
  owned_free(encoded);
  owned_free(labels);
  owned_free(labels_path);
  owned_free(images_path);
}

static void usage(FILE *to, const char *program) {
  fprintf(to,
          "usage: %s [options] [IMAGE.ppm]\n"
          "       %s [options] --eval DIR [--limit N]\n"
          "Runs the model " VIT_MODEL_NAME " (compiled by vitc) on one image, or on an evaluation set.\n\n"
          "  IMAGE.ppm, --image F  PPM image (P6 or P3, 8-bit); resized to %d, center-cropped to %d\n"
          "  --input F             raw little-endian float32 input [%d], already normalized\n"
          "  --top N               print the N best classes (default 5)\n"
          "  --out F               write the %d logits as raw float32\n"
          "  --trace F             write the trace as JSON (docs/trace-format.md)\n"
          "  --kept-map F          write the kept-token map as a PPM image (docs/kept-map.md): the input,\n"
          "                        then per pruning stage dropped patches washed out, merged tokens outlined\n"
          "  --eval DIR            top-1 accuracy, mean tokens kept and MACs on the labelled images of DIR\n"
          "                        (test-images.rle, test-labels.u8: docs/eval-set.md), as vitc eval prints\n"
          "  --limit N             with --eval: only the first N images\n"
          "  --bench N             time N runs after warm-up: median, p10, p90 ms and images/s\n"
          "  --threads N           worker threads (default: all cores)\n"
#ifdef VIT_MODEL_WEIGHTS_AT_RUNTIME
          "  --weights F           the weights file vitc build wrote with this binary (required)\n"
#endif
#ifdef VIT_MODEL_LOAD_WEIGHTS
          "  --weights F           the model's weights (required): safetensors with the graph's tensor names\n"
          "                        (F32, F16 or BF16), or a vitc weights file of this model's layout\n"
#endif
          "  --dump-input F        write the preprocessed input as raw float32 (to check preprocessing)\n"
          "  --help                this text\n",
          program, program, (int)floor(VIT_MODEL_INPUT_SIZE / VIT_MODEL_CROP_PCT), VIT_MODEL_INPUT_SIZE, VIT_MODEL_INPUT_FLOATS,
          VIT_MODEL_CLASSES);
}

static int parse_count(const char *option, const char *text, int minimum) {
  char *end;
  long value = strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < minimum || value > 1000000) {
    fprintf(stderr, "error: %s takes a whole number of at least %d, found '%s'\n", option, minimum, text);
    exit(EXIT_BAD_INPUT);
  }
  return (int)value;
}

static void write_trace(const char *path, const VIT_MODEL_TRACE *trace, const float *logits) {
  FILE *f = output_open(path);
  fprintf(f, "{\"method\": \"%s\", \"stages\": [", VIT_MODEL_METHOD);
  for (int s = 0; s < trace->n_stages; s++) {
    fprintf(f, "%s\n  {\"block\": %d, \"tokens\": %d, \"patches\": [", s ? "," : "", trace->block[s], trace->tokens[s]);
    for (int t = 0; t + VIT_MODEL_PREFIX_TOKENS < trace->tokens[s]; t++) {
      fprintf(f, "%s[", t ? "," : "");
      for (int m = trace->first[s][t]; m < trace->first[s][t + 1]; m++)
        fprintf(f, "%s%d", m > trace->first[s][t] ? "," : "", trace->members[s][m]);
      fprintf(f, "]");
    }
    fprintf(f, "]}");
  }
  fprintf(f, trace->n_stages ? "\n],\n" : "],\n");
  fprintf(f, " \"logits\": [");
  for (int i = 0; i < VIT_MODEL_CLASSES; i++) {
    if (isnan(logits[i])) fprintf(f, "%s\"nan\"", i ? ", " : "");
    else if (isinf(logits[i])) fprintf(f, "%s\"%sinf\"", i ? ", " : "", logits[i] < 0 ? "-" : "");
    else fprintf(f, "%s%.9g", i ? ", " : "", logits[i]);
  }
  fprintf(f, "]}\n");
  output_commit(path);
}

/* Frees, closes and removes what the driver still owns (driver_owned and the files). */
static void driver_release(void) {
  if (driver_reading) fclose(driver_reading);
  if (driver_writing) fclose(driver_writing);
  driver_reading = driver_writing = NULL;
  if (driver_temp[0]) remove(driver_temp);
  driver_temp[0] = '\0';
  for (int i = 0; i < VIT_DRIVER_MAX_OWNED; i++) {
    free(driver_owned[i]);
    driver_owned[i] = NULL;
  }
}

/* At every exit, fail() included: release what the driver owns, then join the worker threads,
   so that nothing is left allocated and no thread is running. */
static void driver_exit(void) {
  driver_release();
  vit_join_threads();
}

int main(int argc, char **argv) {
  atexit(driver_exit);
#ifdef VIT_HAVE_POSIX_FILES
  const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGXFSZ}; /* a signal ignored stays ignored */
  for (int i = 0; i < 4; i++)
    if (signal(signals[i], output_interrupted) == SIG_IGN) signal(signals[i], SIG_IGN);
#endif
  const char *image_path = NULL, *input_path = NULL, *out_path = NULL, *trace_path = NULL, *dump_path = NULL;
  const char *kept_map_path = NULL, *weights_path = NULL, *eval_dir = NULL;
  int top = 5, bench = 0, threads = 0, limit = 0;
  { /* the weights are little-endian float32, loaded as they are */
    const uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    if (first != 1) fail(argv[0], "this machine is big-endian; vitc's weights are little-endian float32");
  }
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    }
    int takes_value = strcmp(arg, "--image") == 0 || strcmp(arg, "--input") == 0 || strcmp(arg, "--out") == 0 ||
                      strcmp(arg, "--trace") == 0 || strcmp(arg, "--top") == 0 || strcmp(arg, "--bench") == 0 ||
                      strcmp(arg, "--threads") == 0 || strcmp(arg, "--dump-input") == 0 || strcmp(arg, "--kept-map") == 0 ||
                      strcmp(arg, "--weights") == 0 || strcmp(arg, "--eval") == 0 || strcmp(arg, "--limit") == 0;
    if (takes_value) {
      if (i + 1 >= argc) {
        fprintf(stderr, "error: %s needs a value\n", arg);
        return EXIT_BAD_INPUT;
      }
      const char *value = argv[++i];
      if (strcmp(arg, "--image") == 0) image_path = value;
      else if (strcmp(arg, "--input") == 0) input_path = value;
      else if (strcmp(arg, "--out") == 0) out_path = value;
      else if (strcmp(arg, "--trace") == 0) trace_path = value;
      else if (strcmp(arg, "--dump-input") == 0) dump_path = value;
      else if (strcmp(arg, "--kept-map") == 0) kept_map_path = value;
      else if (strcmp(arg, "--weights") == 0) weights_path = value;
      else if (strcmp(arg, "--eval") == 0) eval_dir = value;
      else if (strcmp(arg, "--limit") == 0) limit = parse_count(arg, value, 1);
      else if (strcmp(arg, "--top") == 0) top = parse_count(arg, value, 1);
      else if (strcmp(arg, "--bench") == 0) bench = parse_count(arg, value, 1);
      else threads = parse_count(arg, value, 1);
    } else if (arg[0] == '-' && arg[1] != '\0') {
      fprintf(stderr, "error: unknown option '%s' (see --help)\n", arg);
      return EXIT_BAD_INPUT;
    } else if (!image_path) {
      image_path = arg;
    } else {
      fprintf(stderr, "error: more than one image given ('%s' and '%s')\n", image_path, arg);
      return EXIT_BAD_INPUT;
    }
  }
  if ((image_path != NULL) + (input_path != NULL) + (eval_dir != NULL) != 1) {
    fprintf(stderr, "error: give exactly one of IMAGE.ppm (or --image), --input F.f32 and --eval DIR (see --help)\n");
    return EXIT_BAD_INPUT;
  }
  if (limit && !eval_dir) {
    fprintf(stderr, "error: --limit goes with --eval DIR\n");
    return EXIT_BAD_INPUT;
  }
  if (eval_dir && (out_path || trace_path || kept_map_path || dump_path || bench)) {
    fprintf(stderr, "error: --eval DIR does not go with --out, --trace, --kept-map, --dump-input or --bench\n");
    return EXIT_BAD_INPUT;
  }
  { /* no output may name an input or another output: compared by device and inode */
    const struct named_path outputs[] = {
        {out_path, "--out"}, {trace_path, "--trace"}, {kept_map_path, "--kept-map"}, {dump_path, "--dump-input"}};
    const struct named_path inputs[] = {
        {image_path, "the input image"}, {input_path, "the --input file"}, {weights_path, "the --weights file"}};
    check_outputs(outputs, 4, inputs, 3);
  }
#ifdef VIT_MODEL_WEIGHTS_AT_RUNTIME
  if (!weights_path) fail("--weights", "this model reads its weights at run time: give --weights F (the file vitc build wrote beside it)");
  load_weights(weights_path);
#elif defined(VIT_MODEL_LOAD_WEIGHTS)
  if (!weights_path) fail("--weights", "this model was compiled without weights: give --weights F (a safetensors file with the graph's tensor names)");
  load_weights(weights_path);
#else
  if (weights_path) fail(weights_path, "this binary carries its weights; --weights is for models built with --weights-at-runtime or without weights");
#endif
  if (threads) vit_set_threads(threads);
  if (kept_map_path) kept_map_grid(kept_map_path); /* a model without a square grid: say so before running */
  if (eval_dir) {
    run_eval(eval_dir, limit);
    return 0;
  }

  static float input[VIT_MODEL_INPUT_FLOATS];
  if (input_path) {
    size_t size;
    unsigned char *data = read_file(input_path, &size);
    if (size != sizeof input) {
      char message[128];
      snprintf(message, sizeof message, "expected %zu bytes (float32 [%d]), found %zu", sizeof input, VIT_MODEL_INPUT_FLOATS, size);
      fail(input_path, message); /* data is freed on exit */
    }
    for (int i = 0; i < VIT_MODEL_INPUT_FLOATS; i++) {
      uint32_t bits = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 | (uint32_t)data[4 * i + 2] << 16 | (uint32_t)data[4 * i + 3] << 24;
      memcpy(&input[i], &bits, 4);
    }
    owned_free(data);
  } else {
    /* timm's transform crops a square [3,S,S]; a non-square input takes --input only. */
    if (VIT_MODEL_INPUT_FLOATS != 3 * VIT_MODEL_INPUT_SIZE * VIT_MODEL_INPUT_SIZE)
      fail(image_path, "this model's input is not a square image [3,S,S]: give the input tensor with --input");
    struct image image = read_ppm(image_path);
    preprocess(image, VIT_MODEL_INPUT_SIZE, input);
    owned_free(image.rgb);
  }

  if (dump_path) {
    fwrite(input, sizeof(float), VIT_MODEL_INPUT_FLOATS, output_open(dump_path));
    output_commit(dump_path);
  }

  static float logits[VIT_MODEL_CLASSES];
  static VIT_MODEL_TRACE trace;
  double start = now_ms();
  VIT_MODEL_RUN(input, logits, &trace);
  double elapsed = now_ms() - start;

  int best[64];
  if (top > VIT_MODEL_CLASSES) top = VIT_MODEL_CLASSES;
  if (top > 64) top = 64;
  for (int r = 0; r < top; r++) {
    int pick = -1;
    for (int c = 0; c < VIT_MODEL_CLASSES; c++) {
      int taken = 0;
      for (int q = 0; q < r; q++) taken |= best[q] == c;
      if (!taken && (pick < 0 || logits[c] > logits[pick])) pick = c;
    }
    best[r] = pick;
  }
  printf("%s on %s: %.1f ms, %d threads\n", VIT_MODEL_NAME, image_path ? image_path : input_path, elapsed, vit_get_threads());
  for (int s = 0; s < trace.n_stages; s++) printf("  before/in block %d: %d tokens\n", trace.block[s], trace.tokens[s]);
  for (int r = 0; r < top; r++)
    printf("%2d. %5d  %10.4f%s%s\n", r + 1, best[r], logits[best[r]], VIT_MODEL_N_LABELS ? "  " : "",
           VIT_MODEL_N_LABELS ? vit_model_labels[best[r]] : "");

  if (out_path) {
    fwrite(logits, sizeof(float), VIT_MODEL_CLASSES, output_open(out_path));
    output_commit(out_path);
  }
  if (trace_path) write_trace(trace_path, &trace, logits);
  if (kept_map_path) write_kept_map(kept_map_path, input, &trace);

  if (bench) {
    for (int i = 0; i < 3; i++) VIT_MODEL_RUN(input, logits, NULL);
    double *times = owned_malloc(sizeof(double) * bench, "--bench");
    VIT_MODEL_PROFILE = 1; /* per-stage wall time, a few clock reads per run */
    for (int i = 0; i < bench; i++) {
      double t0 = now_ms();
      VIT_MODEL_RUN(input, logits, NULL);
      times[i] = now_ms() - t0;
    }
    VIT_MODEL_PROFILE = 0;
    qsort(times, bench, sizeof(double), compare_doubles);
    double median = times[bench / 2], p10 = times[bench / 10], p90 = times[(bench * 9) / 10]; /* < bench */
    printf("bench: %d runs, median %.2f ms, p10 %.2f ms, p90 %.2f ms, %.1f images/s, %d threads\n", bench, median, p10, p90,
           1000.0 / median, vit_get_threads());
    double total = 0;
    for (int i = 0; i < VIT_MODEL_N_STAGE_FUNCTIONS; i++) total += VIT_MODEL_STAGE_SECONDS[i];
    printf("stages (mean of the %d timed runs; _prune = a method's scoring and selection):\n", bench);
    for (int i = 0; i < VIT_MODEL_N_STAGE_FUNCTIONS; i++)
      printf("  stage %-26s %8.3f ms %5.1f%%\n", VIT_MODEL_STAGE_NAMES[i], 1000.0 * VIT_MODEL_STAGE_SECONDS[i] / bench,
             total > 0 ? 100.0 * VIT_MODEL_STAGE_SECONDS[i] / total : 0.0);
    owned_free(times);
#ifdef VIT_MODEL_LOAD_WEIGHTS
    printf("load: %.2f ms for %zu bytes of %s (parse %.2f ms, check %.2f ms, convert and pack %.2f ms; the rest maps and faults in the file)\n",
           load_total_ms, load_file_bytes, load_report.format == 2 ? "vitc weights" : "safetensors", 1000.0 * load_report.parse_seconds,
           1000.0 * load_report.check_seconds, 1000.0 * load_report.convert_seconds);
#endif
  }
  return 0;
}
#endif /* VIT_FUZZ_READERS */
