#!/usr/bin/env bash
# Builds Runtime/tests/test_kernels.c in every configuration the emitted code can be built in
# and runs each: gcc and clang x {AVX-512, AVX2+FMA, generic} x {threads, -DVIT_NO_THREADS}
# x {libm exp/erf, -DVIT_VECTOR_MATH}, plus -DVIT_BLAS_OPENBLAS when cblas.h and libopenblas are
# there, plus NEON (aarch64, armv7) under qemu when the cross compilers and qemu-user are there
# (RUNTIME_TESTS_CROSS=0 skips them). ISA configurations the CPU lacks are skipped.
# Then builds Runtime/tests/test_prune.c with src/vit_prune.c (portable, no ISA code) with gcc
# and clang, -pedantic, in the default, -DVIT_GENERIC and -O3 -march=native configurations.
# First runs tests/check_layers.sh (no call from a runtime file to one of a higher layer, no
# function defined twice, none without a caller), and checks that it catches a planted upward call.
# Prints one line per configuration and "N passed, N failed" (configurations) last; exits 1 if
# any configuration fails to build or fails a test.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rt="$(cd "$here/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

common=(-std=c11 -O2 -Wall -Wextra -Werror)
# The kernels, lowest layer first (vit_prune.c is tested on its own below).
kernels=("$rt/src/vit_threads.c" "$rt/src/vit_math.c" "$rt/src/vit_gemm.c" "$rt/src/vit_attention.c")
sources=("$here/test_kernels.c" "${kernels[@]}")
libs=()
pass=0
fail=0
skip=0

has_flag() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }

# The layers, then the same check on a copy where the thread pool calls up into the GEMM.
if "$here/check_layers.sh" >"$work/layers.log" 2>&1; then
  echo "ok   layers: $(tail -n 1 "$work/layers.log")"
  pass=$((pass + 1))
else
  echo "FAIL layers: $(tail -n 1 "$work/layers.log")"
  grep '^violation' "$work/layers.log" | head -20 | sed 's/^/    /'
  fail=$((fail + 1))
fi
mkdir -p "$work/planted"
cp -r "$rt/include" "$rt/src" "$rt/main" "$work/planted/"
printf '\n#include "vit_gemm.h"\nvoid vit_planted(float *y) { vit_linear_f32(y, 1, 1, y, 0, 1, VIT_EPI_NONE, 0, y); }\n' \
  >>"$work/planted/src/vit_threads.c"
if ! "$here/check_layers.sh" "$work/planted" >"$work/planted.log" 2>&1 &&
  grep -q 'vit_threads.c (layer [0-9]*) calls vit_linear_f32 of vit_gemm.c' "$work/planted.log"; then
  echo "ok   layers: a planted call from vit_threads.c up to vit_linear_f32 is caught"
  pass=$((pass + 1))
else
  echo "FAIL layers: a planted call from vit_threads.c up to vit_linear_f32 is not caught"
  fail=$((fail + 1))
fi

# run NAME RUNNER CC FLAGS... : build with CC and FLAGS, run (under RUNNER when not empty)
run() {
  local name="$1" runner="$2" cc="$3"
  shift 3
  local exe="$work/t$((pass + fail))"
  if ! "$cc" "${common[@]}" "$@" -I"$rt/include" "${sources[@]}" -o "$exe" "${libs[@]}" -lm -lpthread \
    >"$exe.build" 2>&1; then
    echo "FAIL $name: build"
    sed 's/^/    /' "$exe.build" | head -20
    fail=$((fail + 1))
    return
  fi
  local status=0
  if [ -n "$runner" ]; then
    $runner "$exe" >"$exe.log" 2>&1 || status=$?
  else
    "$exe" >"$exe.log" 2>&1 || status=$?
  fi
  if [ "$status" -eq 0 ]; then
    echo "ok   $name: $(tail -n 1 "$exe.log")"
    pass=$((pass + 1))
  else
    echo "FAIL $name: exit $status: $(tail -n 1 "$exe.log")"
    grep '^FAIL' "$exe.log" | head -20 | sed 's/^/    /'
    fail=$((fail + 1))
  fi
}

isas=()
if has_flag avx512f && has_flag avx512vl; then
  isas+=("avx512:-mavx512f -mavx512vl")
else
  echo "skip avx512 configurations: no avx512f/avx512vl in /proc/cpuinfo"
  skip=$((skip + 1))
fi
if has_flag avx2 && has_flag fma; then
  isas+=("avx2:-mavx2 -mfma")
else
  echo "skip avx2 configurations: no avx2/fma in /proc/cpuinfo"
  skip=$((skip + 1))
fi
isas+=("generic:-DVIT_GENERIC")

for cc in gcc clang; do
  if ! command -v "$cc" >/dev/null; then
    echo "skip $cc: not installed"
    skip=$((skip + 1))
    continue
  fi
  for entry in "${isas[@]}"; do
    isa="${entry%%:*}"
    read -r -a flags <<<"${entry#*:}"
    for threads in "" "-DVIT_NO_THREADS"; do
      for math in "" "-DVIT_VECTOR_MATH"; do
        extra=()
        [ -n "$threads" ] && extra+=("$threads")
        [ -n "$math" ] && extra+=("$math")
        run "$cc $isa ${threads:-threads} ${math:-libm}" "" "$cc" "${flags[@]}" "${extra[@]}"
      done
    done
  done
  # the emitted Makefile's flags
  if has_flag avx2; then
    run "$cc -O3 -march=native -ffp-contract=off" "" "$cc" -O3 -march=native -ffp-contract=off
  fi
done

# the thread pool on its own: a stress run (every task once, on an allowed thread; joined and
# restarted), more tasks than a claim word counts, nesting, and a worker held in a signal
# handler, which the caller must not wait for; plainly, serially, and under ThreadSanitizer
sources=("$here/test_threads.c" "$rt/src/vit_threads.c")
for cc in gcc clang; do
  command -v "$cc" >/dev/null || continue
  run "$cc threads pool" "" "$cc"
  run "$cc threads pool -DVIT_NO_THREADS" "" "$cc" -DVIT_NO_THREADS
  if printf 'int main(void) { return 0; }\n' | "$cc" -x c - -fsanitize=thread -o "$work/tsan_probe" >/dev/null 2>&1; then
    run "$cc threads pool -fsanitize=thread" "" "$cc" -O1 -g -fsanitize=thread
  else
    echo "skip $cc threads pool -fsanitize=thread: $cc cannot link a ThreadSanitizer program here"
    skip=$((skip + 1))
  fi
done

# token-pruning kernels (vit_prune.c does not depend on the ISA or on threads)
sources=("$here/test_prune.c" "$rt/src/vit_prune.c")
for cc in gcc clang; do
  command -v "$cc" >/dev/null || continue
  run "$cc prune" "" "$cc" -pedantic
  run "$cc prune -DVIT_GENERIC" "" "$cc" -pedantic -DVIT_GENERIC
  if has_flag avx2; then
    run "$cc prune -O3 -march=native -ffp-contract=off" "" "$cc" -pedantic -O3 -march=native -ffp-contract=off
  fi
done
# The kernels, lowest layer first (vit_prune.c is tested on its own below).
kernels=("$rt/src/vit_threads.c" "$rt/src/vit_math.c" "$rt/src/vit_gemm.c" "$rt/src/vit_attention.c")
sources=("$here/test_kernels.c" "${kernels[@]}")

# OpenBLAS for vit_linear_f32
if printf '#include <cblas.h>\nint main(void) { return 0; }\n' |
  gcc -x c - -o "$work/cblas_probe" -lopenblas >/dev/null 2>&1; then
  for cc in gcc clang; do
    command -v "$cc" >/dev/null || continue
    libs=(-lopenblas)
    run "$cc openblas" "" "$cc" -march=native -DVIT_BLAS_OPENBLAS
    libs=()
  done
else
  echo "skip openblas: no cblas.h / libopenblas (apt-get install libopenblas-dev)"
  skip=$((skip + 1))
fi

# NEON under qemu
if [ "${RUNTIME_TESTS_CROSS:-1}" != 0 ]; then
  if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null; then
    run "aarch64-gcc neon" "qemu-aarch64 -L /usr/aarch64-linux-gnu" aarch64-linux-gnu-gcc
    run "aarch64-gcc neon vecmath" "qemu-aarch64 -L /usr/aarch64-linux-gnu" aarch64-linux-gnu-gcc -DVIT_VECTOR_MATH
    if command -v clang >/dev/null; then
      run "aarch64-clang neon vecmath" "qemu-aarch64 -L /usr/aarch64-linux-gnu" clang --target=aarch64-linux-gnu -DVIT_VECTOR_MATH
    fi
  else
    echo "skip aarch64: needs aarch64-linux-gnu-gcc and qemu-aarch64"
    skip=$((skip + 1))
  fi
  if command -v arm-linux-gnueabihf-gcc >/dev/null && command -v qemu-arm >/dev/null; then
    run "armv7-gcc neon-vfpv4" "qemu-arm -L /usr/arm-linux-gnueabihf" arm-linux-gnueabihf-gcc -mfpu=neon-vfpv4
    run "armv7-gcc neon (vmlaq) vecmath" "qemu-arm -L /usr/arm-linux-gnueabihf" arm-linux-gnueabihf-gcc -mfpu=neon -DVIT_VECTOR_MATH
  else
    echo "skip armv7: needs arm-linux-gnueabihf-gcc and qemu-arm"
    skip=$((skip + 1))
  fi
fi

echo "configurations: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
