#!/usr/bin/env python3
"""The accuracy table of docs/accuracy.md: every pruning method on the trained sample model
(samples/fashion.graph with its shipped weights), measured with the binaries vitc builds on the
shipped evaluation set (samples/fashion: 2000 canvases), the same images for every row.

Needs only Python 3 and a release vitc. Run from the repository root:

    python3 bench/accuracy.py [--vitc .build/release/vitc] [--threads 1] [--limit N] [--precision int8|bf16]

For each row: `vitc build … --prune SPEC`, then `BIN --eval samples/fashion --threads T`, which
prints top-1, the mean tokens each stage kept, the mean fvcore MACs per image (read from each
run's trace, so AS-ViT's run-time counts are counted per image) and the median latency of one
image (all 2000 runs of the binary; a median, so a busy moment of the shared machine moves it
little, but compare latencies only within one run of this script). AS-ViT's thresholds are
samples/fashion/asvit-0.65.txt (`vitc calibrate` for a 0.65 budget on training-split canvases,
tools/train_sample.py). The random-drop control is PyTorch's, from samples/fashion/README.md
(the training script; vitc has no random method). Prints a markdown table.

With --precision int8 (or bf16), every row is also built with that precision (docs/accuracy.md)
and gets that binary's top-1 and latency from `--eval`, and, from one `BIN CANVAS.ppm --trace`
run per canvas of each build (`--eval` reports means, not what each image kept), the share of
canvases whose kept patches equal the fp32 build's at every pruning stage (a token is the sorted
set of patch ids it stands for, compared as a set per stage), the share of the fp32 build's tokens
the int8 build also has at the stage where that is lowest (the mean over canvases), and the share
of canvases whose class is the fp32 build's. The canvases are written as 64×64 grey PPMs, which `--image` preprocesses exactly as
`--eval` does (the trace's top-1 is checked against `--eval`'s). The columns say "int8" for
either reduced precision's build.
"""
import argparse
import collections
import json
import pathlib
import re
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "fashion"


def sh(args):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, cwd=ROOT).stdout


def canvases(directory, folder, limit=None):
    """The evaluation set's canvases as 64×64 grey PPMs in folder (zero-run decoded as
    docs/eval-set.md says), and their labels."""
    labels = (directory / "test-labels.u8").read_bytes()
    encoded = (directory / "test-images.rle").read_bytes()
    grey, i = bytearray(), 0
    while i < len(encoded):
        if encoded[i]:
            grey.append(encoded[i])
            i += 1
        else:
            grey += bytes(encoded[i + 1])
            i += 2
    size = len(grey) // len(labels)
    side = int(size ** 0.5)
    assert side * side * len(labels) == len(grey), "not an evaluation set"
    count = min(limit or len(labels), len(labels))
    paths = []
    for n in range(count):
        path = folder / f"canvas{n:04d}.ppm"
        rgb = bytearray(3 * size)
        rgb[0::3] = rgb[1::3] = rgb[2::3] = grey[n * size:(n + 1) * size]
        path.write_bytes(f"P6 {side} {side} 255\n".encode() + rgb)
        paths.append(path)
    return paths, list(labels[:count])


def per_canvas(binary, paths, threads):
    """Runs the binary on each canvas with --trace: per canvas, the patches each stage kept (per stage,
    the sorted list of tokens, each the sorted tuple of its patch ids) and the class. The runs go
    through one shell loop (a fresh process per canvas, about 7 ms each here; spawning each from
    Python took twice that)."""
    loop = 'b="$1"; t="$2"; shift 2; for f in "$@"; do "$b" "$f" --trace "$f.json" --threads "$t" --top 1 >/dev/null || exit 1; done'
    subprocess.run(["sh", "-c", loop, "sh", str(binary), str(threads), *map(str, paths)], check=True, cwd=ROOT)
    results = []
    for path in paths:
        data = json.loads(pathlib.Path(f"{path}.json").read_text())
        kept = [sorted(tuple(token) for token in stage["patches"]) for stage in data["stages"]]
        logits = [float(v) for v in data["logits"]]
        results.append((kept, max(range(len(logits)), key=lambda c: (logits[c], -c))))
    return results


def tokens_in_common(kept, reference):
    """The share of the reference's tokens (each a tuple of patch ids) that `kept` also has, at the
    stage where it is lowest (1.0 without stages)."""
    shares = []
    for tokens, expected in zip(kept, reference):
        have = collections.Counter(tokens)
        shares.append(sum(min(n, have[t]) for t, n in collections.Counter(expected).items()) / max(1, len(expected)))
    return min(shares, default=1.0)


def eval_binary(binary, args):
    out = sh([binary, "--eval", SAMPLE, "--threads", args.threads] + (["--limit", str(args.limit)] if args.limit else []))
    top1 = float(re.search(r"^top-1: ([\d.]+)%", out, re.M).group(1))
    latency = float(re.search(r"^latency: median ([\d.]+) ms", out, re.M).group(1))
    return out, top1, latency


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vitc", default=str(ROOT / ".build" / "release" / "vitc"))
    parser.add_argument("--threads", default="1")
    parser.add_argument("--limit", type=int, help="only the first N canvases (a quick look; the table uses all)")
    parser.add_argument("--tome", default="tome:4", help="the ToMe row (tome:4 is the r nearest dyvit:0.7's MACs)")
    parser.add_argument("--precision", choices=("f32", "int8", "bf16"), default="f32",
                        help="int8 or bf16: also build every row with that --precision and compare it with the fp32 build")
    parser.add_argument("--kept-limit", type=int,
                        help="with --precision int8 or bf16: compare kept patches on the first N canvases (default: as --eval)")
    args = parser.parse_args()
    int8 = args.precision != "f32"  # a reduced precision: int8 or bf16
    p = args.precision
    asvit = (SAMPLE / "asvit-0.65.txt").read_text().strip()
    rows = [
        ("dense", "none"), ("DynamicViT ρ=0.9", "dyvit:0.9"), ("DynamicViT ρ=0.7", "dyvit:0.7"),
        ("DynamicViT ρ=0.5", "dyvit:0.5"), ("EViT 0.7, fused token", "evit:0.7"), ("EViT 0.7, no fusion", "evit:0.7,nofuse"),
        ("AS-ViT, 0.65 budget", asvit), ("BAT 0.7", "bat:0.7"), (f"ToMe r={args.tome.split(':')[1]}", args.tome),
    ]
    results, compared = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if int8:
            paths, labels = canvases(SAMPLE, pathlib.Path(tmp), args.kept_limit or args.limit)
        for name, spec in rows:
            binary = pathlib.Path(tmp) / "model"
            sh([args.vitc, "build", "samples/fashion.graph", "--weights", SAMPLE / "weights.safetensors", "--labels",
                SAMPLE / "classes.txt", "--prune", spec, "-o", binary])
            out, top1, latency = eval_binary(binary, args)
            kept = re.search(r"^tokens kept \(mean, cls included\): (.*)$", out, re.M)
            macs = float(re.search(r"^MACs \(fvcore, mean per image\): (\d+)", out, re.M).group(1))
            images = int(re.search(r": (\d+) images$", out.splitlines()[0]).group(1))
            tokens = ", ".join(f"{float(t):.1f}" for t in re.findall(r"block \d+ ([\d.]+)", kept.group(1))) if kept else "-"
            results.append((name, spec, top1, tokens, macs, latency))
            print(f"{name}: {out.splitlines()[1]}, {macs / 1e6:.1f} M MACs, {latency:.3f} ms", flush=True)
            if int8:
                f32_runs = per_canvas(binary, paths, args.threads)
                sh([args.vitc, "build", "samples/fashion.graph", "--weights", SAMPLE / "weights.safetensors", "--labels",
                    SAMPLE / "classes.txt", "--prune", spec, "--precision", p, "-o", binary])
                out8, top1_8, latency8 = eval_binary(binary, args)
                int8_runs = per_canvas(binary, paths, args.threads)
                same_kept = sum(a[0] == b[0] for a, b in zip(f32_runs, int8_runs)) / len(paths)
                same_class = sum(a[1] == b[1] for a, b in zip(f32_runs, int8_runs)) / len(paths)
                common = sum(tokens_in_common(a[0], b[0]) for a, b in zip(int8_runs, f32_runs)) / len(paths)
                # The per-canvas runs must reproduce --eval (same preprocessing, same model): their top-1 on the same canvases.
                if len(paths) == images:
                    for what, runs, expected in (("fp32", f32_runs, top1), (p, int8_runs, top1_8)):
                        traced = 100 * sum(r[1] == label for r, label in zip(runs, labels)) / len(paths)
                        if abs(traced - expected) > 1e-9 + 0.005:
                            print(f"warning: {name} {what}: per-canvas runs give top-1 {traced:.2f} %, --eval {expected:.2f} %", flush=True)
                compared.append((top1_8, latency8, same_kept, same_class, len(paths), common))
                print(f"{name} {p}: {out8.splitlines()[1]}, {latency8:.3f} ms; kept patches equal to fp32's on "
                      f"{100 * same_kept:.2f} % and class on {100 * same_class:.2f} % of {len(paths)} canvases", flush=True)
    dense = results[0]
    print(f"\n{images} canvases, {args.threads} thread(s), vitc binaries (`--eval`)\n")
    if not int8:
        print("| method | `--prune` | top-1 | Δ vs dense | tokens kept per stage (cls incl.) | MACs (fvcore) | MACs / dense | latency (median) | speed-up |")
        print("|---|---|---|---|---|---|---|---|---|")
    else:
        print("| method | `--prune` | top-1 | Δ vs dense | tokens kept per stage (cls incl.) | MACs (fvcore) | MACs / dense | latency (median) | speed-up "
              f"| top-1 {p} | {p} − fp32 | latency {p} | kept patches = fp32's | fp32's tokens {p} kept (worst stage, mean) "
              "| class = fp32's |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row, (name, spec, top1, tokens, macs, latency) in enumerate(results):
        delta = "" if spec == "none" else f"{top1 - dense[2]:+.2f}"
        line = (f"| {name} | `{spec}` | {top1:.2f} % | {delta} | {tokens} | {macs / 1e6:.1f} M | {macs / dense[4]:.3f} | "
                f"{latency:.3f} ms | {dense[5] / latency:.2f}× |")
        if int8:
            top1_8, latency8, same_kept, same_class, count, common = compared[row]
            kept = "– (no selection)" if spec == "none" else f"{100 * same_kept:.2f} %"
            common = "–" if spec == "none" else f"{100 * common:.2f} %"
            line += f" {top1_8:.2f} % | {top1_8 - top1:+.2f} | {latency8:.3f} ms | {kept} | {common} | {100 * same_class:.2f} % |"
        print(line)
    readme = (SAMPLE / "README.md").read_text()
    control = re.search(r"^\| random drop 0\.7 \(dyvit counts\) \| [^|]* \| ([\d.]+) % \|", readme, re.M)
    if control:
        print(f"| random drop 0.7 (control, PyTorch) | — | {float(control.group(1)):.2f} % | "
              f"{float(control.group(1)) - dense[2]:+.2f} | 45, 32, 22 | as ρ=0.7 | | | |" + (" | | | | | |" if int8 else ""))
    if int8:
        print(f"\nkept patches and class compared on {compared[0][4]} canvases (one `BIN CANVAS.ppm --trace` run per canvas and build)")


if __name__ == "__main__":
    main()
