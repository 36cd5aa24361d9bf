/* libFuzzer harness: the compiled binary's evaluation-set reader (Runtime/main/main.c's
   eval_decode, compiled alone with VIT_FUZZ_READERS) for 8x8 images and 10 classes. The first
   byte of the input splits it: that many label bytes (at most the input's rest), then the
   encoded images. A refusal is one line, never empty; an accepted set decodes to exactly one
   image per label. tools/fuzz.sh evalset_c SECONDS */
#define VIT_FUZZ_READERS 1
#define VIT_MODEL_CROP_PCT 0.875
#define VIT_MODEL_MEAN {0.485f, 0.456f, 0.406f}
#define VIT_MODEL_STD {0.229f, 0.224f, 0.225f}
#include "../Runtime/main/main.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t count = data[0];
  if (count > size - 1) count = size - 1;
  /* Copies of exactly their size, so that ASan sees a read past either end. */
  unsigned char *labels = malloc(count ? count : 1), *encoded = malloc(size - 1 - count ? size - 1 - count : 1);
  if (!labels || !encoded) abort();
  memcpy(labels, data + 1, count);
  memcpy(encoded, data + 1 + count, size - 1 - count);
  unsigned char *grey;
  int about_labels;
  char message[200];
  const char *error = eval_decode(labels, count, encoded, size - 1 - count, 8, 10, &grey, &about_labels, message, sizeof message);
  if (error) {
    if (strchr(error, '\n') || strlen(error) == 0 || grey) abort();
  } else {
    if (!grey || count == 0) abort();
    for (size_t i = 0; i < count; i++)
      if (labels[i] >= 10) abort();
    volatile unsigned char last = grey[count * 64 - 1]; /* every pixel is there */
    (void)last;
    owned_free(grey);
  }
  free(labels);
  free(encoded);
  (void)read_ppm;
  return 0;
}
