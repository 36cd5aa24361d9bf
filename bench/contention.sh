#!/usr/bin/env bash
# Threads under contention: each binary's median latency at its default thread count and at
# --threads 1, on a quiet machine and with one CPU hog beside it (`python3 -c 'while True:
# pass'`), for the fashion sample (dyvit:0.7, its shipped weights) and DeiT-S (dense,
# --random-weights 1). The goal (issue #16): default / threads-1 <= 1.15 with the hog.
# Not a test: run it by hand and copy the table into bench/README.md.
#
#   bash bench/contention.sh [--rounds 7] [--fashion-bench 200] [--deit-bench 10]
#                            [--models fashion,deit-s] [--before REV] [--vitc PATH]
#                            [--work DIR] [--out FILE]
#
# - The models' C comes from `vitc compile` (vitc built here with swift build -c release
#   unless --vitc names one). The runtime files in the output folder are then replaced by
#   this worktree's Runtime/ ("after"), and with --before REV by Runtime/ at git revision REV
#   ("before"; the model's C stays the same, so REV's runtime must have the same API), and
#   each folder is built with the command vitc printed.
# - A sample is one process, `BIN IMAGE --bench N [--threads 1]`; its median (the binary's own
#   clock, after 3 warm-up runs) is the sample. Every round runs every binary and setting once
#   quiet and once with the hog, in an order that rotates from round to round, so load from
#   elsewhere on the machine falls on all of them alike. A cell is the median over rounds.
# - The hog is started per round and killed by its pid (also on error or ^C, by the trap).
# - OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for the timed commands only (the
#   binaries do not use OpenBLAS; this only keeps the environment out of the picture).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

rounds=7
fashion_bench=200
deit_bench=10
only="fashion,deit-s"
before=""
vitc=""
work=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --fashion-bench) fashion_bench=$2; shift 2 ;;
    --deit-bench) deit_bench=$2; shift 2 ;;
    --models) only=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    --vitc) vitc=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "bench/contention.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
[ -n "$work" ] || work="$root/.build/contention"
mkdir -p "$work"

hog=""
stop_hog() {
  if [ -n "$hog" ]; then
    kill "$hog" 2>/dev/null || true
    wait "$hog" 2>/dev/null || true
    hog=""
  fi
}
trap stop_hog EXIT
trap 'stop_hog; exit 130' INT TERM

if [ -z "$vitc" ]; then
  swift build -c release --product vitc >&2
  vitc="$root/.build/release/vitc"
fi

# model name | graph | weights option | prune | image | --bench count
models=(
  "fashion|samples/fashion.graph|--weights samples/fashion/weights.safetensors|dyvit:0.7|samples/fashion/ankle-boot.ppm|$fashion_bench"
  "deit-s|samples/deit-s.graph|--random-weights 1|none|samples/images/chelsea.ppm|$deit_bench"
)

# build_variant MODEL DIR RUNTIME_DIR: overlays RUNTIME_DIR's src/, include/ and main/main.c
# on the compiled folder DIR and builds DIR/MODEL with the command vitc printed.
build_variant() {
  local model=$1 dir=$2 rt=$3
  cp "$rt"/src/*.c "$rt"/src/*.h "$rt"/include/*.h "$rt"/main/main.c "$dir"/
  local cmd
  cmd=$(sed -n 's/^build for host with: //p' "$dir/compile.log")
  [ -n "$cmd" ] || { echo "bench/contention.sh: vitc printed no build command for $model" >&2; exit 1; }
  (cd "$dir" && sh -c "$cmd") >&2
}

variants=(after)
if [ -n "$before" ]; then
  variants=(before after)
  rm -rf "$work/runtime-before"
  mkdir -p "$work/runtime-before"
  git archive "$before" Runtime | tar -x -C "$work/runtime-before"
fi

# the runtime that is measured as "after": this worktree's, as it is now
after_rev="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Runtime || echo " + uncommitted Runtime changes")"
binaries=() # "model|variant|path|image|bench"
for entry in "${models[@]}"; do
  IFS='|' read -r name graph weights prune image count <<<"$entry"
  case ",$only," in *",$name,"*) ;; *) continue ;; esac
  for variant in "${variants[@]}"; do
    dir="$work/$name-$variant"
    rm -rf "$dir"
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    "$vitc" compile "$graph" $weights --prune "$prune" -o "$dir/$name.c" >"$dir/compile.log"
    if [ "$variant" = before ]; then rt="$work/runtime-before/Runtime"; else rt="$root/Runtime"; fi
    echo "building $name ($variant runtime)" >&2
    build_variant "$name" "$dir" "$rt"
    binaries+=("$name|$variant|$dir/$name|$image|$count")
  done
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cores=$(getconf _NPROCESSORS_ONLN)
load_before=$(uptime)
start=$(date -u)
samples="$work/samples.tsv"
: >"$samples"

# One sample: prints the binary's median ms, or "fail".
sample() {
  local bin=$1 image=$2 count=$3 threads=$4
  local args=("$image" --bench "$count")
  [ "$threads" = 1 ] && args+=(--threads 1)
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$bin" "${args[@]}" 2>/dev/null |
    sed -n 's/^bench: .* median \([0-9.]*\) ms.*/\1/p' | grep . || echo fail
}

runs=()
for b in "${binaries[@]}"; do
  runs+=("$b|default" "$b|1")
done
for ((r = 0; r < rounds; r++)); do
  for cond in quiet hog; do
    if [ "$cond" = hog ]; then
      python3 -c 'while True: pass' &
      hog=$!
      sleep 0.3
    fi
    n=${#runs[@]}
    for ((i = 0; i < n; i++)); do
      IFS='|' read -r name variant bin image count threads <<<"${runs[$(((i + r) % n))]}"
      ms=$(sample "$bin" "$image" "$count" "$threads")
      printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$variant" "$cond" "$threads" "$ms" >>"$samples"
      echo "round $((r + 1))/$rounds $cond $name $variant threads=$threads: $ms ms" >&2
    done
    stop_hog
  done
done
load_after=$(uptime)

table=$(python3 - "$samples" <<'EOF'
import statistics, sys
cells = {}
for line in open(sys.argv[1]):
    name, variant, cond, threads, ms = line.rstrip("\n").split("\t")
    cells.setdefault((name, variant, cond, threads), []).append(float("nan") if ms == "fail" else float(ms))
def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")
def rng(xs):
    xs = sorted(x for x in xs if x == x)
    return f"{xs[0]:.2f}–{xs[-1]:.2f}" if xs else "–"
print("| model | runtime | condition | default threads ms | --threads 1 ms | default / threads-1 | default range | threads-1 range |")
print("|---|---|---|---:|---:|---:|---|---|")
keys = sorted({k[:3] for k in cells}, key=lambda k: (k[0] != "fashion", k[1] != "before", k[2] != "quiet"))
for name, variant, cond in keys:
    d, o = cells.get((name, variant, cond, "default"), []), cells.get((name, variant, cond, "1"), [])
    md, mo = med(d), med(o)
    print(f"| {name} | {variant} | {cond} | {md:.2f} | {mo:.2f} | {md / mo:.2f} | {rng(d)} | {rng(o)} |")
EOF
)

report=$(cat <<EOF
$table

- CPU: $cpu, $cores logical cores online; default thread count = $cores
- rounds: $rounds (a cell is the median over rounds of each process's --bench median; fashion --bench $fashion_bench, DeiT-S --bench $deit_bench)
- started $start; runtime "after" = $after_rev${before:+, "before" = $before}
- load before: $load_before
- load after:  $load_after
EOF
)
echo "$report"
[ -z "$out" ] || echo "$report" >"$out"
