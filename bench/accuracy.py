#!/usr/bin/env python3
"""The accuracy table of docs/accuracy.md: every pruning method on the trained sample model
(samples/fashion.graph with its shipped weights), measured with the binaries vitc builds on the
shipped evaluation set (samples/fashion: 2000 canvases), the same images for every row.

Needs only Python 3 and a release vitc. Run from the repository root:

    python3 bench/accuracy.py [--vitc .build/release/vitc] [--threads 1] [--limit N]

For each row: `vitc build … --prune SPEC`, then `BIN --eval samples/fashion --threads T`, which
prints top-1, the mean tokens each stage kept, the mean fvcore MACs per image (read from each
run's trace, so AS-ViT's run-time counts are counted per image) and the median latency of one
image (all 2000 runs of the binary; a median, so a busy moment of the shared machine moves it
little, but compare latencies only within one run of this script). AS-ViT's thresholds are
samples/fashion/asvit-0.65.txt (`vitc calibrate` for a 0.65 budget on training-split canvases,
tools/train_sample.py). The random-drop control is PyTorch's, from samples/fashion/README.md
(the training script; vitc has no random method). Prints a markdown table.
"""
import argparse
import pathlib
import re
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "fashion"


def sh(args):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, cwd=ROOT).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vitc", default=str(ROOT / ".build" / "release" / "vitc"))
    parser.add_argument("--threads", default="1")
    parser.add_argument("--limit", type=int, help="only the first N canvases (a quick look; the table uses all)")
    parser.add_argument("--tome", default="tome:4", help="the ToMe row (tome:4 is the r nearest dyvit:0.7's MACs)")
    args = parser.parse_args()
    asvit = (SAMPLE / "asvit-0.65.txt").read_text().strip()
    rows = [
        ("dense", "none"), ("DynamicViT ρ=0.9", "dyvit:0.9"), ("DynamicViT ρ=0.7", "dyvit:0.7"),
        ("DynamicViT ρ=0.5", "dyvit:0.5"), ("EViT 0.7, fused token", "evit:0.7"), ("EViT 0.7, no fusion", "evit:0.7,nofuse"),
        ("AS-ViT, 0.65 budget", asvit), ("BAT 0.7", "bat:0.7"), (f"ToMe r={args.tome.split(':')[1]}", args.tome),
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in rows:
            binary = pathlib.Path(tmp) / "model"
            sh([args.vitc, "build", "samples/fashion.graph", "--weights", SAMPLE / "weights.safetensors", "--labels",
                SAMPLE / "classes.txt", "--prune", spec, "-o", binary])
            out = sh([binary, "--eval", SAMPLE, "--threads", args.threads] + (["--limit", str(args.limit)] if args.limit else []))
            top1 = float(re.search(r"^top-1: ([\d.]+)%", out, re.M).group(1))
            kept = re.search(r"^tokens kept \(mean, cls included\): (.*)$", out, re.M)
            macs = float(re.search(r"^MACs \(fvcore, mean per image\): (\d+)", out, re.M).group(1))
            latency = float(re.search(r"^latency: median ([\d.]+) ms", out, re.M).group(1))
            images = int(re.search(r": (\d+) images$", out.splitlines()[0]).group(1))
            tokens = ", ".join(f"{float(t):.1f}" for t in re.findall(r"block \d+ ([\d.]+)", kept.group(1))) if kept else "-"
            results.append((name, spec, top1, tokens, macs, latency))
            print(f"{name}: {out.splitlines()[1]}, {macs / 1e6:.1f} M MACs, {latency:.3f} ms", flush=True)
    dense = results[0]
    print(f"\n{images} canvases, {args.threads} thread(s), vitc binaries (`--eval`)\n")
    print("| method | `--prune` | top-1 | Δ vs dense | tokens kept per stage (cls incl.) | MACs (fvcore) | MACs / dense | latency (median) | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, spec, top1, tokens, macs, latency in results:
        delta = "" if spec == "none" else f"{top1 - dense[2]:+.2f}"
        print(f"| {name} | `{spec}` | {top1:.2f} % | {delta} | {tokens} | {macs / 1e6:.1f} M | {macs / dense[4]:.3f} | "
              f"{latency:.3f} ms | {dense[5] / latency:.2f}× |")
    readme = (SAMPLE / "README.md").read_text()
    control = re.search(r"^\| random drop 0\.7 \(dyvit counts\) \| [^|]* \| ([\d.]+) % \|", readme, re.M)
    if control:
        print(f"| random drop 0.7 (control, PyTorch) | — | {float(control.group(1)):.2f} % | "
              f"{float(control.group(1)) - dense[2]:+.2f} | 45, 32, 22 | as ρ=0.7 | | | |")


if __name__ == "__main__":
    main()
