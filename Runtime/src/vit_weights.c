/*
 * Weights loaded at run time (vit_weights.h): a strict reader of safetensors headers and of
 * vitc weights files, the checks vitc makes when it binds weights (Safetensors.swift,
 * WeightBinding.swift), and the conversion to the kernels' float32 layout (WeightBlob.swift).
 *
 * The file is untrusted. The header is parsed in one pass with bounded nesting; every offset is
 * checked against the file's size before it is read; the one allocation (the tensors' byte
 * ranges, to check that they tile the data section as the format requires) is bounded by the
 * header's size and freed before returning.
 */
#include "vit_weights.h"
#include "vit_quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VIT_JSON_MAX_DEPTH 64 /* StrictJSON.maxDepth */
#define VIT_NAME_BYTES 512    /* longer tensor names are read, but match no tensor of a model */

static double seconds_now(void) {
  struct timespec t;
  timespec_get(&t, TIME_UTC);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t le(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* A name for a message: printable ASCII kept, anything else as '?', at most 120 bytes. */
static void clean(char *out, size_t size, const unsigned char *name, size_t length) {
  size_t n = 0;
  for (size_t i = 0; i < length && n + 4 < size; i++) {
    if (n >= 120) {
      memcpy(out + n, "...", 3);
      n += 3;
      break;
    }
    out[n++] = name[i] >= 0x20 && name[i] < 0x7f ? (char)name[i] : '?';
  }
  out[n] = '\0';
}

/* ---- the JSON header -------------------------------------------------------------------- */

struct json {
  const unsigned char *p, *begin, *end;
  char *message; /* report->message */
  size_t message_size;
  int failed;
};

static int json_fail(struct json *j, const char *what) {
  if (!j->failed) snprintf(j->message, j->message_size, "the header is not valid JSON: %s at byte %zu", what, (size_t)(j->p - j->begin) + 8);
  j->failed = 1;
  return -1;
}

static void json_space(struct json *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int json_expect(struct json *j, unsigned char c) {
  json_space(j);
  if (j->p >= j->end || *j->p != c) {
    char what[32];
    snprintf(what, sizeof what, "expected '%c'", c);
    return json_fail(j, what);
  }
  j->p++;
  return 0;
}

static int json_hex4(struct json *j, uint32_t *value) {
  if (j->end - j->p < 4) return json_fail(j, "a \\u escape cut short");
  *value = 0;
  for (int i = 0; i < 4; i++) {
    const unsigned char c = *j->p++;
    uint32_t digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    else return json_fail(j, "a \\u escape with a non-hex digit");
    *value = *value << 4 | digit;
  }
  return 0;
}

/* Appends one byte to the decoded string (counted even when out is full). */
static void put(unsigned char *out, size_t cap, size_t *length, unsigned char byte) {
  if (*length + 1 < cap) out[*length] = byte;
  (*length)++;
}

/* A string at j->p, decoded into out (cap bytes, NUL-terminated, cut if longer: *length is the
   whole decoded length). Rejects control characters, bad escapes, lone surrogates and bytes
   that are not UTF-8, as StrictJSON does. out may be NULL to only check it. */
static int json_string(struct json *j, unsigned char *out, size_t cap, size_t *length) {
  unsigned char scratch[1];
  if (!out) {
    out = scratch;
    cap = 1;
  }
  *length = 0;
  if (json_expect(j, '"')) return -1;
  for (;;) {
    if (j->p >= j->end) return json_fail(j, "unterminated string");
    unsigned char c = *j->p;
    if (c == '"') {
      j->p++;
      break;
    }
    if (c < 0x20) return json_fail(j, "a control character in a string");
    if (c == '\\') {
      j->p++;
      if (j->p >= j->end) return json_fail(j, "unterminated string");
      const unsigned char e = *j->p++;
      uint32_t code;
      switch (e) {
      case '"': case '\\': case '/': put(out, cap, length, e); continue;
      case 'b': put(out, cap, length, 0x08); continue;
      case 'f': put(out, cap, length, 0x0c); continue;
      case 'n': put(out, cap, length, 0x0a); continue;
      case 'r': put(out, cap, length, 0x0d); continue;
      case 't': put(out, cap, length, 0x09); continue;
      case 'u':
        if (json_hex4(j, &code)) return -1;
        if (code >= 0xdc00 && code <= 0xdfff) return json_fail(j, "a lone low surrogate");
        if (code >= 0xd800 && code <= 0xdbff) {
          uint32_t low;
          if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') return json_fail(j, "a lone high surrogate");
          j->p += 2;
          if (json_hex4(j, &low)) return -1;
          if (low < 0xdc00 || low > 0xdfff) return json_fail(j, "a lone high surrogate");
          code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        }
        if (code < 0x80) {
          put(out, cap, length, (unsigned char)code);
        } else if (code < 0x800) {
          put(out, cap, length, (unsigned char)(0xc0 | code >> 6));
          put(out, cap, length, (unsigned char)(0x80 | (code & 0x3f)));
        } else if (code < 0x10000) {
          put(out, cap, length, (unsigned char)(0xe0 | code >> 12));
          put(out, cap, length, (unsigned char)(0x80 | (code >> 6 & 0x3f)));
          put(out, cap, length, (unsigned char)(0x80 | (code & 0x3f)));
        } else {
          put(out, cap, length, (unsigned char)(0xf0 | code >> 18));
          put(out, cap, length, (unsigned char)(0x80 | (code >> 12 & 0x3f)));
          put(out, cap, length, (unsigned char)(0x80 | (code >> 6 & 0x3f)));
          put(out, cap, length, (unsigned char)(0x80 | (code & 0x3f)));
        }
        continue;
      default:
        return json_fail(j, "an unknown escape in a string");
      }
    }
    /* One UTF-8 sequence: its length from the lead byte, continuation bytes, no overlong form,
       no surrogate, nothing above U+10FFFF. */
    int extra;
    uint32_t code, minimum;
    if (c < 0x80) extra = 0, code = c, minimum = 0;
    else if ((c & 0xe0) == 0xc0) extra = 1, code = c & 0x1f, minimum = 0x80;
    else if ((c & 0xf0) == 0xe0) extra = 2, code = c & 0x0f, minimum = 0x800;
    else if ((c & 0xf8) == 0xf0) extra = 3, code = c & 0x07, minimum = 0x10000;
    else return json_fail(j, "a string that is not UTF-8");
    if (j->end - j->p <= extra) return json_fail(j, "a string that is not UTF-8");
    for (int i = 1; i <= extra; i++) {
      if ((j->p[i] & 0xc0) != 0x80) return json_fail(j, "a string that is not UTF-8");
      code = code << 6 | (j->p[i] & 0x3f);
    }
    if (code < minimum || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return json_fail(j, "a string that is not UTF-8");
    for (int i = 0; i <= extra; i++) put(out, cap, length, j->p[i]);
    j->p += extra + 1;
  }
  out[*length < cap ? *length : cap - 1] = '\0';
  return 0;
}

/* A number at j->p (JSON's grammar). *is_integer: no fraction or exponent and within int64. */
static int json_number(struct json *j, int *is_integer, long long *value) {
  json_space(j);
  const unsigned char *start = j->p;
  int negative = 0, integer = 1, overflow = 0;
  unsigned long long magnitude = 0;
  if (j->p < j->end && *j->p == '-') negative = 1, j->p++;
  if (j->p >= j->end || *j->p < '0' || *j->p > '9') return json_fail(j, "expected a value");
  if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9') return json_fail(j, "a number with a leading zero");
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
    const unsigned digit = *j->p++ - '0';
    if (magnitude > (9223372036854775807ULL - digit) / 10) overflow = 1;
    else magnitude = magnitude * 10 + digit;
  }
  if (j->p < j->end && *j->p == '.') {
    integer = 0;
    j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return json_fail(j, "a number without digits after '.'");
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    integer = 0;
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return json_fail(j, "a number without digits in its exponent");
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  }
  if (integer && overflow) {
    j->p = start;
    return json_fail(j, "an integer out of range");
  }
  *is_integer = integer;
  *value = negative ? -(long long)magnitude : (long long)magnitude;
  return 0;
}

static int json_skip(struct json *j, int depth);

static int json_word(struct json *j, const char *word) {
  const size_t n = strlen(word);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return json_fail(j, "expected a value");
  j->p += n;
  return 0;
}

/* Checks and skips any value (a field vitc does not read, __metadata__). */
static int json_skip(struct json *j, int depth) {
  json_space(j);
  if (j->p >= j->end) return json_fail(j, "expected a value");
  size_t length;
  int is_integer;
  long long number;
  switch (*j->p) {
  case '{':
  case '[': {
    const unsigned char close = *j->p == '{' ? '}' : ']';
    if (depth >= VIT_JSON_MAX_DEPTH) return json_fail(j, "nested more than 64 deep");
    j->p++;
    json_space(j);
    if (j->p < j->end && *j->p == close) {
      j->p++;
      return 0;
    }
    for (;;) {
      if (close == '}') {
        if (json_string(j, NULL, 0, &length) || json_expect(j, ':')) return -1;
      }
      if (json_skip(j, depth + 1)) return -1;
      json_space(j);
      if (j->p < j->end && *j->p == ',') {
        j->p++;
        continue;
      }
      return json_expect(j, close);
    }
  }
  case '"': return json_string(j, NULL, 0, &length);
  case 't': return json_word(j, "true");
  case 'f': return json_word(j, "false");
  case 'n': return json_word(j, "null");
  default: return json_number(j, &is_integer, &number);
  }
}

/* ---- the entries ------------------------------------------------------------------------ */

enum { DTYPE_OTHER, DTYPE_F32, DTYPE_F16, DTYPE_BF16 };

/* One tensor of the header. */
struct entry {
  const unsigned char *key; /* the raw key in the header (escapes not decoded), for duplicates and messages */
  size_t key_length;
  uint64_t begin, end;      /* data_offsets, checked within the data section */
};

/* What the header says of a tensor the model reads. */
struct found {
  int present, dtype;
  char dtype_name[16];
  int rank; /* -1: more dims than any model declares */
  long long shape[VIT_WEIGHTS_MAX_RANK];
  uint64_t begin, end; /* within the data section */
};

/* Bytes per element of the dtypes the format defines (Safetensors.swift elementSizes); 0: unknown. */
static int element_bytes(const char *dtype) {
  static const struct {
    const char *name;
    int bytes;
  } sizes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
               {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
    if (strcmp(dtype, sizes[i].name) == 0) return sizes[i].bytes;
  return 0;
}

/* Tensors a checkpoint carries for training only, and the predictors of DynamicViT and AS-ViT,
   which a checkpoint trained for them holds whatever schedule this model was compiled with: not
   worth a warning when unread (CompileSession.isTrainingOnly). */
static int training_only(const char *name, size_t length) {
  static const char suffix[] = ".num_batches_tracked", prefix[] = "score_predictor.";
  return (length >= sizeof suffix - 1 && memcmp(name + length - (sizeof suffix - 1), suffix, sizeof suffix - 1) == 0) ||
         strncmp(name, prefix, sizeof prefix - 1) == 0;
}

static const struct vit_tensor_spec *find_spec(const struct vit_tensor_spec *specs, int count, const char *name) {
  int low = 0, high = count - 1;
  while (low <= high) {
    const int middle = low + (high - low) / 2;
    const int order = strcmp(specs[middle].name, name);
    if (order == 0) return &specs[middle];
    if (order < 0) low = middle + 1;
    else high = middle - 1;
  }
  return NULL;
}

static int by_key(const void *a, const void *b) {
  const struct entry *x = a, *y = b;
  const size_t n = x->key_length < y->key_length ? x->key_length : y->key_length;
  const int order = memcmp(x->key, y->key, n);
  return order ? order : (x->key_length > y->key_length) - (x->key_length < y->key_length);
}

static int by_range(const void *a, const void *b) {
  const struct entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return by_key(a, b);
}

static void note_unused(struct vit_weights_report *report, const char *name, size_t length) {
  if (training_only(name, length)) return;
  report->unused++;
  const size_t used = strlen(report->unused_names), room = sizeof report->unused_names;
  if (used + 8 >= room || strstr(report->unused_names, "...")) return;
  char cleaned[160];
  clean(cleaned, sizeof cleaned, (const unsigned char *)name, length);
  if (used + strlen(cleaned) + 8 >= room) {
    snprintf(report->unused_names + used, room - used, "%s...", used ? ", " : "");
    return;
  }
  snprintf(report->unused_names + used, room - used, "%s%s", used ? ", " : "", cleaned);
}

/* Reads one tensor entry's object (the key already read) into *found (NULL: checked, not kept). */
static int read_entry(struct json *j, const char *quoted, uint64_t data_size, struct entry *entry, struct found *found) {
  int has_dtype = 0, has_shape = 0, has_offsets = 0, dtype_ok = 0, shape_ok = 1, offsets_ok = 1;
  char dtype[16] = "";
  long long shape[VIT_WEIGHTS_MAX_RANK] = {0}, offsets[2] = {0, 0};
  int rank = 0, n_offsets = 0;
  unsigned long long elements = 1;
  int elements_overflow = 0;
  json_space(j);
  if (j->p >= j->end || *j->p != '{') {
    snprintf(j->message, j->message_size, "entry '%s' is not an object", quoted);
    return -1;
  }
  j->p++;
  json_space(j);
  int first = 1;
  while (!(j->p < j->end && *j->p == '}')) {
    if (!first && json_expect(j, ',')) return -1;
    first = 0;
    unsigned char key[16];
    size_t length;
    if (json_string(j, key, sizeof key, &length) || json_expect(j, ':')) return -1;
    json_space(j);
    if (length == 5 && memcmp(key, "dtype", 5) == 0) {
      if (has_dtype) return json_fail(j, "duplicate key 'dtype'");
      has_dtype = 1;
      if (j->p < j->end && *j->p == '"') {
        size_t dtype_length;
        if (json_string(j, (unsigned char *)dtype, sizeof dtype, &dtype_length)) return -1;
        dtype_ok = 1;
        if (dtype_length >= sizeof dtype) strcpy(dtype, "?"); /* no dtype is that long */
      } else if (json_skip(j, 2)) {
        return -1;
      }
    } else if ((length == 5 && memcmp(key, "shape", 5) == 0) || (length == 12 && memcmp(key, "data_offsets", 12) == 0)) {
      const int is_shape = length == 5;
      if (is_shape ? has_shape : has_offsets) return json_fail(j, is_shape ? "duplicate key 'shape'" : "duplicate key 'data_offsets'");
      if (is_shape) has_shape = 1;
      else has_offsets = 1;
      int *ok = is_shape ? &shape_ok : &offsets_ok;
      if (!(j->p < j->end && *j->p == '[')) {
        *ok = 0;
        if (json_skip(j, 2)) return -1;
        continue;
      }
      j->p++;
      json_space(j);
      int n = 0;
      while (!(j->p < j->end && *j->p == ']')) {
        if (n && json_expect(j, ',')) return -1;
        json_space(j);
        if (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))) {
          int is_integer;
          long long value;
          if (json_number(j, &is_integer, &value)) return -1;
          if (!is_integer) *ok = 0;
          if (is_shape) {
            if (value < 0) *ok = 0;
            if (n < VIT_WEIGHTS_MAX_RANK) shape[n] = value;
            if (value > 0 && elements > (unsigned long long)INT64_MAX / (unsigned long long)value) elements_overflow = 1;
            else if (value >= 0) elements *= (unsigned long long)value;
          } else if (n < 2) {
            offsets[n] = value;
          }
        } else {
          *ok = 0;
          if (json_skip(j, 3)) return -1;
        }
        n++;
        json_space(j);
      }
      j->p++;
      if (is_shape) rank = n;
      else n_offsets = n;
    } else if (json_skip(j, 2)) {
      return -1;
    }
    json_space(j);
  }
  j->p++;
  if (!has_dtype || !dtype_ok) {
    snprintf(j->message, j->message_size, "entry '%s' has no string 'dtype'", quoted);
    return -1;
  }
  if (!has_shape || !shape_ok) {
    snprintf(j->message, j->message_size, "entry '%s' has no list of sizes 'shape'", quoted);
    return -1;
  }
  if (!has_offsets || !offsets_ok || n_offsets != 2) {
    snprintf(j->message, j->message_size, "entry '%s' has no 'data_offsets' [begin, end]", quoted);
    return -1;
  }
  if (offsets[0] < 0 || offsets[0] > offsets[1] || (uint64_t)offsets[1] > data_size) {
    snprintf(j->message, j->message_size,
             "tensor '%s': data_offsets [%lld, %lld] lie outside the %llu-byte data section (truncated file?)", quoted,
             offsets[0], offsets[1], (unsigned long long)data_size);
    return -1;
  }
  const int size = element_bytes(dtype);
  if (size) {
    const uint64_t span = (uint64_t)(offsets[1] - offsets[0]);
    if (elements_overflow || elements > (unsigned long long)INT64_MAX / 8 || elements * (unsigned long long)size != span) {
      snprintf(j->message, j->message_size, "tensor '%s': %llu bytes do not hold %s with that shape", quoted,
               (unsigned long long)span, dtype);
      return -1;
    }
  }
  entry->begin = (uint64_t)offsets[0];
  entry->end = (uint64_t)offsets[1];
  if (found) {
    found->present = 1;
    found->dtype = strcmp(dtype, "F32") == 0 ? DTYPE_F32 : strcmp(dtype, "F16") == 0 ? DTYPE_F16 : strcmp(dtype, "BF16") == 0 ? DTYPE_BF16 : DTYPE_OTHER;
    memcpy(found->dtype_name, dtype, sizeof dtype);
    found->rank = rank <= VIT_WEIGHTS_MAX_RANK ? rank : -1;
    for (int d = 0; d < VIT_WEIGHTS_MAX_RANK; d++) found->shape[d] = shape[d];
    found->begin = entry->begin;
    found->end = entry->end;
  }
  return 0;
}

/* ---- conversion --------------------------------------------------------------------------- */

/* IEEE half to float, exactly (Float(Float16(bitPattern:)) in Swift). */
static uint32_t half_bits(uint32_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exponent = h >> 10 & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  if (exponent == 0x1f) return sign | 0x7f800000u | mantissa << 13;
  if (exponent) return sign | (exponent + 112) << 23 | mantissa << 13;
  if (!mantissa) return sign;
  uint32_t e = 113;
  while (!(mantissa & 0x400)) mantissa <<= 1, e--;
  return sign | e << 23 | (mantissa & 0x3ff) << 13;
}

static void format_shape(char *out, size_t size, const long long *shape, int rank) {
  size_t n = (size_t)snprintf(out, size, "[");
  for (int d = 0; d < rank && n < size; d++) n += (size_t)snprintf(out + n, size - n, "%s%lld", d ? ", " : "", shape[d]);
  if (n < size) snprintf(out + n, size - n, "]");
}

/* The bits of element i of a tensor stored as dtype, as float32 (exact for all three). */
static inline uint32_t element_bits(const unsigned char *p, int dtype, size_t i) {
  if (dtype == DTYPE_F32) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t bits;
    memcpy(&bits, p + 4 * i, 4);
    return bits;
#else
    return (uint32_t)le(p + 4 * i, 4);
#endif
  }
  const uint32_t half = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
  return dtype == DTYPE_F16 ? half_bits(half) : half << 16;
}

/* Converts rows × width elements, writing element (r, c) to destination[at(r) + c * stride],
   where at(r) is r's place in its panel for a packed weight (panel > 0; stride = panel) and 0
   otherwise (one row, stride 1). Returns non-zero if one is NaN or infinite. */
static int convert_rows(const unsigned char *p, int dtype, size_t rows, size_t width, float *destination, size_t panel) {
  const size_t stride = panel ? panel : 1;
  uint32_t non_finite = 0;
  for (size_t r = 0; r < rows; r++) {
    float *out = destination + (panel ? (r / panel) * width * panel + r % panel : 0);
    for (size_t c = 0; c < width; c++) {
      const uint32_t bits = element_bits(p, dtype, r * width + c);
      non_finite |= (bits & 0x7f800000u) == 0x7f800000u;
      memcpy(out + c * stride, &bits, 4);
    }
  }
  return (int)non_finite;
}

/* Quantizes W[n][k] (checked finite) into an int8 weight block (vit_qgemm.h: 16 columns by 4
   consecutive k per 64 bytes, then a float scale and an int32 sum of q per padded column), each
   row by vit_quant.h's formula: the bits the Swift compiler embeds for the same weights. */
static void quantize_rows(const unsigned char *p, int dtype, size_t n, size_t k, unsigned char *block) {
  const size_t padded_n = (n + 15) / 16 * 16, groups = (k + 3) / 4;
  memset(block, 0, padded_n * groups * 4 + 8 * padded_n);
  unsigned char *scales = block + padded_n * groups * 4, *sums = scales + 4 * padded_n;
  for (size_t r = 0; r < n; r++) {
    float amax = 0.0f;
    for (size_t c = 0; c < k; c++) {
      const uint32_t bits = element_bits(p, dtype, r * k + c);
      float v;
      memcpy(&v, &bits, 4);
      const float magnitude = v < 0.0f ? -v : v;
      amax = magnitude > amax ? magnitude : amax;
    }
    const float inv = vit_quant_inverse(amax), scale = vit_quant_scale(amax);
    int32_t sum = 0;
    int8_t *panel = (int8_t *)block + (r / 16) * groups * 64 + (r % 16) * 4;
    for (size_t c = 0; c < k; c++) {
      const uint32_t bits = element_bits(p, dtype, r * k + c);
      float v;
      memcpy(&v, &bits, 4);
      const int8_t q = vit_quant_value(v, inv);
      panel[(c / 4) * 64 + c % 4] = q;
      sum += q;
    }
    memcpy(scales + 4 * r, &scale, 4);
    memcpy(sums + 4 * r, &sum, 4);
  }
}

/* W[n][k] (checked finite) into bf16 panels (vit_bf16.h: the float panel layout, each value
   rounded by vit_quant.h's vit_bf16_round), zero past n. */
static void bf16_rows(const unsigned char *p, int dtype, size_t n, size_t k, uint16_t *panels) {
  memset(panels, 0, 2 * ((n + 15) / 16) * 16 * k);
  for (size_t r = 0; r < n; r++) {
    uint16_t *out = panels + (r / 16) * k * 16 + r % 16;
    for (size_t c = 0; c < k; c++) {
      const uint32_t bits = element_bits(p, dtype, r * k + c);
      float v;
      memcpy(&v, &bits, 4);
      out[c * 16] = vit_bf16_round(v);
    }
  }
}

/* Converts one checked tensor to float32 into its destination, packed as the GEMM reads it. */
static int convert(const struct vit_tensor_spec *spec, const struct found *found, const unsigned char *data, char *message, size_t message_size) {
  const unsigned char *p = data + found->begin;
  const int bytes = found->dtype == DTYPE_F32 ? 4 : 2;
  const size_t elements = (size_t)((found->end - found->begin) / (uint64_t)bytes);
  int non_finite = 0;
  if (spec->packed_n && spec->format != 0) {
    for (size_t i = 0; i < elements; i++) non_finite |= (element_bits(p, found->dtype, i) & 0x7f800000u) == 0x7f800000u;
    const size_t n = (size_t)spec->packed_n, k = (size_t)spec->packed_k;
    if (!non_finite && spec->format == 1) quantize_rows(p, found->dtype, n, k, (unsigned char *)spec->destination);
    if (!non_finite && spec->format == 2) bf16_rows(p, found->dtype, n, k, (uint16_t *)(void *)spec->destination);
  } else if (spec->packed_n) {
    /* W[n][k] into panels: packed[(p*k + kk)*panel + j] = W[p*panel + j][kk], zero past n. */
    const size_t n = (size_t)spec->packed_n, k = (size_t)spec->packed_k, panel = (size_t)spec->panel;
    memset(spec->destination, 0, sizeof(float) * ((n + panel - 1) / panel) * panel * k);
    non_finite = convert_rows(p, found->dtype, n, k, spec->destination, panel);
  } else {
    non_finite = convert_rows(p, found->dtype, 1, elements, spec->destination, 0);
  }
  if (!non_finite) return 0;
  for (size_t i = 0; i < elements; i++) { /* the first one, for the message */
    const uint32_t bits = element_bits(p, found->dtype, i);
    if ((bits & 0x7f800000u) != 0x7f800000u) continue;
    snprintf(message, message_size, "tensor '%s' holds %s at index %zu (vitc refuses NaN and infinite weights)", spec->name,
             bits & 0x7fffffu ? "NaN" : (bits >> 31 ? "-infinity" : "infinity"), i);
    break;
  }
  return -1;
}

/* ---- the two formats ---------------------------------------------------------------------- */

static int load_vitc(const unsigned char *file, size_t bytes, float *blob, size_t blob_bytes, struct vit_weights_report *report) {
  char *message = report->message;
  const size_t size = sizeof report->message;
  report->format = 2;
  if (!blob) {
    snprintf(message, size, "a vitc weights file carries no AS-ViT thresholds, which this model reads from its weights: give the safetensors file");
    return -1;
  }
  if (bytes < 64) {
    snprintf(message, size, "truncated: a vitc weights file of %zu bytes (its header alone is 64)", bytes);
    return -1;
  }
  if (le(file + 8, 4) != 1 || le(file + 12, 4) != 64) {
    snprintf(message, size, "a vitc weights file format this binary does not read");
    return -1;
  }
  const uint64_t payload = le(file + 16, 8);
  if (bytes - 64 < payload) {
    snprintf(message, size, "truncated: shorter than its header says");
    return -1;
  }
  if (payload != blob_bytes) {
    snprintf(message, size, "a vitc weights file of %llu bytes of weights, but this model's take %zu (another model, or another --blas)",
             (unsigned long long)payload, blob_bytes);
    return -1;
  }
  uint64_t hash = 0xcbf29ce484222325u; /* FNV-1a 64 */
  for (uint64_t i = 0; i < payload; i++) hash = (hash ^ file[64 + i]) * 0x100000001b3u;
  if (hash != le(file + 24, 8)) {
    snprintf(message, size, "corrupt: its checksum does not match its contents");
    return -1;
  }
  memcpy(blob, file + 64, blob_bytes);
  report->tensors = 0;
  return 0;
}

static int load_safetensors(const unsigned char *file, size_t bytes, const struct vit_tensor_spec *specs, int count,
                            struct vit_weights_report *report) {
  char *message = report->message;
  const size_t size = sizeof report->message;
  report->format = 1;
  const double t0 = seconds_now();
  if (bytes < 8) {
    snprintf(message, size, "not a safetensors file: %zu bytes, shorter than the 8-byte header length", bytes);
    return -1;
  }
  const uint64_t header_length = le(file, 8);
  if (header_length > bytes - 8) {
    int text = 1;
    for (int i = 0; i < 8; i++) text &= (file[i] >= 0x20 && file[i] < 0x7f) || file[i] == '\n' || file[i] == '\r' || file[i] == '\t';
    if (file[0] == 'P' && file[1] == 'K') snprintf(message, size, "a zip file (a PyTorch checkpoint?): the binary reads safetensors or a vitc weights file; vitc reads checkpoints");
    else if (text) snprintf(message, size, "the file starts with text, not the 8-byte little-endian header length (not a safetensors file?)");
    else snprintf(message, size, "the header length %llu runs past the end of the %zu-byte file", (unsigned long long)header_length, bytes);
    return -1;
  }
  const unsigned char *data = file + 8 + header_length;
  const uint64_t data_size = bytes - 8 - header_length;
  struct json j = {file + 8, file + 8, file + 8 + header_length, message, size, 0};
  /* Entries: each takes more than 30 header bytes, so this bounds them. */
  const size_t capacity = (size_t)(header_length / 30) + 1;
  struct entry *entries = malloc(sizeof *entries * capacity);
  struct found *found = calloc((size_t)count + 1, sizeof *found);
  size_t n_entries = 0;
  int status = -1;
  if (!entries || !found) {
    snprintf(message, size, "out of memory reading a header of %llu bytes", (unsigned long long)header_length);
    goto done;
  }
  if (json_expect(&j, '{')) goto done;
  json_space(&j);
  if (j.p < j.end && *j.p == '}') {
    j.p++;
  } else {
    for (;;) {
      unsigned char name[VIT_NAME_BYTES];
      size_t length;
      json_space(&j);
      const unsigned char *key = j.p;
      if (json_string(&j, name, sizeof name, &length) || json_expect(&j, ':')) goto done;
      if (length == 12 && memcmp(name, "__metadata__", 12) == 0) {
        if (json_skip(&j, 1)) goto done;
      } else {
        char quoted[160];
        clean(quoted, sizeof quoted, name, length < sizeof name ? length : sizeof name - 1);
        const struct vit_tensor_spec *spec = length < sizeof name ? find_spec(specs, count, (const char *)name) : NULL;
        if (spec && found[spec - specs].present) {
          snprintf(message, size, "tensor '%s' appears twice in the header", quoted);
          goto done;
        }
        if (n_entries == capacity) {
          json_fail(&j, "more tensors than the header can hold");
          goto done;
        }
        struct entry *entry = &entries[n_entries++];
        entry->key = key;
        entry->key_length = 0;
        if (read_entry(&j, quoted, data_size, entry, spec ? &found[spec - specs] : NULL)) {
          if (!message[0]) json_fail(&j, "a bad entry");
          goto done;
        }
        { /* the raw key, quotes included, for duplicates and messages */
          const unsigned char *q = key + 1;
          while (q < j.end && *q != '"') q += *q == '\\' ? 2 : 1;
          entry->key_length = (size_t)(q - key) + 1;
        }
        if (!spec) note_unused(report, (const char *)name, length < sizeof name ? length : sizeof name - 1);
      }
      json_space(&j);
      if (j.p < j.end && *j.p == ',') {
        j.p++;
        continue;
      }
      if (json_expect(&j, '}')) goto done;
      break;
    }
  }
  json_space(&j);
  if (j.p != j.end) {
    json_fail(&j, "text after the header's object");
    goto done;
  }
  const double t1 = seconds_now();
  report->parse_seconds = t1 - t0;

  /* Names given twice (compared as written), then the layout: the tensors tile the data section. */
  qsort(entries, n_entries, sizeof *entries, by_key);
  for (size_t i = 1; i < n_entries; i++) {
    if (by_key(&entries[i - 1], &entries[i]) == 0) {
      char quoted[160];
      clean(quoted, sizeof quoted, entries[i].key + 1, entries[i].key_length - 2);
      snprintf(message, size, "tensor '%s' appears twice in the header", quoted);
      goto done;
    }
  }
  qsort(entries, n_entries, sizeof *entries, by_range);
  uint64_t covered = 0;
  for (size_t i = 0; i < n_entries; i++) {
    if (entries[i].begin < covered) {
      char a[160], b[160];
      clean(a, sizeof a, entries[i - 1].key + 1, entries[i - 1].key_length - 2);
      clean(b, sizeof b, entries[i].key + 1, entries[i].key_length - 2);
      snprintf(message, size, "tensors '%s' and '%s' overlap in the data section", a, b);
      goto done;
    }
    if (entries[i].begin > covered) {
      snprintf(message, size, "bytes %llu..<%llu of the data section belong to no tensor", (unsigned long long)covered,
               (unsigned long long)entries[i].begin);
      goto done;
    }
    covered = entries[i].end;
  }
  if (covered < data_size) {
    snprintf(message, size, "bytes %llu..<%llu of the data section belong to no tensor", (unsigned long long)covered,
             (unsigned long long)data_size);
    goto done;
  }

  /* Every tensor the model reads: there, a dtype it converts, the declared shape. */
  for (int s = 0; s < count; s++) {
    const struct vit_tensor_spec *spec = &specs[s];
    const struct found *f = &found[s];
    if (!f->present) {
      snprintf(message, size, "no tensor '%s', which the model reads", spec->name);
      goto done;
    }
    if (f->dtype == DTYPE_OTHER) {
      char dtype[24];
      clean(dtype, sizeof dtype, (const unsigned char *)f->dtype_name, strlen(f->dtype_name));
      snprintf(message, size, "tensor '%s' is %s; the model reads F32, F16 or BF16", spec->name, dtype);
      goto done;
    }
    long long elements = 1;
    for (int d = 0; f->rank > 0 && d < f->rank; d++) elements *= f->shape[d];
    int same = spec->rank < 0 ? f->rank >= 0 && elements == 1 : f->rank == spec->rank;
    for (int d = 0; same && spec->rank > 0 && d < spec->rank; d++) same = f->shape[d] == spec->shape[d];
    if (!same) {
      char found_shape[96] = "[more than 4 dimensions]", declared[96] = "one element";
      if (f->rank >= 0) format_shape(found_shape, sizeof found_shape, f->shape, f->rank);
      if (spec->rank >= 0) {
        long long shape[VIT_WEIGHTS_MAX_RANK];
        for (int d = 0; d < spec->rank; d++) shape[d] = spec->shape[d];
        format_shape(declared, sizeof declared, shape, spec->rank);
      }
      snprintf(message, size, "tensor '%s' has shape %s, but the model declares %s", spec->name, found_shape, declared);
      goto done;
    }
  }
  const double t2 = seconds_now();
  report->check_seconds = t2 - t1;

  for (int s = 0; s < count; s++)
    if (convert(&specs[s], &found[s], data, message, size)) goto done;
  report->tensors = count;
  report->convert_seconds = seconds_now() - t2;
  status = 0;
done:
  free(entries);
  free(found);
  return status;
}

int vit_weights_load(const unsigned char *file, size_t bytes, const struct vit_tensor_spec *specs, int count,
                     float *vitc_blob, size_t vitc_blob_bytes, struct vit_weights_report *report) {
  memset(report, 0, sizeof *report);
  if (bytes >= 8 && memcmp(file, "VITCWTS", 8) == 0) {
    const double t0 = seconds_now();
    const int status = load_vitc(file, bytes, vitc_blob, vitc_blob_bytes, report);
    report->convert_seconds = seconds_now() - t0;
    return status;
  }
  return load_safetensors(file, bytes, specs, count, report);
}
