#!/usr/bin/env bash
# Builds bench/runtime/gemm_bench.c for each instruction set the CPU has (gcc -O2; plus clang for
# the widest), with libm and with -DVIT_VECTOR_MATH, runs them one after another, and prints a
# markdown table of median GFLOP/s for the DeiT-S shapes at 1 and 2 threads.
# When libopenblas is installed, cblas_sgemm runs on the same shapes from the same binary (in
# its own process), once
# with the environment as it is (OPENBLAS_CORETYPE=Haswell here) and once with
# OPENBLAS_CORETYPE unset for that command only (OpenBLAS then picks its AVX-512 kernels).
# Usage: bench/runtime/run_bench.sh [repeats per shape, default 51] [raw output file]
set -eu
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
repeats="${1:-51}"
raw="${2:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
out="$work/raw.txt"
: >"$out"

has_flag() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }
have_openblas=0
if printf '#include <cblas.h>\nint main(void) { return 0; }\n' |
  gcc -x c - -o "$work/probe" -lopenblas >/dev/null 2>&1; then
  have_openblas=1
fi

build() { # name cc flags...
  local name="$1" cc="$2"
  shift 2
  "$cc" -std=c11 -O2 -Wall -Wextra "$@" -I"$root/Runtime/include" "$here/gemm_bench.c" \
    "$root/Runtime/src/vit_threads.c" "$root/Runtime/src/vit_math.c" \
    "$root/Runtime/src/vit_gemm.c" "$root/Runtime/src/vit_attention.c" -o "$work/$name" \
    $([ "$*" != "${*/BENCH_OPENBLAS/}" ] && echo -lopenblas) -lm -lpthread
}

configs=()
if has_flag avx512f && has_flag avx512vl; then
  configs+=("avx512:gcc:-mavx512f -mavx512vl" "avx512-vm:gcc:-mavx512f -mavx512vl -DVIT_VECTOR_MATH"
    "avx512-vm-clang:clang:-mavx512f -mavx512vl -DVIT_VECTOR_MATH")
fi
if has_flag avx2 && has_flag fma; then
  configs+=("avx2:gcc:-mavx2 -mfma" "avx2-vm:gcc:-mavx2 -mfma -DVIT_VECTOR_MATH")
fi
configs+=("generic:gcc:-DVIT_GENERIC" "generic-vm:gcc:-DVIT_GENERIC -DVIT_VECTOR_MATH")

first=1
for c in "${configs[@]}"; do
  IFS=: read -r name cc flags <<<"$c"
  read -r -a fl <<<"$flags"
  if [ "$first" = 1 ] && [ "$have_openblas" = 1 ]; then
    fl+=(-DBENCH_OPENBLAS)
  fi
  build "$name" "$cc" "${fl[@]}"
  echo "# $name: $cc ${fl[*]}" >>"$out"
  if [ "$cc" = clang ]; then
    "$work/$name" "$repeats" vit | sed 's/^\([a-z0-9+]*\) /\1(clang) /' >>"$out"
  else
    "$work/$name" "$repeats" vit >>"$out"
  fi
  if [ "$first" = 1 ] && [ "$have_openblas" = 1 ]; then
    # separate processes: OpenBLAS's threads spin after each call and would slow ours
    echo "# cblas_sgemm, environment as it is" >>"$out"
    "$work/$name" "$repeats" openblas >>"$out"
    echo "# cblas_sgemm, OPENBLAS_CORETYPE unset for this command only" >>"$out"
    env -u OPENBLAS_CORETYPE "$work/$name" "$repeats" openblas >>"$out"
  fi
  first=0
done

[ -n "$raw" ] && cp "$out" "$raw"
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
  "gcc $(gcc -dumpfullversion); median of $repeats calls; GFLOP/s = 2mnk/time"
awk '
  /^#/ { next }
  {
    impl = $1; t = substr($2, 3); layer = $3; g = $7
    shape = layer " " $4 " " $5 " " $6
    key = shape " | " t
    if (!(key in seen)) { seen[key] = 1; rows[++nr] = key }
    if (!(impl in cseen)) { cseen[impl] = 1; cols[++nc] = impl }
    v[key, impl] = g
  }
  END {
    line = "| layer (m k n) | threads |"; sep = "|---|---|"
    for (c = 1; c <= nc; c++) { line = line " " cols[c] " |"; sep = sep "---:|" }
    print line; print sep
    for (r = 1; r <= nr; r++) {
      line = "| " rows[r] " |"
      for (c = 1; c <= nc; c++) line = line " " ((rows[r], cols[c]) in v ? v[rows[r], cols[c]] : "") " |"
      print line
    }
  }' "$out"
