#!/usr/bin/env bash
# The NEON GEMM microkernel's steady-state loop through llvm-mca: cycles per iteration of the
# k loop of the full-size microtile (aarch64: vit_microtile_6, 6 rows x 16 columns; armv7:
# vit_microtile_2, 2 x 16) as llvm-mca's model of each core predicts it, and FLOPs per cycle
# against the FMA peak the same model gives a loop of nothing but independent multiply-adds.
# No board needed; nothing is run. Prints a markdown table (Runtime/README.md has it).
#
#   bash bench/runtime/mca.sh [--keep DIR]
#
# How: Runtime/src/vit_gemm.c is compiled to assembly for each core (clang --target=… -mcpu=…,
# and the cross gcc vitc --target uses by default, when installed, -O2 as vitc builds it).
# The loop is found in the assembly, not marked in the C: it is the block between a label and
# the backward branch to it that holds the most multiply-adds inside the microtile function,
# so the figures are for the exact code the runtime ships. That block, wrapped in
# LLVM-MCA-BEGIN/END, goes to llvm-mca (-iterations=500); cycles per iteration = total cycles
# / 500. The peak loop is 12 independent vector multiply-adds (fmla v.4s on aarch64, vfma.f32
# q on armv7 with VFPv4, vmla.f32 q on plain NEON) plus the loop's own count and branch.
# Needs llvm-mca (Debian: apt-get install llvm) and clang; gcc columns need the cross gcc.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
keep=""
[ "${1:-}" = "--keep" ] && keep="${2:?--keep DIR}"
mca=$(command -v llvm-mca || command -v llvm-mca-14 || true)
[ -n "$mca" ] || { echo "bench/runtime/mca.sh: llvm-mca not found (apt-get install llvm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
iters=500

# name | triple for clang and llvm-mca | -mcpu to compile for | -mcpu of the llvm-mca model |
# extra flags | microtile function | cross gcc
# (llvm-mca 14 has no model for 32-bit Cortex-A7 or A53, only itineraries it cannot use: those
# rows say so, and the armv7 code compiled for the A7 is also shown on the 32-bit Cortex-A57
# model, the one 32-bit NEON model it has.)
targets=(
  "aarch64 cortex-a76|aarch64-linux-gnu|cortex-a76|cortex-a76||vit_microtile_6|aarch64-linux-gnu-gcc"
  "aarch64 cortex-a72|aarch64-linux-gnu|cortex-a72|cortex-a72||vit_microtile_6|aarch64-linux-gnu-gcc"
  "aarch64 cortex-a53|aarch64-linux-gnu|cortex-a53|cortex-a53||vit_microtile_6|aarch64-linux-gnu-gcc"
  "armv7 cortex-a7|armv7a-linux-gnueabihf|cortex-a7|cortex-a7|-mfpu=neon-vfpv4 -mfloat-abi=hard|vit_microtile_2|arm-linux-gnueabihf-gcc"
  "armv7 cortex-a53|armv7a-linux-gnueabihf|cortex-a53|cortex-a53|-mfpu=neon-vfpv4 -mfloat-abi=hard|vit_microtile_2|arm-linux-gnueabihf-gcc"
  "armv7 cortex-a7 code on the A57 model|armv7a-linux-gnueabihf|cortex-a7|cortex-a57|-mfpu=neon-vfpv4 -mfloat-abi=hard|vit_microtile_2|arm-linux-gnueabihf-gcc"
)

# loop FILE FUNCTION [MNEMONICS]: prints the instructions of the innermost loop in FUNCTION with
# the most multiply-adds (a label, then the lines up to a branch back to that label); MNEMONICS,
# a regex, says what counts as one (default: the float multiply-adds).
extract_loop() {
  python3 - "$1" "$2" "${3:-fmla|fmadd|vfma|vmla}" <<'EOF'
import re, sys
text = open(sys.argv[1]).read().splitlines()
fn = sys.argv[2]
ops = sys.argv[3]
# FUNCTION may list alternatives, a,b: the first one the assembly defines (gcc inlines
# armv7's only int8 tile, vit_qtile_1, into vit_qpanels)
start = next((i for f in fn.split(",") for i, l in enumerate(text) if re.match(rf"^{re.escape(f)}:", l)), None)
if start is None:
    sys.exit(f"none of {fn} in the assembly")
body = []
for l in text[start + 1:]:
    if re.match(r"^[A-Za-z_][\w.]*:", l) and not l.startswith("."):  # next function
        break
    body.append(l)
labels = {}
for i, l in enumerate(body):
    m = re.match(r"^\s*(\.?L[\w.$]+):", l)
    if m:
        labels[m.group(1)] = i
best = None
fma = re.compile(rf"^\s*({ops})\b")
for j, l in enumerate(body):
    m = re.match(r"^\s*(b\.\w+|b\w*|bne|blt|bgt|cbnz|cbz|tbnz|tbz)\s+(?:.*,\s*)?(\.?L[\w.$]+)\s*$", l.split("//")[0].split("@")[0])
    if not m or m.group(2) not in labels or labels[m.group(2)] >= j:
        continue
    block = [x for x in body[labels[m.group(2)] + 1 : j + 1]]
    insns = [x.split("//")[0].split("@")[0].rstrip() for x in block]
    insns = [x for x in insns if x.strip() and not x.strip().startswith(".") and not re.match(r"^\s*\.?L[\w.$]+:", x)]
    n = sum(1 for x in insns if fma.match(x))
    if n and (best is None or n > best[0]):
        best = (n, insns)
if best is None:
    sys.exit(f"no loop with multiply-adds in {fn}")
print("\n".join(best[1]))
EOF
}

# mca_cycles TRIPLE CPU FILE: cycles per iteration of the marked region
mca_cycles() {
  "$mca" -mtriple="$1" -mcpu="$2" -iterations=$iters "$3" 2>"$3.err" |
    awk -v n=$iters '/^Total Cycles:/ { printf "%.2f", $3 / n }' || true
}

peak_loop() { # TRIPLE-FAMILY FMA-MNEMONIC -> a 12-FMA loop body
  local fam=$1 op=$2
  echo "# LLVM-MCA-BEGIN peak"
  for i in $(seq 0 11); do
    if [ "$fam" = aarch64 ]; then
      echo "  fmla v$((i + 2)).4s, v0.4s, v1.4s"
    else
      echo "  $op q$((i % 12 + 2)), q0, q1"
    fi
  done
  if [ "$fam" = aarch64 ]; then
    printf '  subs x0, x0, #1\n  b.ne .Lpeak\n'
  else
    printf '  subs r0, r0, #1\n  bne .Lpeak\n'
  fi
  echo "# LLVM-MCA-END"
}

echo "| core | compiler | loop: multiply-adds (vectors of 4) / loads | cycles / iteration | FLOPs / cycle | model's FMA peak FLOPs / cycle | % of peak |"
echo "|---|---|---|---:|---:|---:|---:|"
for t in "${targets[@]}"; do
  IFS='|' read -r name triple cpu model extra fn gcc <<<"$t"
  read -r -a fl <<<"$extra"
  fam=${triple%%-*}
  [ "$fam" = aarch64 ] || fam=armv7
  # the model's peak
  op=vfma.f32
  if [ "$fam" = armv7 ] && ! grep -q vfpv4 <<<"$extra"; then op=vmla.f32; fi
  peak_loop "$fam" "$op" | sed '1i .Lpeak:' >"$work/peak.s"
  pc=$(mca_cycles "$triple" "$model" "$work/peak.s")
  if [ -z "$pc" ]; then
    echo "| $name | – | – | – | – | – | no scheduling model for $model in this llvm-mca |"
    continue
  fi
  peak=$(awk -v c="$pc" 'BEGIN { printf "%.2f", 12 * 8 / c }')
  for cc in clang gcc; do
    s="$work/$cc-$cpu-$fam.s"
    if [ "$cc" = clang ]; then
      clang --target="$triple" -mcpu="$cpu" "${fl[@]}" -O2 -std=c11 -I"$root/Runtime/include" \
        -S "$root/Runtime/src/vit_gemm.c" -o "$s"
    else
      command -v "$gcc" >/dev/null || continue
      "$gcc" -mcpu="$cpu" "${fl[@]}" -O2 -std=c11 -I"$root/Runtime/include" \
        -S "$root/Runtime/src/vit_gemm.c" -o "$s"
    fi
    { echo "# LLVM-MCA-BEGIN loop"; extract_loop "$s" "$fn"; echo "# LLVM-MCA-END"; } >"$s.loop"
    fmas=$(grep -cE '^\s*(fmla|vfma|vmla)' "$s.loop" || true)
    loads=$(grep -cE '^\s*(ld|vld)' "$s.loop" || true)
    c=$(mca_cycles "$triple" "$model" "$s.loop")
    # every multiply-add in the loop is on 4 lanes: 8 FLOPs
    awk -v n="$name" -v cc="$("${cc/gcc/$gcc}" --version | head -n 1 | sed 's/ (.*)//; s/ version//')" \
      -v f="$fmas" -v l="$loads" -v c="$c" -v p="$peak" 'BEGIN {
        printf "| %s | %s | %d / %d | %.2f | %.2f | %.2f | %.0f %% |\n", n, cc, f, l, c, 8 * f / c, p, 100 * (8 * f / c) / p }'
  done
done
echo
echo "llvm-mca: $("$mca" --version | grep -m1 -i 'llvm version' | sed 's/^ *//'); $iters iterations of each loop."

# ---- the int8 kernels (src/vit_qgemm.c) -------------------------------------------------------
# The k loop of the full-size int8 microtile: SDOT (vit_qtile_4, 4 rows x 16 columns, 16 sdot of
# 16 MACs per 4-k group) where the core has the dot product (-mcpu=cortex-a76, cortex-a55), and
# the NEON fallback (vit_qtile_2, 2 x 16, on aarch64 and armv7) built with +nodotprod
# or for a core without it. MACs per iteration: 16 per sdot, 8 per smull/smlal(2) or
# vmull.s8/vmlal.s8 (the sadalp/vpadal that widen them add none). The peak is what the same
# model gives 12 independent sdot (cores with the dot product) or smlal/vmlal.s8 (the others).
qtargets=(
  "aarch64 cortex-a76, SDOT|aarch64-linux-gnu|cortex-a76|cortex-a76||vit_qtile_4|aarch64-linux-gnu-gcc|sdot"
  "aarch64 cortex-a76 +nodotprod, NEON|aarch64-linux-gnu|cortex-a76+nodotprod|cortex-a76||vit_qtile_2|aarch64-linux-gnu-gcc|sdot"
  "aarch64 cortex-a72, NEON|aarch64-linux-gnu|cortex-a72|cortex-a72||vit_qtile_2|aarch64-linux-gnu-gcc|smlal"
  "aarch64 cortex-a55, SDOT|aarch64-linux-gnu|cortex-a55|cortex-a55||vit_qtile_4|aarch64-linux-gnu-gcc|sdot"
  "aarch64 cortex-a55 +nodotprod, NEON|aarch64-linux-gnu|cortex-a55+nodotprod|cortex-a55||vit_qtile_2|aarch64-linux-gnu-gcc|sdot"
  "armv7 (code for the A7) on the 32-bit A57 model, NEON|armv7a-linux-gnueabihf|cortex-a7|cortex-a57|-mfpu=neon-vfpv4 -mfloat-abi=hard|vit_qtile_2|arm-linux-gnueabihf-gcc|vmlal"
)
qops='sdot|smull2?|smlal2?|sadalp|vmull\.s8|vmlal\.s8|vpadal\.s16'

qpeak_loop() { # FAMILY PEAK-OP -> a loop of 12 independent int8 multiply-adds
  local fam=$1 op=$2
  echo "# LLVM-MCA-BEGIN qpeak"
  for i in $(seq 0 11); do
    case "$fam/$op" in
    aarch64/sdot) echo "  sdot v$((i + 2)).4s, v0.16b, v1.16b" ;;
    aarch64/smlal) echo "  smlal v$((i + 2)).8h, v0.8b, v1.8b" ;;
    *) echo "  vmlal.s8 q$((i % 12 + 2)), d0, d1" ;;
    esac
  done
  if [ "$fam" = aarch64 ]; then
    printf '  subs x0, x0, #1\n  b.ne .Lqpeak\n'
  else
    printf '  subs r0, r0, #1\n  bne .Lqpeak\n'
  fi
  echo "# LLVM-MCA-END"
}

echo
echo "int8 microkernels (src/vit_qgemm.c):"
echo
echo "| core, kernel | compiler | loop: int8 multiply instructions / loads | MACs / iteration | cycles / iteration | MACs / cycle | model's peak MACs / cycle | % of peak |"
echo "|---|---|---|---:|---:|---:|---:|---:|"
for t in "${qtargets[@]}"; do
  IFS='|' read -r name triple cpu model extra fn gcc peakop <<<"$t"
  read -r -a fl <<<"$extra"
  fam=${triple%%-*}
  [ "$fam" = aarch64 ] || fam=armv7
  qpeak_loop "$fam" "$peakop" | sed '1i .Lqpeak:' >"$work/qpeak.s"
  pc=$("$mca" -mtriple="$triple" -mcpu="$model" -mattr=+dotprod -iterations=$iters "$work/qpeak.s" 2>/dev/null |
    awk -v n=$iters '/^Total Cycles:/ { printf "%.2f", $3 / n }' || true)
  [ "$fam" = armv7 ] && pc=$(mca_cycles "$triple" "$model" "$work/qpeak.s")
  if [ -z "$pc" ]; then
    echo "| $name | – | – | – | – | – | – | no scheduling model for $model in this llvm-mca |"
    continue
  fi
  per=16
  [ "$peakop" = sdot ] || per=8
  peak=$(awk -v c="$pc" -v p="$per" 'BEGIN { printf "%.2f", 12 * p / c }')
  for cc in clang gcc; do
    s="$work/q-$cc-$cpu-$fam.s"
    if [ "$cc" = clang ]; then
      clang --target="$triple" -mcpu="$cpu" "${fl[@]}" -O2 -std=c11 -I"$root/Runtime/include" \
        -S "$root/Runtime/src/vit_qgemm.c" -o "$s"
    else
      command -v "$gcc" >/dev/null || continue
      "$gcc" -mcpu="$cpu" "${fl[@]}" -O2 -std=c11 -I"$root/Runtime/include" \
        -S "$root/Runtime/src/vit_qgemm.c" -o "$s"
    fi
    { echo "# LLVM-MCA-BEGIN loop"; extract_loop "$s" "$fn" "$qops"; echo "# LLVM-MCA-END"; } >"$s.loop"
    sd=$(grep -cE '^\s*sdot' "$s.loop" || true)
    ml=$(grep -cE '^\s*(smull2?|smlal2?|vmull\.s8|vmlal\.s8)\b' "$s.loop" || true)
    pa=$(grep -cE '^\s*(sadalp|vpadal\.s16)\b' "$s.loop" || true)
    loads=$(grep -cE '^\s*(ld|vld)' "$s.loop" || true)
    c=$("$mca" -mtriple="$triple" -mcpu="$model" -mattr=+dotprod -iterations=$iters "$s.loop" 2>/dev/null |
      awk -v n=$iters '/^Total Cycles:/ { printf "%.2f", $3 / n }' || true)
    [ "$fam" = armv7 ] && c=$(mca_cycles "$triple" "$model" "$s.loop")
    if [ "$sd" -gt 0 ]; then what="$sd sdot / $loads"; else what="$ml mull/mlal + $pa padal / $loads"; fi
    awk -v n="$name" -v cc="$("${cc/gcc/$gcc}" --version | head -n 1 | sed 's/ (.*)//; s/ version//')" \
      -v w="$what" -v macs=$((16 * sd + 8 * ml)) -v c="$c" -v p="$peak" 'BEGIN {
        printf "| %s | %s | %s | %d | %.2f | %.2f | %.2f | %.0f %% |\n", n, cc, w, macs, c, macs / c, p, 100 * (macs / c) / p }'
  done
done
echo
echo "llvm-mca: $("$mca" --version | grep -m1 -i 'llvm version' | sed 's/^ *//'); $iters iterations of each loop."
[ -z "$keep" ] || { mkdir -p "$keep"; cp "$work"/* "$keep"/; }
