#!/usr/bin/env python3
"""DeiT latency: the binaries vitc builds against ONNX Runtime and OpenVINO, same weights, same
machine, same run. Use bench/run.sh, which makes the virtualenv this needs.

For each model it makes timm's model with a seeded random init (torch.manual_seed(0)), saves the
weights as safetensors and the model as ONNX (opset 17, batch 1, fp32, TorchScript exporter),
times `vitc compile` and the C build of its output, builds `vitc build samples/<model>.graph
--weights …`, measures the binary's peak RSS, checks that all three runtimes (and PyTorch) give
the same logits on the same seeded input, then times each with 1 and 2 threads: the median of
--runs samples after warm-up, the runtimes interleaved sample by sample (in an order that
rotates every sample) so that load on the shared machine hits them alike.

One sample of vitc is one run of the binary, `BIN --input x.f32 --bench 1 --threads T`: the
binary runs the model once (the result it prints), then 3 warm-up runs, then times 1 run with
CLOCK_MONOTONIC. One sample of ONNX Runtime or OpenVINO is 2 warm-up calls and then 1 timed
call (time.perf_counter around the call) on a session made once.

OpenVINO is forced to fp32 (INFERENCE_PRECISION_HINT=f32; its default on AVX-512 machines with
bf16 is bf16). ONNX Runtime uses its defaults (CPUExecutionProvider, ORT_ENABLE_ALL) with
intra_op_num_threads=T, inter_op_num_threads=1.

Prints progress on stderr and, on stdout (and into --out), markdown ready for bench/README.md.
"""
import argparse
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
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
RUNTIMES = ("vitc", "ort", "ov")


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def cpu_flags():
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags)
    return "?"


def command_output(command, cwd=None):
    try:
        return subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def peak_rss_kib(command):
    """Peak RSS of the command, in KiB, from GNU time (apt-get install time). Not os.wait4 on a
    child of this process: the child starts as a fork of this Python, torch and all, and Linux
    keeps that high-water mark across exec, so it would report ~900 MiB for any binary."""
    if not os.path.exists("/usr/bin/time"):
        return float("nan")
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *command], check=True, stdout=subprocess.DEVNULL)
        return int(report.read().strip().splitlines()[-1])


def clock(command, **kwargs):
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def prepare(name, work, vitc, cc):
    """Weights, ONNX, the vitc binary, the logit check. Returns (info, ort sessions, OpenVINO models)."""
    torch.manual_seed(0)
    model = timm.create_model(TIMM[name], pretrained=False).eval()
    weights = work / f"{name}.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    onnx_path = work / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(onnx_path), opset_version=17, input_names=["image"], output_names=["logits"], dynamo=False)
    with torch.no_grad():
        torch_logits = model(x).numpy()[0]
    feed = x.numpy()
    x_path = work / f"{name}-x.f32"
    feed[0].astype("<f4").tofile(x_path)

    # `vitc compile` alone, then the C build of its output with the command `vitc build` uses
    # (Sources/vitc/Build.swift), then `vitc build` end to end (which makes the binary we time).
    graph = f"samples/{name}.graph"
    csrc = work / f"{name}-c"
    compile_s = clock([str(vitc), "compile", graph, "--weights", str(weights), "-o", str(csrc / "model.c")], cwd=ROOT)
    # main.c is the shared driver body that model_main.c includes, not a file of its own (EmitC.isCompiledSource).
    sources = sorted(str(p) for p in csrc.iterdir() if p.suffix in (".c", ".S") and p.name != "main.c")
    cbuild_s = clock([cc, "-std=c11", "-O3", "-march=native", "-Wall", "-Wextra", "-Werror", "-I", str(csrc), f"-Wa,-I{csrc}",
                      "-DVIT_VECTOR_MATH", *sources, "-o", str(work / f"{name}-by-hand"), "-lm", "-lpthread"])
    binary = work / name
    build_s = clock([str(vitc), "build", graph, "--weights", str(weights), "-o", str(binary), "--cc", cc], cwd=ROOT)

    logits_path = work / f"{name}-logits.f32"
    subprocess.run([str(binary), "--input", str(x_path), "--out", str(logits_path)], check=True, stdout=subprocess.DEVNULL)
    vitc_logits = np.fromfile(logits_path, "<f4")
    rss = {t: peak_rss_kib([str(binary), "--input", str(x_path), "--threads", str(t)]) for t in (1, 2)}

    sessions, compiled = {}, {}
    core = ov.Core()
    for threads in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        sessions[threads] = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        compiled[threads] = core.compile_model(str(onnx_path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
        precision = str(compiled[threads].get_property("INFERENCE_PRECISION_HINT"))
        assert "f32" in precision or "float32" in precision, f"OpenVINO runs at {precision}, not fp32"
    ort_logits = sessions[1].run(None, {"image": feed})[0][0]
    ov_logits = compiled[1]([feed])[0][0]
    ort2 = sessions[2].run(None, {"image": feed})[0][0]
    ov2 = compiled[2]([feed])[0][0]

    def diff(a, b):
        return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())

    info = {
        "name": name,
        "weights_mib": os.path.getsize(weights) / 2**20,
        "binary_mib": os.path.getsize(binary) / 2**20,
        "rss_mib": {t: kib / 1024 for t, kib in rss.items()},
        "compile_s": compile_s, "cbuild_s": cbuild_s, "build_s": build_s,
        "max_logit": float(np.abs(torch_logits).max()),
        "vitc_ort": diff(vitc_logits, ort_logits), "ov_ort": diff(ov_logits, ort_logits),
        "vitc_ov": diff(vitc_logits, ov_logits), "vitc_torch": diff(vitc_logits, torch_logits),
        "ort_torch": diff(ort_logits, torch_logits),
        "ort_2t": diff(ort2, ort_logits), "ov_2t": diff(ov2, ov_logits),
        "argmax_same": int(np.argmax(vitc_logits)) == int(np.argmax(ort_logits)) == int(np.argmax(ov_logits)),
    }
    log(f"{name}: max|logit| {info['max_logit']:.3f}; max |Δlogit| vitc–ORT {info['vitc_ort']:.1e}, OpenVINO–ORT "
        f"{info['ov_ort']:.1e}, vitc–OpenVINO {info['vitc_ov']:.1e}, vitc–torch {info['vitc_torch']:.1e}; "
        f"vitc compile {compile_s:.2f} s, C build {cbuild_s:.1f} s, vitc build {build_s:.1f} s; "
        f"peak RSS {info['rss_mib'][1]:.1f}/{info['rss_mib'][2]:.1f} MiB (1/2 threads), weights {info['weights_mib']:.1f} MiB")
    return info, binary, x_path, feed, sessions, compiled


def measure(name, runs, binary, x_path, feed, sessions, compiled):
    def time_vitc(threads):
        out = subprocess.run([str(binary), "--input", str(x_path), "--bench", "1", "--threads", str(threads)],
                             check=True, capture_output=True, text=True).stdout
        line = next(l for l in out.splitlines() if l.startswith("bench:"))  # "bench: 1 runs, median X ms, …"
        return float(line.split("median ")[1].split(" ms")[0])

    def timed(call):
        for _ in range(2):
            call()
        start = time.perf_counter()
        call()
        return (time.perf_counter() - start) * 1e3

    callers = {
        "vitc": time_vitc,
        "ort": lambda t: timed(lambda: sessions[t].run(None, {"image": feed})),
        "ov": lambda t: timed(lambda: compiled[t]([feed])),
    }
    rows = []
    for threads in (1, 2):
        samples = {k: [] for k in RUNTIMES}
        started = time.perf_counter()
        for i in range(runs):
            order = RUNTIMES[i % 3:] + RUNTIMES[:i % 3]
            for k in order:
                samples[k].append(callers[k](threads))
        row = {"name": name, "threads": threads, "runs": runs}
        for k in RUNTIMES:
            s = sorted(samples[k])
            row[k] = statistics.median(s)
            row[k + "_p10"] = s[len(s) // 10]
            row[k + "_p90"] = s[min(len(s) - 1, (len(s) * 9) // 10)]
        log(f"{name} {threads}T: vitc {row['vitc']:.1f} ms, ORT {row['ort']:.1f} ms, OpenVINO {row['ov']:.1f} ms "
            f"({time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.2f})")
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="deit-t,deit-s,deit-b")
    parser.add_argument("--runs", type=int, default=30, help="samples per model, runtime and thread count")
    parser.add_argument("--runs-for", default="", help="per-model override, e.g. deit-b=15")
    parser.add_argument("--vitc", default=str(ROOT / ".build" / "release" / "vitc"), help="the vitc executable")
    parser.add_argument("--cc", default="clang")
    parser.add_argument("--out", help="also write the markdown here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (weights, ONNX, binaries)")
    args = parser.parse_args()
    vitc = pathlib.Path(args.vitc).resolve()
    runs_for = {k: int(v) for k, v in (item.split("=") for item in args.runs_for.split(",") if item)}
    models = args.models.split(",")

    started = time.time()
    load_before = command_output(["uptime"])
    work = pathlib.Path(tempfile.mkdtemp(prefix="vitc-bench-"))
    log(f"work directory {work}; {load_before}")
    infos, rows = [], []
    try:
        for name in models:
            info, *prepared = prepare(name, work, vitc, args.cc)
            infos.append(info)
            rows += measure(name, runs_for.get(name, args.runs), *prepared)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    load_after = command_output(["uptime"])
    wall = time.time() - started

    out = []
    out.append("| model | threads | runs | vitc ms | ONNX Runtime ms | OpenVINO fp32 ms | vitc/ORT | vitc/OpenVINO |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append(f"| {r['name']} | {r['threads']} | {r['runs']} | {r['vitc']:.1f} | {r['ort']:.1f} | {r['ov']:.1f} | "
                   f"{r['vitc'] / r['ort']:.2f} | {r['vitc'] / r['ov']:.2f} |")
    out.append("")
    out.append("Spread of the same samples, p10–p90 ms:")
    out.append("")
    out.append("| model | threads | vitc | ONNX Runtime | OpenVINO fp32 |")
    out.append("|---|---:|---:|---:|---:|")
    for r in rows:
        out.append(f"| {r['name']} | {r['threads']} | " + " | ".join(f"{r[k + '_p10']:.1f}–{r[k + '_p90']:.1f}" for k in RUNTIMES) + " |")
    out.append("")
    out.append("Logits (max |Δ| over the 1000 logits, same seeded weights and input), build times, memory:")
    out.append("")
    out.append("| model | max \\|logit\\| | vitc–ORT | OpenVINO–ORT | vitc–OpenVINO | vitc–PyTorch | ORT–PyTorch | same top-1 | "
               "vitc compile s | C build s | vitc build s | weights MiB | binary MiB | vitc peak RSS MiB (1T / 2T) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for i in infos:
        out.append(f"| {i['name']} | {i['max_logit']:.3f} | {i['vitc_ort']:.1e} | {i['ov_ort']:.1e} | {i['vitc_ov']:.1e} | "
                   f"{i['vitc_torch']:.1e} | {i['ort_torch']:.1e} | {'yes' if i['argmax_same'] else 'NO'} | {i['compile_s']:.2f} | "
                   f"{i['cbuild_s']:.1f} | {i['build_s']:.1f} | {i['weights_mib']:.1f} | {i['binary_mib']:.1f} | "
                   f"{i['rss_mib'][1]:.1f} / {i['rss_mib'][2]:.1f} |")
    out.append("")
    commit = command_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT)
    dirty = command_output(["git", "status", "--porcelain", "--untracked-files=no", "--", "Sources", "Runtime", "Package.swift"], cwd=ROOT)
    out.append(f"- date: {command_output(['date'])}")
    out.append(f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores ({cpu_flags()}); kernel {platform.release()}")
    out.append(f"- vitc {commit}{' (with uncommitted changes)' if dirty else ''} ({command_output([str(vitc), '--version'])}), "
               f"C compiler: {command_output([args.cc, '--version']).splitlines()[0]}")
    out.append(f"- onnxruntime {ort.__version__}, openvino {ov.get_version()}, torch {torch.__version__}, timm {timm.__version__}, "
               f"numpy {np.__version__}, Python {platform.python_version()}")
    out.append(f"- OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
               f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')} in the benchmark's environment")
    out.append(f"- load before: `{load_before}`")
    out.append(f"- load after:  `{load_after}`")
    out.append(f"- wall time of the whole run: {wall / 60:.1f} min")
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
