#!/bin/sh
# Builds the tiny model's binary for every pruning method with AddressSanitizer (and its leak
# checker) and UndefinedBehaviorSanitizer, runs each on a good image and on bad inputs, and
# fails on any sanitizer report (docs/reliability.md). Then builds it (two methods) with gcc's
# ThreadSanitizer and runs it at 2 and 3 threads.
#
#   tools/sanitize.sh            VITC=path/to/vitc to use a built vitc (default: swift build)
#
# A clean refusal (exit status 2, one "error:" line) is what a bad input must give. A sanitizer
# report is told apart by its text ("runtime error", "ERROR: AddressSanitizer",
# "ERROR: LeakSanitizer") and by its exit status: ASan exits with 99, UBSan halts at the first
# error. Work files go to .build/sanitize/. The last line is "N passed, N failed".
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/.build/sanitize"
cc=${CC:-clang}
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
ASAN_OPTIONS=exitcode=99:detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=98
LSAN_OPTIONS=exitcode=99
export ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS

cd "$root" || exit 1
if [ -z "${VITC:-}" ]; then
  swift build --product vitc >/dev/null || { echo "tools/sanitize.sh: swift build failed" >&2; exit 1; }
  VITC="$(swift build --show-bin-path)/vitc"
fi

rm -rf "$work"
mkdir -p "$work/inputs"
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "ok    $1"; }
failure() {
  failed=$((failed + 1))
  echo "FAIL  $1"
  [ -f "$work/stderr" ] && sed 's/^/      /' "$work/stderr" | head -40
}

# Bad inputs, made once. A truncated P6, a P6 with a sample above its maxval, a missing file,
# and an evaluation set whose images are not zero-run encoded (a 0 without a count).
head -c 5000 samples/images/chelsea.ppm >"$work/inputs/truncated.ppm"
printf 'P6\n2 2\n100\n' >"$work/inputs/above-maxval.ppm"
printf '\001\002\003\004\005\006\007\010\011\200\001\002' >>"$work/inputs/above-maxval.ppm"
mkdir -p "$work/inputs/bad-eval" "$work/inputs/eval"
printf '\001\002' >"$work/inputs/bad-eval/test-labels.u8"
printf '\007\007\000\000\007' >"$work/inputs/bad-eval/test-images.rle"
# A good evaluation set: two 224x224 grey images (no zero byte, so no encoding needed).
printf '\003\005' >"$work/inputs/eval/test-labels.u8"
head -c 100352 /dev/zero | tr '\000' '\177' >"$work/inputs/eval/test-images.rle"

# Runs the binary; $1 names the case, $2 is "good" (exit 0) or the start of the expected
# one-line refusal; the rest are the arguments.
check() {
  name=$1 expect=$2
  shift 2
  "$@" >"$work/stdout" 2>"$work/stderr"
  status=$?
  if grep -q -e 'runtime error' -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' \
    -e 'SUMMARY: UndefinedBehaviorSanitizer' -e 'SUMMARY: AddressSanitizer' "$work/stderr"; then
    failure "$name: sanitizer report (exit status $status)"
  elif [ "$status" -ge 98 ] || [ "$status" -gt 128 ]; then
    failure "$name: exit status $status (a sanitizer or a signal)"
  elif [ "$expect" = good ]; then
    if [ "$status" -eq 0 ]; then pass "$name"; else failure "$name: exit status $status, expected 0"; fi
  elif [ "$status" -ne 2 ]; then
    failure "$name: exit status $status, expected 2 (a refusal)"
  elif [ "$(wc -l <"$work/stderr")" -ne 1 ] || ! grep -q -e "$expect" "$work/stderr"; then
    failure "$name: expected one line containing '$expect'"
  else
    pass "$name"
  fi
}

for method in none dyvit:0.7 evit:0.7 evit:0.7,nofuse asvit bat:0.7 tome:8; do
  dir="$work/$(echo "$method" | tr ':,.' '___')"
  mkdir -p "$dir"
  # vitc compile writes the C and prints the command that builds it; build it with the
  # sanitizers added (the printed command runs in the output folder).
  if ! "$VITC" compile samples/tiny.graph --random-weights 1 --prune "$method" -o "$dir/model.c" >"$work/stdout" 2>"$work/stderr"; then
    failure "$method: vitc compile"
    continue
  fi
  command=$(sed -n 's/^build for host with: //p' "$work/stdout")
  if [ -z "$command" ]; then
    failure "$method: vitc compile printed no 'build for host with:' line"
    continue
  fi
  # The printed command (absolute paths, -o DIR/model) with our compiler and flags for its
  # compiler and -O level.
  command=$(echo "$command" | sed -E "s/^(cc|clang|gcc) /$cc $flags /; s/ -O[0-3s]( |$)/ /g")
  if ! sh -c "$command" >"$work/stdout" 2>"$work/stderr"; then
    failure "$method: build with sanitizers ($command)"
    continue
  fi
  bin="$dir/model"
  check "$method: chelsea.ppm with --trace, --kept-map, --out, 2 threads" good \
    "$bin" samples/images/chelsea.ppm --trace "$dir/trace.json" --kept-map "$dir/kept.ppm" --out "$dir/logits.f32" --threads 2
  check "$method: --eval on a 2-image set" good "$bin" --eval "$work/inputs/eval"
  check "$method: truncated PPM" "error: truncated PPM" "$bin" "$work/inputs/truncated.ppm"
  check "$method: sample above maxval" "error: PPM sample 9: 128 is above the maximum 100" "$bin" "$work/inputs/above-maxval.ppm"
  check "$method: missing file" "error: no such file" "$bin" "$work/inputs/nowhere.ppm"
  check "$method: --threads 0" "error: --threads takes a whole number of at least 1" "$bin" --threads 0 samples/images/chelsea.ppm
  check "$method: malformed --eval set" "error: not an evaluation set" "$bin" --eval "$work/inputs/bad-eval"
  check "$method: --kept-map naming the input" "error: --kept-map names the input image" \
    "$bin" "$work/inputs/truncated.ppm" --kept-map "$work/inputs/./truncated.ppm"
done

# Models compiled without weights: the run-time loader (Runtime/src/vit_weights.c) on the
# weights vitc save-weights writes, in F32 and BF16, and on wrong files.
for method in dyvit:0.7 asvit; do
  dir="$work/load-$(echo "$method" | tr ':,.' '___')"
  mkdir -p "$dir"
  if ! "$VITC" compile samples/tiny.graph --prune "$method" -o "$dir/model.c" >"$work/stdout" 2>"$work/stderr"; then
    failure "$method without weights: vitc compile"
    continue
  fi
  command=$(sed -n 's/^build for host with: //p' "$work/stdout" | sed -E "s/^(cc|clang|gcc) /$cc $flags /; s/ -O[0-3s]( |$)/ /g")
  if ! sh -c "$command" >"$work/stdout" 2>"$work/stderr"; then
    failure "$method without weights: build with sanitizers ($command)"
    continue
  fi
  for dtype in F32 BF16; do
    if ! "$VITC" save-weights samples/tiny.graph --random-weights 1 --prune "$method" --dtype "$dtype" -o "$dir/w-$dtype.safetensors" >"$work/stdout" 2>"$work/stderr"; then
      failure "$method: vitc save-weights --dtype $dtype"
      continue
    fi
    check "$method without weights: --weights $dtype safetensors, --bench 2" good \
      "$dir/model" --weights "$dir/w-$dtype.safetensors" samples/images/chelsea.ppm --trace "$dir/trace.json" --bench 2
  done
  head -c 100000 "$dir/w-F32.safetensors" >"$work/inputs/truncated.safetensors"
  check "$method without weights: truncated safetensors" "lie outside the" \
    "$dir/model" --weights "$work/inputs/truncated.safetensors" samples/images/chelsea.ppm
  check "$method without weights: an image as weights" "not a safetensors file\\|header length" \
    "$dir/model" --weights samples/images/chelsea.ppm samples/images/chelsea.ppm
  check "$method without weights: no --weights" "compiled without weights" "$dir/model" samples/images/chelsea.ppm
done
# ThreadSanitizer on the thread pool as the model uses it: the tiny model built with gcc
# -fsanitize=thread (the Swift toolchain's clang cannot link a TSan program here), run at 2 and
# 3 threads, once and with --bench; any "WARNING: ThreadSanitizer" report fails.
if printf 'int main(void) { return 0; }\n' | gcc -x c - -fsanitize=thread -o "$work/tsan_probe" >/dev/null 2>&1; then
  for method in none tome:8; do
    dir="$work/tsan_$(echo "$method" | tr ':,.' '___')"
    mkdir -p "$dir"
    if ! "$VITC" compile samples/tiny.graph --random-weights 1 --prune "$method" -o "$dir/model.c" >"$work/stdout" 2>"$work/stderr"; then
      failure "tsan $method: vitc compile"
      continue
    fi
    command=$(sed -n 's/^build for host with: //p' "$work/stdout" |
      sed -E "s/^(cc|clang|gcc) /gcc -fsanitize=thread -g -O1 /; s/ -O[0-3s]( |$)/ /g")
    if ! sh -c "$command" >"$work/stdout" 2>"$work/stderr"; then
      failure "tsan $method: build ($command)"
      continue
    fi
    for threads in 2 3; do
      name="tsan $method: chelsea.ppm --bench 5, $threads threads"
      TSAN_OPTIONS=halt_on_error=1:exitcode=97 "$dir/model" samples/images/chelsea.ppm --bench 5 --threads "$threads" \
        >"$work/stdout" 2>"$work/stderr"
      status=$?
      if grep -q 'WARNING: ThreadSanitizer' "$work/stderr" || [ "$status" -ne 0 ]; then
        failure "$name: exit status $status"
      else
        pass "$name"
      fi
    done
  done
else
  echo "skip  tsan: gcc cannot link a ThreadSanitizer program here"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
