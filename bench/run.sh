#!/usr/bin/env bash
# vitc against ONNX Runtime and OpenVINO on DeiT-T/S/B (bench/compare.py), in a virtualenv of
# its own under bench/.venv (set BENCH_VENV to use another). Not a test: run it by hand, on a
# machine as quiet as you can get, and copy the table into bench/README.md.
#
#   bash bench/run.sh [--models deit-s] [--runs 30] [--runs-for deit-b=15] [--vitc PATH] [--out FILE]
#   bash bench/run.sh --precision int8 [--models deit-s] …   # vitc fp32/int8/int8+dyvit:0.7, ORT int8, OpenVINO default
#
# Without --vitc it builds vitc here first (swift build -c release --product vitc) and uses
# .build/release/vitc; with --vitc PATH it builds nothing and uses that executable.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BENCH_VENV:-bench/.venv}"
# An isolated virtualenv: with --system-site-packages, pip trips over the machine's own
# site-packages (a half-written dist-info there made the resolver crash).
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --progress-bar off torch timm onnx onnxscript onnxruntime openvino safetensors numpy
case " $* " in
  *" --vitc "*|*" --vitc="*) ;;
  *) swift build -c release --product vitc ;;
esac
exec "$venv/bin/python" bench/compare.py "$@"
