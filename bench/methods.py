#!/usr/bin/env python3
"""DeiT-S with every pruning method: latency of the binaries vitc builds, speed-up over vitc's
dense binary, the MACs ratio beside it, and the share of the scoring and selection stages.

Needs only Python 3 and a release vitc (no virtualenv). Run from the repository root:

    python3 bench/methods.py [--runs 30] [--threads 1,2] [--vitc .build/release/vitc]

Weights are `--random-weights 1` (the speed does not depend on their values; the kept tokens
do, but every method's token counts except AS-ViT's are fixed by its rule). AS-ViT's
thresholds are calibrated for a 0.65 MACs budget on samples/images with `vitc calibrate`
unless --asvit gives a spec. Timing: each sample is one process `BIN IMAGE --bench 1
--threads T` (one run, warm-up runs, one timed run), the binaries interleaved sample by sample
in a rotating order, so load on the shared machine hits them alike; a cell is the median.
The per-stage split comes from one `--bench 20` run per binary (the `_prune` stage functions
hold a method's scoring, selection and merging ops; docs/methods.md).
"""
import argparse
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
IMAGE = ROOT / "samples" / "images" / "chelsea.ppm"


def sh(args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw).stdout


def fvcore_total(vitc, graph, spec, asvit_images):
    args = [vitc, "flops", graph, "--prune", spec]
    if spec.startswith("asvit"):
        args += ["--random-weights", "1"] + sum((["--image", str(p)] for p in asvit_images), [])
    out = sh(args)
    total = [line for line in out.splitlines() if line.startswith("total")][0]
    return int(total.split()[1].replace(",", ""))


def stage_profile(binary, threads):
    """Per-stage mean ms from `--bench 20`, and the share of the `_prune` stages."""
    out = sh([binary, IMAGE, "--bench", "20", "--threads", threads])
    stages = re.findall(r"^\s+stage (\S+)\s+([\d.]+) ms", out, re.M)
    total = sum(float(ms) for _, ms in stages)
    prune = sum(float(ms) for name, ms in stages if name.endswith("_prune"))
    return (prune / total if total else float("nan")), stages


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vitc", default=str(ROOT / ".build" / "release" / "vitc"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--asvit", help="an asvit:T1,T2,T3 spec (default: calibrate for a 0.65 budget)")
    parser.add_argument("--tome", default="tome:13")
    args = parser.parse_args()
    vitc = args.vitc
    graph = ROOT / "samples" / "deit-s.graph"
    images = sorted((ROOT / "samples" / "images").glob("*.ppm"))

    asvit = args.asvit
    if not asvit:
        print("calibrating AS-ViT for a 0.65 budget on samples/images …", file=sys.stderr)
        out = sh([vitc, "calibrate", graph, "--random-weights", "1", "--budget", "0.65", "--images", ROOT / "samples" / "images"])
        asvit = [line for line in out.splitlines() if line.startswith("--prune ")][0].split()[1]
    specs = ["none", "dyvit:0.7", "evit:0.7", asvit, "bat:0.7", args.tome]

    work = pathlib.Path(tempfile.mkdtemp(prefix="vitc-methods-"))
    binaries, macs = {}, {}
    for spec in specs:
        print(f"building {spec} …", file=sys.stderr)
        binary = work / re.sub(r"[^A-Za-z0-9_.-]", "_", spec)
        sh([vitc, "build", graph, "--random-weights", "1", "--prune", spec, "-o", binary])
        binaries[spec] = binary
        macs[spec] = fvcore_total(vitc, graph, spec, [IMAGE])  # AS-ViT: the counts of the timed image

    load_before = os.getloadavg()
    rows = []
    for threads in args.threads.split(","):
        samples = {spec: [] for spec in specs}
        for run in range(args.runs):
            order = specs[run % len(specs):] + specs[:run % len(specs)]
            for spec in order:
                out = sh([binaries[spec], IMAGE, "--bench", "1", "--threads", threads])
                samples[spec].append(float(re.search(r"median ([\d.]+) ms", out).group(1)))
        dense = statistics.median(samples["none"])
        for spec in specs:
            latency = statistics.median(samples[spec])
            share, _ = stage_profile(binaries[spec], threads)
            rows.append((spec, threads, latency, dense / latency, macs["none"] / macs[spec], share))
    load_after = os.getloadavg()

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()
    print(f"DeiT-S, batch 1, {args.runs} interleaved samples per cell, image {IMAGE.name}; vitc {commit}; {cpu}, {os.cpu_count()} cores")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print()
    print("| method | threads | median ms | speed-up over dense | MACs ratio (fvcore) | speed-up / MACs ratio | scoring + selection share |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec, threads, latency, speedup, ratio, share in rows:
        print(f"| `{spec}` | {threads} | {latency:.2f} | {speedup:.2f}× | {ratio:.2f}× | {speedup / ratio:.2f} | {100 * share:.1f} % |")


if __name__ == "__main__":
    main()
