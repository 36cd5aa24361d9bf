/* libFuzzer harness: the compiled binary's PPM reader and preprocessing (Runtime/main/main.c,
   compiled alone with VIT_FUZZ_READERS), DeiT's settings, crop 16. tools/fuzz.sh ppm_c SECONDS */
#define VIT_FUZZ_READERS 1
#define VIT_MODEL_CROP_PCT 0.875
#define VIT_MODEL_MEAN {0.485f, 0.456f, 0.406f}
#define VIT_MODEL_STD {0.229f, 0.224f, 0.225f}
#include "../Runtime/main/main.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct image image;
  char message[256];
  const char *error = ppm_decode(data, size, &image, message, sizeof message);
  if (error) {
    if (strchr(error, '\n') || strlen(error) == 0) abort(); /* one line, never empty */
    return 0;
  }
  if (image.width <= 0 || image.height <= 0 || !image.rgb) abort();
  static float out[3 * 16 * 16];
  preprocess(image, 16, out);
  for (size_t i = 0; i < sizeof out / sizeof *out; i++)
    if (!isfinite(out[i])) abort();
  free(image.rgb);
  (void)read_ppm; /* the file reader is main.c's; the fuzzer feeds bytes */
  return 0;
}
