#!/usr/bin/env python3
"""What loading the weights at run time costs: a binary compiled without weights (`vitc build
GRAPH --prune SPEC -o BIN`, run as `BIN --weights W.safetensors IMAGE`) against the binary with
the same weights embedded, one image per fresh process (the main job's shape of use).

    python3 bench/load.py [--vitc PATH] [--model deit-s] [--prune dyvit:0.7] [--runs 15]

Needs only Python 3 and a built vitc (default: `swift build -c release --product vitc`). Per
sample, in rotating order: the embedded binary; the loading binary on an F32 file; on an F16
file (half the bytes, converted at load). Each sample is one process on samples/images/chelsea.ppm
timed from spawn to exit (time.perf_counter); cells are medians. The loader's own breakdown
comes from `--bench 1` (the "load:" line), peak RSS from GNU time when /usr/bin/time exists.
The files stay in the OS page cache between samples (not a cold disk). Prints the CPU model and
the load average before and after, and checks first that the logits of all three are equal bit
for bit.
"""
import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "?"


def check(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"bench/load.py: {' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vitc", help="a built vitc (default: swift build -c release)")
    parser.add_argument("--model", default="deit-s", help="samples/MODEL.graph (default deit-s)")
    parser.add_argument("--prune", default="dyvit:0.7")
    parser.add_argument("--runs", type=int, default=15, help="samples per binary (default 15)")
    args = parser.parse_args()

    vitc = args.vitc
    if not vitc:
        print("building vitc (release)...", file=sys.stderr)
        check(["swift", "build", "-c", "release", "--product", "vitc"], cwd=ROOT)
        vitc = os.path.join(ROOT, ".build/release/vitc")
    graph = os.path.join(ROOT, f"samples/{args.model}.graph")
    image = os.path.join(ROOT, "samples/images/chelsea.ppm")
    before = load_average()

    with tempfile.TemporaryDirectory(prefix="vitc-load-") as work:
        files = {}
        for dtype in ["F32", "F16"]:
            files[dtype] = os.path.join(work, f"w-{dtype}.safetensors")
            print(f"writing {dtype} weights...", file=sys.stderr)
            check([vitc, "save-weights", graph, "--random-weights", "1", "--prune", args.prune, "--dtype", dtype, "-o", files[dtype]])
        embedded, embedded16, loading = (os.path.join(work, name) for name in ["embedded", "embedded16", "loading"])
        print("building the binaries...", file=sys.stderr)
        check([vitc, "build", graph, "--weights", files["F32"], "--prune", args.prune, "-o", embedded])
        check([vitc, "build", graph, "--weights", files["F16"], "--prune", args.prune, "-o", embedded16])
        check([vitc, "build", graph, "--prune", args.prune, "-o", loading])

        runs = {
            "embedded (F32 file at compile time)": [embedded, image],
            "loading --weights F32 safetensors": [loading, "--weights", files["F32"], image],
            "loading --weights F16 safetensors": [loading, "--weights", files["F16"], image],
        }
        # Bit for bit: the loading binary equals the build that embeds the same file.
        outputs = {}
        for name, command, reference in [("f32", runs["loading --weights F32 safetensors"], [embedded, image]),
                                         ("f16", runs["loading --weights F16 safetensors"], [embedded16, image])]:
            for which, cmd in [("loaded", command), ("embedded", reference)]:
                path = os.path.join(work, f"{name}-{which}.f32")
                check(cmd + ["--out", path])
                with open(path, "rb") as f:
                    outputs[(name, which)] = f.read()
            if outputs[(name, "loaded")] != outputs[(name, "embedded")]:
                sys.exit(f"bench/load.py: {name}: the loaded binary's logits differ from the embedded build's")

        breakdown = {}
        for name in ["loading --weights F32 safetensors", "loading --weights F16 safetensors"]:
            out = check(runs[name] + ["--bench", "1"])
            breakdown[name] = re.search(r"^load: .*$", out, re.M).group(0)

        rss = {}
        if os.path.exists("/usr/bin/time"):
            for name, command in runs.items():
                result = subprocess.run(["/usr/bin/time", "-f", "%M"] + command, capture_output=True, text=True)
                rss[name] = int(result.stderr.strip().splitlines()[-1]) / 1024

        times = {name: [] for name in runs}
        inference = {name: [] for name in runs}
        names = list(runs)
        print(f"timing {args.runs} samples each...", file=sys.stderr)
        for sample in range(args.runs):
            order = names[sample % len(names):] + names[:sample % len(names)]
            for name in order:
                start = time.perf_counter()
                out = check(runs[name])
                times[name].append(1000 * (time.perf_counter() - start))
                inference[name].append(float(re.search(r": ([0-9.]+) ms,", out).group(1)))
        after = load_average()
        size = {dtype: os.path.getsize(path) for dtype, path in files.items()}
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; load average before {before}, after {after}")
    print(f"model: samples/{args.model}.graph --prune {args.prune}; {args.runs} samples each; one image per process; median ms")
    print()
    print("| binary | process, spawn to exit | of it the inference | the rest (start, weights, image) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    base = statistics.median(times[names[0]])
    for name in names:
        total, infer = statistics.median(times[name]), statistics.median(inference[name])
        ratio = "" if name == names[0] else f" ({total / base:.2f}×)"
        print(f"| {name} | {total:.1f}{ratio} | {infer:.1f} | {total - infer:.1f} | {rss.get(name, float('nan')):.0f} |")
    print()
    for name, line in breakdown.items():
        print(f"- {name}: `{line}`")
    print(f"- file sizes: F32 {size.get('F32', 0):,} bytes, F16 {size.get('F16', 0):,} bytes")


if __name__ == "__main__":
    main()
