#!/bin/sh
# Fuzzes one of vitc's input readers with libFuzzer for a number of seconds (docs/reliability.md).
#
#   tools/fuzz.sh --list            the targets
#   tools/fuzz.sh TARGET SECONDS    build the target (into .build/fuzz/) and fuzz it, one process
#
# Swift targets are compiled outside SwiftPM with swiftc -sanitize=fuzzer,address: VitIR as a
# static library, then the harness (Fuzz/TARGET.swift, Fuzz/FuzzSupport.swift) with the sources
# of VitFrontend in one module. ppm_c compiles Runtime/main/main.c's image reader alone
# (-DVIT_FUZZ_READERS) with clang -fsanitize=fuzzer,address, evalset_c its evaluation-set reader;
# weights_c the run-time weights loader
# (Runtime/src/vit_weights.c). The seeds in Fuzz/corpus/TARGET are
# read, never written: new inputs go to .build/fuzz/corpus/TARGET, and a crash is saved as
# .build/fuzz/crash-TARGET-* (turn each into a regression test in Tests/VitFrontendTests).
set -eu

TARGETS="graph safetensors checkpoint ppm evalset ppm_c evalset_c weights_c"
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.build/fuzz"

usage() {
  echo "usage: tools/fuzz.sh TARGET SECONDS | --list   (targets: $TARGETS)" >&2
  exit 2
}

if [ "${1:-}" = "--list" ]; then
  for target in $TARGETS; do echo "$target"; done
  exit 0
fi
[ $# -eq 2 ] || usage
target=$1
seconds=$2
case " $TARGETS " in *" $target "*) ;; *) echo "tools/fuzz.sh: unknown target '$target'" >&2; usage ;; esac
case "$seconds" in '' | *[!0-9]*) echo "tools/fuzz.sh: SECONDS must be a whole number" >&2; usage ;; esac

mkdir -p "$out/corpus/$target"
binary="$out/fuzz-$target"

case "$target" in *_c) c_target=1 ;; *) c_target=0 ;; esac
if [ "$c_target" = 1 ]; then
  clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c11 \
    -I "$root/Runtime/include" "$root/Fuzz/$target.c" -lm -o "$binary"
else
  if [ ! -f "$out/VitIR/libVitIR.a" ] || [ -n "$(find "$root/Sources/VitIR" -newer "$out/VitIR/libVitIR.a" -name '*.swift')" ]; then
    mkdir -p "$out/VitIR"
    (cd "$out/VitIR" && swiftc -parse-as-library -sanitize=fuzzer,address -g -O \
      -emit-library -static -emit-module -module-name VitIR -o libVitIR.a "$root"/Sources/VitIR/*.swift)
  fi
  swiftc -parse-as-library -sanitize=fuzzer,address -g -O -module-name FuzzTarget \
    -I "$out/VitIR" -L "$out/VitIR" -lVitIR \
    "$root/Fuzz/$target.swift" "$root/Fuzz/FuzzSupport.swift" "$root"/Sources/VitFrontend/*.swift \
    -o "$binary"
fi

cd "$out"
exec "$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$out/crash-$target-" "$out/corpus/$target" "$root/Fuzz/corpus/$target"
