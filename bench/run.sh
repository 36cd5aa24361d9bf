#!/usr/bin/env bash
# vitc against ONNX Runtime and OpenVINO on DeiT-T/S/B (bench/compare.py), in a virtualenv of
# its own under bench/.venv (reusing packages the machine already has). Not a test: run it by
# hand on a quiet machine and copy the table into bench/README.md.
#
#   bash bench/run.sh [--models deit-s] [--runs 30]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv --system-site-packages bench/.venv
fi
bench/.venv/bin/pip install --quiet torch timm onnx onnxscript onnxruntime openvino safetensors numpy
swift build -c release --product vitc
bench/.venv/bin/python bench/compare.py "$@"
