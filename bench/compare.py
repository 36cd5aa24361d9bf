#!/usr/bin/env python3
"""DeiT latency: the binaries vitc builds against ONNX Runtime and OpenVINO, same weights, same
machine, same run. Use bench/run.sh, which makes the virtualenv this needs.

For each model it makes timm's model with a seeded random init, saves the weights as safetensors
and the model as ONNX (opset 17, batch 1, fp32), builds `vitc build samples/<model>.graph
--weights …`, checks that all three give the same logits on the same input, then times each with
1 and 2 threads: the median of --runs runs after warm-up, the runtimes interleaved run by run so
that load on the shared machine hits them alike. OpenVINO is forced to fp32
(INFERENCE_PRECISION_HINT=f32; its default on AVX-512 machines is bf16).
"""
import argparse
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort
import openvino as ov
import safetensors.torch
import timm
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMM = {"deit-t": "deit_tiny_patch16_224", "deit-s": "deit_small_patch16_224", "deit-b": "deit_base_patch16_224"}


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def bench_model(name, runs, work):
    torch.manual_seed(0)
    model = timm.create_model(TIMM[name], pretrained=False).eval()
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(work / f"{name}.safetensors"))
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    onnx_path = work / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(onnx_path), opset_version=17, input_names=["image"], output_names=["logits"], dynamo=False)

    binary = work / name
    vitc = ROOT / ".build" / "release" / "vitc"
    started = time.perf_counter()
    subprocess.run([str(vitc), "build", f"samples/{name}.graph", "--weights", str(work / f"{name}.safetensors"), "-o", str(binary)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    build_seconds = time.perf_counter() - started
    x.numpy()[0].astype("<f4").tofile(work / "x.f32")
    subprocess.run([str(binary), "--input", str(work / "x.f32"), "--out", str(work / "l.f32")], check=True, stdout=subprocess.DEVNULL)
    ours = np.fromfile(work / "l.f32", "<f4")
    rss = subprocess.run(["/usr/bin/env", "bash", "-c", f"command time -f %M {binary} --input {work / 'x.f32'} > /dev/null"],
                         capture_output=True, text=True).stderr.strip().splitlines()[-1]

    ort_sessions, ov_models = {}, {}
    core = ov.Core()
    for threads in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        ort_sessions[threads] = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        ov_models[threads] = core.compile_model(str(onnx_path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
    feed = x.numpy()
    reference = ort_sessions[1].run(None, {"image": feed})[0][0]
    openvino_logits = ov_models[1]([feed])[0][0]
    print(f"{name}: max |Δlogit| vs ONNX Runtime: vitc {np.abs(ours - reference).max():.1e}, "
          f"OpenVINO {np.abs(openvino_logits - reference).max():.1e}; vitc build {build_seconds:.1f} s, "
          f"binary peak RSS {int(rss) / 1024:.1f} MiB (weights {os.path.getsize(work / f'{name}.safetensors') / 2**20:.1f} MiB)",
          flush=True)

    def time_vitc(threads):
        out = subprocess.run([str(binary), "--input", str(work / "x.f32"), "--bench", "1", "--threads", str(threads)],
                             check=True, capture_output=True, text=True).stdout
        return float(out.split("median ")[1].split(" ms")[0])

    def timed(call):
        for _ in range(2):
            call()
        start = time.perf_counter()
        call()
        return (time.perf_counter() - start) * 1e3

    rows = []
    for threads in (1, 2):
        samples = {"vitc": [], "ort": [], "ov": []}
        for _ in range(runs):
            samples["vitc"].append(time_vitc(threads))
            samples["ort"].append(timed(lambda: ort_sessions[threads].run(None, {"image": feed})))
            samples["ov"].append(timed(lambda: ov_models[threads]([feed])))
        rows.append((name, threads, *(statistics.median(samples[k]) for k in ("vitc", "ort", "ov"))))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="deit-t,deit-s,deit-b")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="vitc-bench-"))
    rows = []
    for name in args.models.split(","):
        rows += bench_model(name, args.runs, work)
    print()
    print(f"| model | threads | vitc ms | ONNX Runtime ms | OpenVINO fp32 ms | vitc/ORT | vitc/OpenVINO |")
    print(f"|---|---|---|---|---|---|---|")
    for name, threads, a, b, c in rows:
        print(f"| {name} | {threads} | {a:.1f} | {b:.1f} | {c:.1f} | {a / b:.2f} | {a / c:.2f} |")
    print()
    print(f"{time.strftime('%Y-%m-%d')}, {cpu_name()}, {os.cpu_count()} cores; median of {args.runs} runs after warm-up; "
          f"onnxruntime {ort.__version__}, openvino {ov.__version__}, torch {torch.__version__}, timm {timm.__version__}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} as the machine sets it (no runtime here uses OpenBLAS).")


if __name__ == "__main__":
    main()
