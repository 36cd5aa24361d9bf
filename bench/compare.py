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

With --precision int8 (issue #17) the run is, per model and thread count, interleaved as above:
vitc fp32, vitc int8 (`--precision int8`), vitc int8 with `--prune dyvit:0.7`, ONNX Runtime int8
(quant_pre_process, then quantize_dynamic(per_channel=True, weight_type=QInt8) of the same ONNX)
and OpenVINO at its default precision (no INFERENCE_PRECISION_HINT; the precision it reports is
printed: bf16 on CPUs with AVX-512 BF16 or AMX, f32 otherwise). DynamicViT's predictors are
vitc's seeded random ones (`vitc save-weights --random-weights 1 --prune dyvit:0.7`) beside timm's
backbone, so the dyvit binary and the dense int8 binary share every backbone weight; the MACs
ratio is `vitc flops`'s (fvcore). Each one's logits are compared with its own family's fp32
(vitc int8 with vitc fp32, ORT int8 with ORT fp32, OpenVINO's default with OpenVINO f32): max
|Δ|, that over max |logit|, cosine, same top-1 and top-5; and with PyTorch. The dyvit row also
says whether the int8 binary kept the fp32 binary's patches (--trace), and if not, the share of
them it kept at the worst stage. A vitc build that fails
(as `--precision int8` does before the C kernel is in Runtime/) is reported and left out.

Prints progress on stderr and, on stdout (and into --out), markdown ready for bench/README.md.
"""
import argparse
import collections
import json
import os
import pathlib
import platform
import re
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

from methods import fvcore_total

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


def make_model(name, work):
    """timm's model with the seeded init: its weights as safetensors, the ONNX export, the seeded
    input (as a float32 file for the binaries) and PyTorch's logits on it."""
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
    return weights, onnx_path, torch_logits, feed, x_path


def prepare(name, work, vitc, cc):
    """Weights, ONNX, the vitc binary, the logit check. Returns (info, ort sessions, OpenVINO models)."""
    weights, onnx_path, torch_logits, feed, x_path = make_model(name, work)

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


def vitc_sample(binary, x_path, threads):
    """One vitc sample: a fresh process that runs once, warms up 3 times and times 1 run."""
    out = subprocess.run([str(binary), "--input", str(x_path), "--bench", "1", "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("bench:"))  # "bench: 1 runs, median X ms, …"
    return float(line.split("median ")[1].split(" ms")[0])


def timed(call):
    """One in-process sample: 2 warm-up calls, then 1 timed call, in ms."""
    for _ in range(2):
        call()
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1e3


def interleaved(callers, runs, threads):
    """`runs` samples of each caller (a function of the thread count), interleaved sample by sample
    in an order that rotates every sample. Returns {key: median, key_p10: …, key_p90: …}."""
    keys = tuple(callers)
    samples = {k: [] for k in keys}
    for i in range(runs):
        order = keys[i % len(keys):] + keys[:i % len(keys)]
        for k in order:
            samples[k].append(callers[k](threads))
    row = {}
    for k in keys:
        s = sorted(samples[k])
        row[k] = statistics.median(s)
        row[k + "_p10"] = s[len(s) // 10]
        row[k + "_p90"] = s[min(len(s) - 1, (len(s) * 9) // 10)]
    return row


def measure(name, runs, binary, x_path, feed, sessions, compiled):
    callers = {
        "vitc": lambda t: vitc_sample(binary, x_path, t),
        "ort": lambda t: timed(lambda: sessions[t].run(None, {"image": feed})),
        "ov": lambda t: timed(lambda: compiled[t]([feed])),
    }
    rows = []
    for threads in (1, 2):
        started = time.perf_counter()
        row = {"name": name, "threads": threads, "runs": runs, **interleaved(callers, runs, threads)}
        log(f"{name} {threads}T: vitc {row['vitc']:.1f} ms, ORT {row['ort']:.1f} ms, OpenVINO {row['ov']:.1f} ms "
            f"({time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.2f})")
        rows.append(row)
    return rows


# ---- --precision int8 (issue #17): vitc fp32, int8 and int8 with dyvit:0.7 beside ONNX Runtime int8
# (quantize_dynamic, per channel) and OpenVINO at its default precision, in one interleaved run.

DYVIT = "dyvit:0.7"
# The timed rows of --precision int8, in their (rotating) order, and their table names.
INT8_KEYS = ("vitc_f32", "vitc_int8", "vitc_dyvit", "ort_int8", "ov_default")


def vitc_build(vitc, name, work, cc, label, *flags):
    """`vitc build samples/<name>.graph FLAGS`. Returns a dict with the binary, the build time and the
    embedded weight bytes `vitc build` reports, or None (and the compiler's complaint on stderr)
    when the build fails: until the int8 kernel is in Runtime/, `--precision int8` stops at the C
    compile step, and the rest of the comparison still runs."""
    binary = work / f"{name}-{label}"
    started = time.perf_counter()
    done = subprocess.run([str(vitc), "build", f"samples/{name}.graph", *flags, "-o", str(binary), "--cc", cc],
                          cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        log(f"{name}: vitc build {' '.join(flags)} failed (status {done.returncode}); its rows are left out:")
        log("\n".join((done.stderr or done.stdout).strip().splitlines()[-15:]))
        return None
    embedded = re.search(r"\(weights ([\d,]+)", done.stdout)
    return {"binary": binary, "build_s": seconds, "weights_mib": int(embedded.group(1).replace(",", "")) / 2**20 if embedded else float("nan"),
            "binary_mib": os.path.getsize(binary) / 2**20}


def vitc_outputs(binary, x_path, work, label, threads=1):
    """The binary's logits and the patches each pruning stage kept (from --trace), on the input."""
    logits_path, trace_path = work / f"{label}-logits.f32", work / f"{label}-trace.json"
    subprocess.run([str(binary), "--input", str(x_path), "--out", str(logits_path), "--trace", str(trace_path),
                    "--threads", str(threads)], check=True, stdout=subprocess.DEVNULL)
    stages = json.loads(trace_path.read_text())["stages"]
    return np.fromfile(logits_path, "<f4"), [sorted(tuple(t) for t in stage["patches"]) for stage in stages]


def logit_error(test, reference):
    """How far `test`'s logits are from `reference`'s: max |Δ|, that over max |reference logit|,
    cosine, and whether top-1 and top-5 agree ("yes": same classes in the same order; "set": the
    same five classes in another order; "no")."""
    t, r = np.asarray(test, np.float64), np.asarray(reference, np.float64)
    top5_t, top5_r = list(np.argsort(-t, kind="stable")[:5]), list(np.argsort(-r, kind="stable")[:5])
    return {
        "max_ref": float(np.abs(r).max()),
        "max_diff": float(np.abs(t - r).max()),
        "relative": float(np.abs(t - r).max() / np.abs(r).max()),
        "cosine": float(t @ r / (np.linalg.norm(t) * np.linalg.norm(r))),
        "top1": int(np.argmax(t)) == int(np.argmax(r)),
        "top5": "yes" if top5_t == top5_r else "set" if set(top5_t) == set(top5_r) else "no",
    }


def ort_quantized(onnx_path, work, name):
    """ONNX Runtime's dynamic int8 model: quant_pre_process (shape inference and graph
    optimisation, which ORT's documentation recommends before quantizing), then
    quantize_dynamic(per_channel=True, weight_type=QInt8); activations are quantized at run time
    (uint8, per tensor: ORT's dynamic quantization has no per-token mode). Returns the model's path
    and a count of its integer ops."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process
    import onnx

    preprocessed = work / f"{name}-pre.onnx"
    source = onnx_path
    try:
        quant_pre_process(str(onnx_path), str(preprocessed))
        source = preprocessed
    except Exception as error:  # the recommendation is optional; say so and quantize the export as it is
        log(f"{name}: quant_pre_process failed ({type(error).__name__}: {error}); quantizing the export without it")
    quantized = work / f"{name}-int8.onnx"
    quantize_dynamic(str(source), str(quantized), per_channel=True, weight_type=QuantType.QInt8)
    ops = collections.Counter(node.op_type for node in onnx.load(str(quantized)).graph.node)
    integer_ops = {op: n for op, n in sorted(ops.items()) if "Integer" in op or "Quant" in op}
    return quantized, integer_ops, source == preprocessed


def prepare_int8(name, work, vitc, cc):
    """The binaries, sessions and compiled models of --precision int8, and their logit errors."""
    weights, onnx_path, torch_logits, feed, x_path = make_model(name, work)
    # DynamicViT's predictors are not in timm's model: vitc's seeded random ones (`vitc save-weights
    # --random-weights 1 --prune dyvit:0.7`), beside timm's backbone, so the dyvit binary and the
    # dense int8 binary share every backbone weight.
    predictors_path = work / f"{name}-dyvit-random.safetensors"
    subprocess.run([str(vitc), "save-weights", f"samples/{name}.graph", "--random-weights", "1", "--prune", DYVIT,
                    "-o", str(predictors_path)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    backbone = safetensors.torch.load_file(str(weights))
    predictors = {k: v for k, v in safetensors.torch.load_file(str(predictors_path)).items() if k not in backbone}
    dyvit_weights = work / f"{name}-dyvit.safetensors"
    safetensors.torch.save_file({**backbone, **predictors}, str(dyvit_weights))

    builds = {
        "vitc_f32": vitc_build(vitc, name, work, cc, "f32", "--weights", str(weights)),
        "vitc_int8": vitc_build(vitc, name, work, cc, "int8", "--weights", str(weights), "--precision", "int8"),
        "vitc_dyvit": vitc_build(vitc, name, work, cc, "int8-dyvit", "--weights", str(dyvit_weights), "--prune", DYVIT,
                                 "--precision", "int8"),
        "vitc_dyvit_f32": vitc_build(vitc, name, work, cc, "f32-dyvit", "--weights", str(dyvit_weights), "--prune", DYVIT),
    }
    graph = ROOT / "samples" / f"{name}.graph"
    macs_ratio = fvcore_total(str(vitc), graph, "none", []) / fvcore_total(str(vitc), graph, DYVIT, [])
    outputs, rss = {}, {}
    for key, build in builds.items():
        if build:
            outputs[key] = vitc_outputs(build["binary"], x_path, work, f"{name}-{key}")
            rss[key] = {t: peak_rss_kib([str(build["binary"]), "--input", str(x_path), "--threads", str(t)]) / 1024 for t in (1, 2)}

    quantized, integer_ops, preprocessed = ort_quantized(onnx_path, work, name)
    sessions, compiled = {}, {}
    core = ov.Core()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    ort_f32 = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    ov_f32 = core.compile_model(str(onnx_path), "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32",
                                                        "PERFORMANCE_HINT": "LATENCY"})
    ov_precision = set()
    for threads in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        sessions[threads] = ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])
        # No INFERENCE_PRECISION_HINT: OpenVINO picks (bf16 where the CPU has it, f32 otherwise).
        compiled[threads] = core.compile_model(str(onnx_path), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        hint = compiled[threads].get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: "f32", "bf16", …
        ov_precision.add(hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint))
    ort_f32_logits = ort_f32.run(None, {"image": feed})[0][0]
    ort_int8_logits = sessions[1].run(None, {"image": feed})[0][0]
    ov_f32_logits = ov_f32([feed])[0][0]
    ov_logits = compiled[1]([feed])[0][0]

    errors = []  # (what, against what, logit_error, max |Δ| against PyTorch fp32 or None, kept patches equal or None)

    def torch_diff(logits):
        return float(np.abs(np.asarray(logits, np.float64) - torch_logits).max())

    if "vitc_f32" in outputs:
        errors.append(("vitc fp32", "ONNX Runtime fp32", logit_error(outputs["vitc_f32"][0], ort_f32_logits),
                       torch_diff(outputs["vitc_f32"][0]), None))
        if "vitc_int8" in outputs:
            errors.append(("vitc int8", "vitc fp32", logit_error(outputs["vitc_int8"][0], outputs["vitc_f32"][0]),
                           torch_diff(outputs["vitc_int8"][0]), None))
    if "vitc_dyvit" in outputs and "vitc_dyvit_f32" in outputs:
        kept8, kept32 = outputs["vitc_dyvit"][1], outputs["vitc_dyvit_f32"][1]
        # Per stage, the share of fp32's kept patches that int8 also kept; the table shows the lowest.
        common = min(len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(kept8, kept32)) if kept32 else 1.0
        errors.append((f"vitc int8 {DYVIT}", f"vitc fp32 {DYVIT}", logit_error(outputs["vitc_dyvit"][0], outputs["vitc_dyvit_f32"][0]),
                       None, (kept8 == kept32, common)))
    errors.append(("ONNX Runtime int8", "ONNX Runtime fp32", logit_error(ort_int8_logits, ort_f32_logits), torch_diff(ort_int8_logits), None))
    errors.append((f"OpenVINO default ({'/'.join(sorted(ov_precision))})", "OpenVINO f32", logit_error(ov_logits, ov_f32_logits),
                   torch_diff(ov_logits), None))
    same_threads = {}
    for key in ("vitc_int8", "vitc_dyvit"):
        if key in outputs:
            logits2, kept2 = vitc_outputs(builds[key]["binary"], x_path, work, f"{name}-{key}-2t", threads=2)
            same_threads[key] = bool(np.array_equal(logits2, outputs[key][0])) and kept2 == outputs[key][1]

    info = {
        "name": name, "builds": builds, "rss_mib": rss, "macs_ratio": macs_ratio, "errors": errors,
        "ov_precision": "/".join(sorted(ov_precision)), "ort_integer_ops": integer_ops, "ort_preprocessed": preprocessed,
        "onnx_mib": os.path.getsize(onnx_path) / 2**20, "ort_int8_mib": os.path.getsize(quantized) / 2**20,
        "same_threads": same_threads,
    }
    for what, reference, e, _, kept in errors:
        log(f"{name}: {what} against {reference}: max |Δlogit| {e['max_diff']:.2e} ({e['relative']:.2%} of max |logit|), "
            f"cosine {e['cosine']:.6f}, top-1 {'same' if e['top1'] else 'DIFFERENT'}, top-5 {e['top5']}"
            + ("" if kept is None else f", kept patches {'equal' if kept[0] else 'DIFFERENT'} ({kept[1]:.1%} in common at the worst stage)"))
    log(f"{name}: OpenVINO's default precision here: {info['ov_precision']}; ORT int8 ops {integer_ops}; "
        f"MACs ratio dense / {DYVIT} {macs_ratio:.3f}")
    prepared = {"builds": builds, "x_path": x_path, "feed": feed, "sessions": sessions, "compiled": compiled}
    return info, prepared


def measure_int8(name, runs, info, prepared):
    builds, x_path, feed = prepared["builds"], prepared["x_path"], prepared["feed"]
    sessions, compiled = prepared["sessions"], prepared["compiled"]
    callers = {}
    for key in ("vitc_f32", "vitc_int8", "vitc_dyvit"):
        if builds[key]:
            callers[key] = lambda t, binary=builds[key]["binary"]: vitc_sample(binary, x_path, t)
    callers["ort_int8"] = lambda t: timed(lambda: sessions[t].run(None, {"image": feed}))
    callers["ov_default"] = lambda t: timed(lambda: compiled[t]([feed]))
    rows = []
    for threads in (1, 2):
        started = time.perf_counter()
        row = {"name": name, "threads": threads, "runs": runs, "macs_ratio": info["macs_ratio"], **interleaved(callers, runs, threads)}
        log(f"{name} {threads}T: " + ", ".join(f"{k} {row[k]:.1f} ms" for k in callers) +
            f" ({time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.2f})")
        rows.append(row)
    return rows


def int8_tables(infos, rows):
    def ms(row, key):
        return f"{row[key]:.1f}" if key in row else "–"

    def ratio(a, b, digits=2):
        return f"{a / b:.{digits}f}" if a is not None and b is not None else "–"

    ov = "/".join(sorted({i["ov_precision"] for i in infos}))
    out = []
    out.append(f"| model | threads | runs | vitc fp32 ms | vitc int8 ms | vitc int8 {DYVIT} ms | ONNX Runtime int8 ms | "
               f"OpenVINO default ({ov}) ms | int8 / fp32 | int8 / faster of ORT int8, OpenVINO | "
               f"{DYVIT} speed-up over int8 dense | MACs ratio | speed-up / MACs ratio |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        int8, f32, dyvit = r.get("vitc_int8"), r.get("vitc_f32"), r.get("vitc_dyvit")
        speedup = int8 / dyvit if int8 and dyvit else None
        out.append(f"| {r['name']} | {r['threads']} | {r['runs']} | {ms(r, 'vitc_f32')} | {ms(r, 'vitc_int8')} | {ms(r, 'vitc_dyvit')} | "
                   f"{ms(r, 'ort_int8')} | {ms(r, 'ov_default')} | {ratio(int8, f32)} | {ratio(int8, min(r['ort_int8'], r['ov_default']))} | "
                   f"{ratio(speedup, 1)}{'×' if speedup else ''} | {r['macs_ratio']:.2f}× | {ratio(speedup, r['macs_ratio'])} |")
    out.append("")
    out.append("Spread of the same samples, p10–p90 ms:")
    out.append("")
    out.append(f"| model | threads | vitc fp32 | vitc int8 | vitc int8 {DYVIT} | ONNX Runtime int8 | OpenVINO default ({ov}) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append(f"| {r['name']} | {r['threads']} | " + " | ".join(
            f"{r[k + '_p10']:.1f}–{r[k + '_p90']:.1f}" if k in r else "–" for k in INT8_KEYS) + " |")
    out.append("")
    out.append("Logits against the same runtime's fp32 (same seeded weights and input; top-5 \"set\": the same five "
               "classes in another order; kept patches: equal at every stage, or the share of fp32's kept patches int8 kept "
               "at the worst stage):")
    out.append("")
    out.append("| model | logits of | against | max \\|logit\\| | max \\|Δlogit\\| | relative | cosine | same top-1 | same top-5 | "
               "max \\|Δ\\| against PyTorch fp32 | kept patches equal |")
    out.append("|---|---|---|---:|---:|---:|---:|---|---|---:|---|")
    for i in infos:
        for what, reference, e, torch_diff, kept in i["errors"]:
            out.append(f"| {i['name']} | {what} | {reference} | {e['max_ref']:.3f} | {e['max_diff']:.1e} | {e['relative']:.2%} | "
                       f"{e['cosine']:.6f} | {'yes' if e['top1'] else 'NO'} | {e['top5']} | "
                       f"{'–' if torch_diff is None else f'{torch_diff:.1e}'} | {'–' if kept is None else 'yes' if kept[0] else f'no, {kept[1]:.0%}'} |")
    out.append("")
    out.append("Memory and build (vitc's weights are embedded in the binary; peak RSS of one `--input` run, GNU time):")
    out.append("")
    out.append("| model | binary | weights MiB | binary MiB | peak RSS MiB (1T / 2T) | vitc build s |")
    out.append("|---|---|---:|---:|---:|---:|")
    names = {"vitc_f32": "vitc fp32", "vitc_int8": "vitc int8", "vitc_dyvit": f"vitc int8 {DYVIT}", "vitc_dyvit_f32": f"vitc fp32 {DYVIT}"}
    for i in infos:
        for key, label in names.items():
            b = i["builds"][key]
            if b:
                out.append(f"| {i['name']} | {label} | {b['weights_mib']:.1f} | {b['binary_mib']:.1f} | "
                           f"{i['rss_mib'][key][1]:.1f} / {i['rss_mib'][key][2]:.1f} | {b['build_s']:.1f} |")
            else:
                out.append(f"| {i['name']} | {label} | build failed | | | |")
        out.append(f"| {i['name']} | ONNX fp32 / ORT int8 model files | {i['onnx_mib']:.1f} / {i['ort_int8_mib']:.1f} | | | |")
    out.append("")
    return out


def int8_environment(infos):
    out = []
    for i in infos:
        ops = ", ".join(f"{n} {op}" for op, n in i["ort_integer_ops"].items())
        same = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in i["same_threads"].items())
        out.append(f"- {i['name']}: OpenVINO's INFERENCE_PRECISION_HINT without a hint: {i['ov_precision']}; ORT int8 model "
                   f"({'after quant_pre_process' if i['ort_preprocessed'] else 'without quant_pre_process'}): {ops}; "
                   f"vitc int8 logits and kept patches the same at 2 threads as at 1: {same or '–'}")
    return out


def fp32_tables(infos, rows):
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
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="deit-t,deit-s,deit-b")
    parser.add_argument("--runs", type=int, default=30, help="samples per model, runtime and thread count")
    parser.add_argument("--runs-for", default="", help="per-model override, e.g. deit-b=15")
    parser.add_argument("--vitc", default=str(ROOT / ".build" / "release" / "vitc"), help="the vitc executable")
    parser.add_argument("--cc", default="clang")
    parser.add_argument("--out", help="also write the markdown here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (weights, ONNX, binaries)")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                        help="fp32: vitc against ORT and OpenVINO in fp32 (the default); int8: vitc fp32, int8 and int8 "
                             "with dyvit:0.7 against ORT int8 (quantize_dynamic) and OpenVINO at its default precision")
    args = parser.parse_args()
    vitc = pathlib.Path(args.vitc).resolve()
    runs_for = {k: int(v) for k, v in (item.split("=") for item in args.runs_for.split(",") if item)}
    models = args.models.split(",")
    int8 = args.precision == "int8"

    started = time.time()
    load_before = command_output(["uptime"])
    work = pathlib.Path(tempfile.mkdtemp(prefix="vitc-bench-"))
    log(f"work directory {work}; {load_before}")
    infos, rows = [], []
    try:
        for name in models:
            if int8:
                info, prepared = prepare_int8(name, work, vitc, args.cc)
                infos.append(info)
                rows += measure_int8(name, runs_for.get(name, args.runs), info, prepared)
            else:
                info, *prepared = prepare(name, work, vitc, args.cc)
                infos.append(info)
                rows += measure(name, runs_for.get(name, args.runs), *prepared)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    load_after = command_output(["uptime"])
    wall = time.time() - started

    out = int8_tables(infos, rows) if int8 else fp32_tables(infos, rows)
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
    if int8:
        out += int8_environment(infos)
    out.append(f"- load before: `{load_before}`")
    out.append(f"- load after:  `{load_after}`")
    out.append(f"- wall time of the whole run: {wall / 60:.1f} min")
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text)

if __name__ == "__main__":
    main()
