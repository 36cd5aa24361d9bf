#!/usr/bin/env bash
# Builds bench/runtime/gemm_bench.c for each instruction set the CPU has (gcc -O2; plus clang for
# the widest), with libm and with -DVIT_VECTOR_MATH, runs them one after another, and prints a
# markdown table of median GFLOP/s for the DeiT-S shapes at 1 and 2 threads.
# When libopenblas is installed, cblas_sgemm runs on the same shapes from the same binary (in
# its own process), once
# with the environment as it is (OPENBLAS_CORETYPE=Haswell here) and once with
# OPENBLAS_CORETYPE unset for that command only (OpenBLAS then picks its AVX-512 kernels).
# It also builds bench/runtime/fma_peak.c with each instruction set's flags and measures that
# ISA's FMA peak per core (1 thread, and 2 threads at once), then prints a second table: each
# cell as a percentage of the peak of its ISA at that thread count (OpenBLAS against the widest
# ISA's peak), with the CPU model.
# Last, the int8 linear (vit_linear_s8) beside vit_linear_f32 in the same process, 1 thread
# (bench/runtime/qgemm_bench.c), for the widest ISA and the portable C build.
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

peaks="$work/peaks.txt" # lines "ISA THREADS GFLOP/s"
: >"$peaks"
widest=""
first=1
for c in "${configs[@]}"; do
  IFS=: read -r name cc flags <<<"$c"
  read -r -a fl <<<"$flags"
  # the ISA as the kernels name it (avx512, avx2, neon, scalar): fma_peak.c prints it
  "$cc" -std=c11 -O2 -Wall -Wextra "${fl[@]}" -I"$root/Runtime/include" "$here/fma_peak.c" \
    -o "$work/peak-$name" -lpthread
  isa=$("$work/peak-$name" --isa)
  [ -n "$widest" ] || widest="$isa"
  if ! grep -q "^$isa " "$peaks"; then
    for t in 1 2; do
      line=$("$work/peak-$name" "$t")
      echo "# $line" >>"$out"
      echo "$isa $t $(echo "$line" | sed 's/.* best \([0-9.]*\) GFLOP.*/\1/')" >>"$peaks"
    done
  fi
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
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "$cpu, $(nproc) cores;" \
  "gcc $(gcc -dumpfullversion); median of $repeats calls; GFLOP/s = 2mnk/time"
table() { # $1 = "gflops" or "percent"
  awk -v mode="$1" -v widest="$widest" '
    FNR == NR { peak[$1, $2] = $3; next }
    /^#/ { next }
    {
      impl = $1; t = substr($2, 3); layer = $3; g = $7
      shape = layer " " $4 " " $5 " " $6
      key = shape " | " t
      if (!(key in seen)) { seen[key] = 1; rows[++nr] = key; thr[key] = t }
      if (!(impl in cseen)) { cseen[impl] = 1; cols[++nc] = impl }
      isa = impl; sub(/[+(].*/, "", isa)
      if (impl ~ /^openblas/) isa = widest
      # no percentage for the portable C build: the compiler vectorises its GEMM (SSE2 on
      # x86-64), so the scalar FMA loop is no bound for it
      if (mode == "percent") g = (isa != "scalar" && (isa, t) in peak && peak[isa, t] > 0) ? sprintf("%.0f %%", 100 * g / (t * peak[isa, t])) : "–"
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
    }' "$peaks" "$out"
}
table gflops
echo
echo "FMA peak per core (bench/runtime/fma_peak.c, best of 15; 2 threads = each of 2 cores at once), $cpu:" \
  "$(awk '{ printf "%s%s %s thread(s) %s GFLOP/s", (NR > 1 ? "; " : ""), $1, $2, $3 }' "$peaks")"
echo
echo "The same cells as a percentage of the FMA peak per core of their ISA at that thread count" \
  "(for 2 threads: of 2 x the per-core peak; OpenBLAS against the $widest peak):"
table percent

echo
echo "int8 vit_linear_s8 (GOP/s, quantization of x included) beside fp32 vit_linear_f32 (GFLOP/s)," \
  "timed in alternation in one process, 1 thread, median of $repeats (bench/runtime/qgemm_bench.c):"
qconfigs=()
if has_flag avx2 && has_flag fma; then qconfigs+=("avx2:-mavx2 -mfma -DVIT_VECTOR_MATH"); fi
qconfigs+=("generic:-DVIT_GENERIC -DVIT_VECTOR_MATH")
for c in "${qconfigs[@]}"; do
  name="${c%%:*}"
  read -r -a fl <<<"${c#*:}"
  gcc -std=c11 -O2 -Wall -Wextra "${fl[@]}" -I"$root/Runtime/include" "$here/qgemm_bench.c" \
    "$root/Runtime/src/vit_threads.c" "$root/Runtime/src/vit_math.c" "$root/Runtime/src/vit_gemm.c" \
    "$root/Runtime/src/vit_qgemm.c" -o "$work/qgemm-$name" -lm -lpthread
  echo
  "$work/qgemm-$name" "$repeats" 1 | sed 's/^# /gcc -O2 '"${c#*:}"': /'
done
