#!/usr/bin/env bash
# Builds Runtime/tests/test_kernels.c in every configuration the emitted code can be built in
# and runs each: gcc and clang x {AVX-512, AVX2+FMA, generic} x {threads, -DVIT_NO_THREADS}
# x {libm exp/erf, -DVIT_VECTOR_MATH}, plus -DVIT_BLAS_OPENBLAS when cblas.h and libopenblas are
# there, plus NEON (aarch64, armv7) under qemu when the cross compilers and qemu-user are there
# (RUNTIME_TESTS_CROSS=0 skips them). ISA configurations the CPU lacks are skipped.
# Builds Runtime/tests/test_qgemm.c (the int8 linear, src/vit_qgemm.c) in every configuration
# test_kernels.c runs in, plus aarch64 +dotprod (SDOT), -std=gnu11 (gcc's -ffp-contract=fast) and
# gcc -fsanitize=thread, and checks that it prints the same checksum of its fixed results in
# all of them (bitwise equal across ISAs, compilers and thread counts).
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
# the int8 linear's harness and the files it needs
qsources=("$here/test_qgemm.c" "$rt/src/vit_threads.c" "$rt/src/vit_math.c" "$rt/src/vit_qgemm.c")
libs=()
last_log=""
checksums="$work/checksums" # lines "CHECKSUM configuration"
: >"$checksums"
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
  last_log="$exe.log"
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
  [ -f "$exe.log" ] || : >"$exe.log"
  if [ "$status" -eq 0 ]; then
    echo "ok   $name: $(tail -n 1 "$exe.log")"
    pass=$((pass + 1))
  else
    echo "FAIL $name: exit $status: $(tail -n 1 "$exe.log")"
    grep '^FAIL' "$exe.log" | head -20 | sed 's/^/    /'
    fail=$((fail + 1))
  fi
}

# run_q NAME RUNNER CC FLAGS... : run test_qgemm.c (src/vit_qgemm.c) in that configuration and
# record its checksum
run_q() {
  local saved=("${sources[@]}")
  sources=("${qsources[@]}")
  last_log=""
  run "qgemm $1" "$2" "${@:3}"
  sources=("${saved[@]}")
  if [ -n "$last_log" ] && grep -q '^checksum ' "$last_log"; then
    echo "$(grep -m1 '^checksum ' "$last_log" | cut -d' ' -f2) $1" >>"$checksums"
  fi
}
# run_kq NAME RUNNER CC FLAGS... : test_kernels.c, then test_qgemm.c, in one configuration
run_kq() {
  run "$@"
  run_q "$@"
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
        run_kq "$cc $isa ${threads:-threads} ${math:-libm}" "" "$cc" "${flags[@]}" "${extra[@]}"
      done
    done
  done
  # the emitted Makefile's flags
  if has_flag avx2; then
    run_kq "$cc -O3 -march=native -ffp-contract=off" "" "$cc" -O3 -march=native -ffp-contract=off
  fi
done
# the int8 dequantization must not be contracted even where the compiler's default would:
# gcc's GNU C default is -ffp-contract=fast (clang's -ffp-contract=fast is not supported)
if has_flag avx2; then
  run_q "gcc -std=gnu11 -O3 -march=native (-ffp-contract=fast)" "" gcc -std=gnu11 -O3 -march=native
  run_q "clang -std=gnu11 -O3 -march=native" "" clang -std=gnu11 -O3 -march=native
fi
if printf 'int main(void) { return 0; }\n' | gcc -x c - -fsanitize=thread -o "$work/tsan_probe" >/dev/null 2>&1; then
  run_q "gcc -fsanitize=thread" "" gcc -O1 -g -fsanitize=thread
fi

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
    run_kq "$cc openblas" "" "$cc" -march=native -DVIT_BLAS_OPENBLAS
    libs=()
  done
else
  echo "skip openblas: no cblas.h / libopenblas (apt-get install libopenblas-dev)"
  skip=$((skip + 1))
fi

# NEON under qemu
if [ "${RUNTIME_TESTS_CROSS:-1}" != 0 ]; then
  if command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null; then
    q64="qemu-aarch64 -L /usr/aarch64-linux-gnu"
    run_kq "aarch64-gcc neon" "$q64" aarch64-linux-gnu-gcc
    run_kq "aarch64-gcc neon vecmath" "$q64" aarch64-linux-gnu-gcc -DVIT_VECTOR_MATH
    run_q "aarch64-gcc -march=armv8-a -std=gnu11" "$q64" aarch64-linux-gnu-gcc -march=armv8-a -std=gnu11
    run_q "aarch64-gcc -march=armv8.2-a+dotprod (sdot)" "$q64" aarch64-linux-gnu-gcc -march=armv8.2-a+dotprod
    if command -v clang >/dev/null; then
      run_kq "aarch64-clang neon vecmath" "$q64" clang --target=aarch64-linux-gnu -DVIT_VECTOR_MATH
      run_q "aarch64-clang -march=armv8.2-a+dotprod (sdot)" "$q64" clang --target=aarch64-linux-gnu -march=armv8.2-a+dotprod
    fi
  else
    echo "skip aarch64: needs aarch64-linux-gnu-gcc and qemu-aarch64"
    skip=$((skip + 1))
  fi
  if command -v arm-linux-gnueabihf-gcc >/dev/null && command -v qemu-arm >/dev/null; then
    q32="qemu-arm -L /usr/arm-linux-gnueabihf"
    run_kq "armv7-gcc neon-vfpv4" "$q32" arm-linux-gnueabihf-gcc -mfpu=neon-vfpv4
    run_kq "armv7-gcc neon (vmlaq) vecmath" "$q32" arm-linux-gnueabihf-gcc -mfpu=neon -DVIT_VECTOR_MATH
    run_q "armv7-gcc -march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard" "$q32" arm-linux-gnueabihf-gcc -march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard
  else
    echo "skip armv7: needs arm-linux-gnueabihf-gcc and qemu-arm"
    skip=$((skip + 1))
  fi
fi

# test_qgemm.c's fixed results: the same bits in every configuration
if [ -s "$checksums" ]; then
  if [ "$(cut -d' ' -f1 "$checksums" | sort -u | wc -l)" -eq 1 ]; then
    echo "ok   qgemm checksum $(head -n 1 "$checksums" | cut -d' ' -f1) in all $(wc -l <"$checksums") configurations"
    pass=$((pass + 1))
  else
    echo "FAIL qgemm checksums differ between configurations:"
    sort "$checksums" | sed 's/^/    /'
    fail=$((fail + 1))
  fi
fi

echo "configurations: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
