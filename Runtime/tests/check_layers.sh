#!/usr/bin/env bash
# Checks that the runtime's files form layers (Runtime/README.md): each file of src/ may call
# only vit_ functions defined in files of lower layers, each vit_ function is defined in one
# file only, and every function a file exports has a caller: a file of a higher layer, the
# emitter (Sources/VitEmitC), main/main.c, or the list of entry points kept for the emitter
# below.
# Compiles each file to an object with gcc in several configurations (libm and vector math,
# threads and none, OpenBLAS when cblas.h is there) and reads the symbols with nm.
# Usage: check_layers.sh [runtime dir, default the one above this script]. Prints one line per
# violation and "layers: ok" or "layers: N violations"; exits 1 on a violation.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rt="$(cd "${1:-$here/..}" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Layers 1, 2, ..., lowest first. vit_simd.h (layer 0: inline only, no symbols) is below them all;
# vit_weights (the run-time weights loader) calls nothing of the runtime, so it is the lowest.
# Files of one entry share a layer and may not call each other (vit_qgemm sits beside vit_gemm).
layers=(vit_weights vit_threads vit_math "vit_gemm vit_qgemm" vit_attention vit_prune)
# Exported with no caller in a higher layer, the emitter or main.c: the int8 linear's entry
# points, which the emitter's int8 path calls (issue #17; being written on another branch).
entry_points=(vit_linear_s8 vit_quantize_weights_s8 vit_quantize_rows_s8)

# files[i] is in layer level[i] (an index into layers)
files=()
level=()
for l in "${!layers[@]}"; do
  for f in ${layers[$l]}; do
    files+=("$f")
    level+=("$l")
  done
done

bad=0
violation() {
  echo "violation: $*"
  bad=$((bad + 1))
}

for file in "$rt"/src/*.c; do
  name="$(basename "$file" .c)"
  case " ${files[*]} " in
  *" $name "*) ;;
  *) violation "src/$name.c is in no layer (add it to layers in $(basename "$0"))" ;;
  esac
done

configs=("" "-DVIT_VECTOR_MATH" "-DVIT_NO_THREADS" "-DVIT_GENERIC -DVIT_VECTOR_MATH")
if printf '#include <cblas.h>\n' | gcc -E -x c - >/dev/null 2>&1; then
  configs+=("-DVIT_BLAS_OPENBLAS")
  complete=1
else
  echo "note: no cblas.h, so the OpenBLAS build's calls are not seen; unused exports not checked"
  complete=0
fi

: >"$work/used"
for c in "${!configs[@]}"; do
  read -r -a flags <<<"${configs[$c]}"
  for i in "${!files[@]}"; do
    obj="$work/$c.${files[$i]}.o"
    if ! gcc -std=c11 -O2 -march=native "${flags[@]}" -I"$rt/include" -c "$rt/src/${files[$i]}.c" \
      -o "$obj" 2>"$work/err"; then
      violation "${files[$i]}.c ${configs[$c]}: does not compile: $(head -3 "$work/err")"
      continue
    fi
    nm -g --defined-only "$obj" | awk '$3 ~ /^vit_/ {print $3}' | sort >"$work/$c.$i.def"
    nm -u "$obj" | awk '$2 ~ /^vit_/ {print $2}' | sort >"$work/$c.$i.undef"
    cat "$work/$c.$i.undef" >>"$work/used"
  done
  for i in "${!files[@]}"; do
    [ -f "$work/$c.$i.def" ] || continue
    for j in "${!files[@]}"; do
      [ "$j" -lt "$i" ] || continue
      [ -f "$work/$c.$j.def" ] || continue
      for sym in $(comm -12 "$work/$c.$i.def" "$work/$c.$j.def"); do
        violation "$sym is defined in both ${files[$j]}.c and ${files[$i]}.c (${configs[$c]:-default})"
      done
    done
    while read -r sym; do
      where=""
      for j in "${!files[@]}"; do
        grep -qx "$sym" "$work/$c.$j.def" 2>/dev/null && where="$j"
      done
      if [ -z "$where" ]; then
        violation "${files[$i]}.c calls $sym, which no runtime file defines (${configs[$c]:-default})"
      elif [ "${level[$where]}" -ge "${level[$i]}" ]; then
        violation "${files[$i]}.c (layer $((level[i] + 1))) calls $sym of ${files[$where]}.c (layer $((level[where] + 1))) (${configs[$c]:-default})"
      fi
    done <"$work/$c.$i.undef"
  done
done

if [ "$complete" = 1 ] && [ -d "$repo/Sources/VitEmitC" ]; then
  for sym in $(cat "$work"/0.*.def | sort -u); do
    grep -qx "$sym" "$work/used" && continue
    case " ${entry_points[*]} " in *" $sym "*) continue ;; esac
    grep -qw "$sym" "$repo"/Sources/VitEmitC/*.swift "$rt/main/main.c" 2>/dev/null && continue
    violation "$sym has no caller: no runtime file, the emitter or main.c calls it"
  done
fi

if [ "$bad" -eq 0 ]; then
  echo "${#files[@]} files in ${#layers[@]} layers: no upward or sideways call, no function defined twice, none unused"
else
  echo "layers: $bad violations"
  exit 1
fi
