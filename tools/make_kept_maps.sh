#!/bin/sh
# Regenerates docs/kept-maps/<method>.png, the kept-token maps of docs/kept-map.md: DeiT-S
# (samples/deit-s.graph) with random weights 1, compiled with `vitc build`, on
# samples/images/chelsea.ppm, one picture per pruning method. Random weights: the pictures show
# the mechanism of each method, not what a trained model selects.
#
# Needs a C compiler and python3 with Pillow (pip install pillow), for PPM -> PNG.
# VITC=path/to/vitc uses that vitc instead of building one with `swift build`.
set -eu
cd "$(dirname "$0")/.."

if [ -z "${VITC:-}" ]; then
  swift build --product vitc >&2
  VITC="$(swift build --show-bin-path)/vitc"
fi
python3 -c 'import PIL' 2>/dev/null || { echo "error: needs Pillow (pip install pillow)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
# A copy, so that every picture comes from the same vitc even if the build directory changes.
cp "$VITC" "$work/vitc"
VITC="$work/vitc"
mkdir -p docs/kept-maps

# method name (file stem) and --prune spec; AS-ViT's thresholds are picked so that each stage
# visibly drops tokens with these random weights (153, 110, 94 tokens on chelsea).
for entry in dyvit=dyvit:0.7 evit=evit:0.7 asvit=asvit:0.002,0.004,0.006 bat=bat:0.7 tome=tome:13; do
  name=${entry%%=*}
  spec=${entry#*=}
  "$VITC" build samples/deit-s.graph --random-weights 1 --prune "$spec" -o "$work/$name" >&2
  "$work/$name" samples/images/chelsea.ppm --top 1 --kept-map "$work/$name.ppm"
  python3 - "$work/$name.ppm" "docs/kept-maps/$name.png" <<'PY'
import sys
from PIL import Image
Image.open(sys.argv[1]).save(sys.argv[2], optimize=True)
PY
  echo "wrote docs/kept-maps/$name.png (--prune $spec)"
done
