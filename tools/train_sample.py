#!/usr/bin/env python3
"""Trains vitc's real sample model on "Cluttered Fashion-MNIST 64" and writes samples/fashion/.

Needs (this script installs nothing):
  * Debian's package `dataset-fashion-mnist` (apt-get update; apt-get install
    dataset-fashion-mnist): the four idx files under /usr/share/datasets/fashion-mnist/.
  * python3 with torch, timm, safetensors and numpy (pip install torch timm safetensors numpy;
    the CPU is enough). In this repository: bench/.venv/bin/python.

Run from anywhere (about 45 minutes on a busy 2-core CPU; be kind to the machine):

    nice -n 15 bench/.venv/bin/python tools/train_sample.py            # all stages, time budgets
    nice -n 15 bench/.venv/bin/python tools/train_sample.py --steps 1500 --pred-steps 600   # fixed steps
    bench/.venv/bin/python tools/train_sample.py --stage export        # re-export from checkpoints
    bench/.venv/bin/python tools/train_sample.py --stage check         # vitc run vs the fixtures

samples/fashion/README.md gives the flags that repeat the shipped run exactly (--steps N is the
issue's warm-up + cosine recipe; by default a wall-time budget, --minutes / --pred-minutes,
decides when a constant learning rate starts to decay, and --*-decay-from fixes that step).

Stages (`--stage all` runs them in order; checkpoints go to --work, default out/fashion-train/):
  backbone    timm VisionTransformer(img_size=64, patch_size=8, embed_dim=96, depth=12,
              num_heads=3, num_classes=10): AdamW lr 1e-3, wd 0.05, batch 128, 100 warm-up
              steps then a decay to 1e-5 (see Schedule), gradient clipping 1.0, bf16 autocast
              on the CPU, fresh canvases every step plus a random horizontal flip.
  predictors  DynamicViT (Rao et al. 2021, SEMANTICS.md §2) at rho = 0.7: predictors
              score_predictor.{0,1,2} before blocks 3, 6, 9, trained as the paper does (hard
              Gumbel-softmax decisions, attention masking, losses CE + 0.5 KL(teacher logits) +
              0.5 MSE(teacher tokens, kept tokens) + 2 ratio), with the backbone fine-tuned at a
              tenth of the predictors' learning rate and the dense backbone as the frozen teacher.
  export      rounds all weights to float16 and writes samples/fashion/ (every number the
              README reports is computed with the float16-rounded weights, as vitc reads them).
  calibrate   AS-ViT thresholds for a 0.65 MACs budget: `vitc calibrate --data` on 256 canvases
              rendered from the training split; writes samples/fashion/asvit-0.65.txt. Needs
              a release vitc (swift build -c release; --vitc to use another).

The data: each canvas is one 28x28 item on a black 64x64 canvas, aligned to the 8-px patch grid
(its top-left pixel at (8r+2, 8c+2), r, c in 0..4: centred in a 4x4 block of patches, 25
positions), plus 4-8 distractor crops (side 8-12 px, cut at a random place from other items of
the same split, intensity x U(0.5, 1.0) rounded to the nearest integer, max-blended at any pixel
position). Grey copied to 3 channels; the model's input is x/127.5 - 1. The test canvases are
test item i on canvas i (i = 0..9999), seeded; samples/fashion/ ships the first 2000.
"""
import argparse
import copy
import gzip
import json
import math
import pathlib
import platform
import sys
import time

import numpy as np
import safetensors
import safetensors.torch
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = pathlib.Path("/usr/share/datasets/fashion-mnist")
DATA_LICENSE = """The images in test-images.rle (and the PPMs beside it) are derived from Fashion-MNIST,
https://github.com/zalandoresearch/fashion-mnist (Debian package dataset-fashion-mnist).

MIT License

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SIDE, PATCH, ITEM = 64, 8, 28
P = (SIDE // PATCH) ** 2  # 64 patches
LOCATIONS = [3, 6, 9]
SEED = 20240601
SUBSET = 2000
FIXTURES = 100
CALIBRATION = 256  # training-split canvases for AS-ViT's thresholds


# ---------------------------------------------------------------------------------------------
# data

def read_idx(name):
    with gzip.open(DATA / name, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return images, labels


def render(images, items, rng):
    """Canvases [len(items), 64, 64] uint8 for the given item indices of `images` (one split)."""
    n = len(images)
    out = np.zeros((len(items), SIDE, SIDE), dtype=np.uint8)
    for b, item in enumerate(items):
        canvas = out[b]
        pos = int(rng.integers(25))
        r, c = divmod(pos, 5)
        y, x = PATCH * r + 2, PATCH * c + 2
        canvas[y:y + ITEM, x:x + ITEM] = images[item]
        for _ in range(int(rng.integers(4, 9))):
            s = int(rng.integers(8, 13))
            src = int(rng.integers(n - 1))
            src += src >= item  # another item of the same split
            cy, cx = (int(v) for v in rng.integers(0, ITEM - s + 1, size=2))
            py, px = (int(v) for v in rng.integers(0, SIDE - s + 1, size=2))
            f = rng.uniform(0.5, 1.0)
            crop = np.rint(images[src, cy:cy + s, cx:cx + s].astype(np.float64) * f).astype(np.uint8)
            np.maximum(canvas[py:py + s, px:px + s], crop, out=canvas[py:py + s, px:px + s])
    return out


def to_input(canvases):
    """uint8 [B,64,64] -> float32 [B,3,64,64], x/127.5 - 1, grey copied to 3 channels."""
    x = torch.from_numpy(canvases).float() / 127.5 - 1.0
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def test_canvases(images):
    return render(images, np.arange(len(images)), np.random.default_rng(SEED + 1))


def rle_encode(flat):
    """Zero-run encoding: a nonzero byte stands for itself; a 0 byte is followed by one byte
    n in 1..255 and stands for n zeros (longer runs are several pairs)."""
    out = bytearray()
    i, n = 0, len(flat)
    while i < n:
        v = flat[i]
        if v:
            out.append(v)
            i += 1
        else:
            j = i
            while j < n and flat[j] == 0 and j - i < 255:
                j += 1
            out += bytes((0, j - i))
            i = j
    return bytes(out)


def rle_decode(data, count):
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i]:
            out.append(data[i])
            i += 1
        else:
            out += bytes(data[i + 1])
            i += 2
    assert len(out) == count
    return np.frombuffer(bytes(out), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# model

def make_model():
    return timm.models.vision_transformer.VisionTransformer(
        img_size=SIDE, patch_size=PATCH, embed_dim=96, depth=12, num_heads=3, num_classes=10)


class Predictor(nn.Module):
    """DynamicViT's PredictorLG (SEMANTICS.md §2.2), timm-style names in_conv.* / out_conv.*."""

    def __init__(self, c):
        super().__init__()
        self.in_conv = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, c), nn.GELU())  # eps 1e-5
        self.out_conv = nn.Sequential(
            nn.Linear(c, c // 2), nn.GELU(), nn.Linear(c // 2, c // 4), nn.GELU(),
            nn.Linear(c // 4, 2), nn.LogSoftmax(dim=-1))

    def forward(self, x, policy):
        x = self.in_conv(x)
        c = x.shape[-1]
        local = x[:, :, :c // 2]
        glob = (x[:, :, c // 2:] * policy).sum(1, keepdim=True) / policy.sum(1, keepdim=True)
        x = torch.cat([local, glob.expand(-1, x.shape[1], -1)], dim=-1)
        return self.out_conv(x)


def embed(model, x):
    x = model.patch_embed(x)  # [B, 64, 96], flatten(2).transpose(1,2): row-major patches
    x = torch.cat([model.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
    return x + model.pos_embed


def attention(attn, x, policy=None):
    b, n, c = x.shape
    h = attn.num_heads
    qkv = attn.qkv(x).reshape(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    a = (q @ k.transpose(-2, -1)) * attn.scale
    if policy is None:
        a = a.softmax(dim=-1)
    else:  # DynamicViT's softmax_with_policy: masked tokens are invisible to the others
        eps = 1e-6
        ap = policy.reshape(b, 1, 1, n)
        eye = torch.eye(n, dtype=ap.dtype, device=ap.device).view(1, 1, n, n)
        ap = ap + (1.0 - ap) * eye
        a = a - a.max(dim=-1, keepdim=True)[0]
        a = a.float().exp() * ap
        a = ((a + eps / n) / (a.sum(dim=-1, keepdim=True) + eps)).type_as(q)
    x = (a @ v).transpose(1, 2).reshape(b, n, c)
    return attn.proj(x), a


def block(blk, x, policy=None):
    y, a = attention(blk.attn, blk.norm1(x), policy)
    x = x + y
    x = x + blk.mlp(blk.norm2(x))
    return x, a


def keep_counts(rho):
    return [int(P * rho ** (s + 1)) for s in range(len(LOCATIONS))]


def gather(x, keep):
    """cls first, then x[:, 1 + keep] in the order of keep."""
    idx = torch.cat([torch.zeros_like(keep[:, :1]), keep + 1], dim=1)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


@torch.no_grad()
def forward_pruned(model, x, method, predictors=None, rho=0.7, gen=None, record=None):
    """Inference with token reduction: 'dense', 'dyvit' (SEMANTICS §2.3), 'evit' (§3, fused
    token, inside blocks 3, 6, 9 after the attention residual), 'random' (the DynamicViT schedule
    keeping a uniformly random subset). Returns the logits."""
    return forward_reduced(model, x, method, predictors, rho, gen, record)


def forward_reduced(model, x, method, predictors=None, rho=0.7, gen=None, record=None):
    """forward_pruned with gradients: EViT trains through the same forward it infers with
    (top-k of the cls attention is not differentiated; the kept and fused tokens are)."""
    x = embed(model, x)
    counts = keep_counts(rho)
    orig = torch.arange(P).expand(x.shape[0], -1)  # original patch id of each current token
    for i, blk in enumerate(model.blocks):
        if method in ("dyvit", "random") and i in LOCATIONS:
            s = LOCATIONS.index(i)
            if method == "dyvit":
                spatial = x[:, 1:]
                score = predictors[s](spatial, torch.ones_like(spatial[:, :, :1]))[:, :, 0]
                keep = torch.argsort(score, dim=1, descending=True, stable=True)[:, :counts[s]]
            else:
                keep = torch.argsort(torch.rand(x.shape[0], x.shape[1] - 1, generator=gen), dim=1)[:, :counts[s]]
            x = gather(x, keep)
            orig = torch.gather(orig, 1, keep)
            if record is not None:
                record.append((i, orig.clone()))
        if method == "evit" and i in LOCATIONS:
            y, a = attention(blk.attn, blk.norm1(x))
            x = x + y
            n = x.shape[1] - 1
            k = math.ceil(rho * n)
            cls_attn = a[:, :, 0, 1:].mean(dim=1)  # [B, n]
            order = torch.argsort(cls_attn, dim=1, descending=True, stable=True)
            keep, drop = order[:, :k], order[:, k:]
            kept = gather(x, keep)
            if drop.shape[1] > 0:
                w = torch.gather(cls_attn, 1, drop).unsqueeze(-1)
                tokens = torch.gather(x[:, 1:], 1, drop.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
                # the official code's extra token: the attention-weighted sum, not renormalized
                # (SEMANTICS.md §3; evit.py: torch.sum(non_topk * non_topk_attn, dim=1))
                fused = (tokens * w).sum(1, keepdim=True)
                kept = torch.cat([kept, fused], dim=1)
            x = kept
            x = x + blk.mlp(blk.norm2(x))
        else:
            x = blk(x)
    x = model.norm(x)
    return model.head(x[:, 0])


def forward_train_dyvit(model, predictors, x, tau=1.0):
    """DynamicViT's training forward: tokens are masked (not dropped) by hard Gumbel-softmax
    decisions; returns logits, final patch tokens, last decision, decisions per stage."""
    x = embed(model, x)
    b = x.shape[0]
    prev = torch.ones(b, P, 1, dtype=x.dtype)
    policy = None
    decisions = []
    for i, blk in enumerate(model.blocks):
        if i in LOCATIONS:
            s = LOCATIONS.index(i)
            score = predictors[s](x[:, 1:], prev)
            hard = F.gumbel_softmax(score.float(), tau=tau, hard=True)[:, :, 0:1].to(x.dtype) * prev
            decisions.append(hard.reshape(b, P))
            policy = torch.cat([torch.ones(b, 1, 1, dtype=x.dtype), hard], dim=1)
            prev = hard
        x, _ = block(blk, x, policy)
    x = model.norm(x)
    return model.head(x[:, 0]), x[:, 1:], prev.reshape(b, P), decisions


# ---------------------------------------------------------------------------------------------
# training

class Schedule:
    """The learning rate per step. With `steps`: warm-up, then cosine to `floor` at `steps` (the
    issue's recipe). Otherwise warm-up, constant peak until step S, then a cosine to `floor`
    over max(100, S/3) more steps, where S is `decay_from` if given, else the first step after
    0.75·`minutes` of wall time (a time budget on a busy machine; the log prints the
    --decay-from value that repeats the run exactly)."""

    def __init__(self, steps, decay_from, minutes, warmup, peak, floor, name):
        self.minutes, self.warmup, self.peak, self.floor, self.name = minutes, warmup, peak, floor, name
        self.start = time.time()
        self.decay_from, self.total = None, None
        if steps is not None:
            self.decay_from, self.total = warmup, steps
        elif decay_from is not None:
            self.decay_from, self.total = decay_from, decay_from + max(100, decay_from // 3)

    def lr(self, step):
        if self.decay_from is None and step >= self.warmup and time.time() - self.start >= 60 * 0.75 * self.minutes:
            self.decay_from, self.total = step, step + max(100, step // 3)
            print(f"{self.name}: time budget reached, decay from step {step} to {self.total}; "
                  f"--{self.name}-decay-from {step} repeats this run", flush=True)
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        if self.decay_from is None or step < self.decay_from:
            return self.peak
        t = (step - self.decay_from) / max(1, self.total - self.decay_from)
        return self.floor + 0.5 * (self.peak - self.floor) * (1 + math.cos(math.pi * min(1.0, t)))

    def done(self, step):
        return self.decay_from is not None and step >= self.total


def batches(images, labels, rng, batch):
    items = rng.integers(len(images), size=batch)
    canvases = render(images, items, rng)
    flip = rng.random(batch) < 0.5
    canvases[flip] = canvases[flip][:, :, ::-1]
    return to_input(canvases), torch.from_numpy(labels[items])


@torch.no_grad()
def evaluate(fn, canvases, labels, batch=250):
    correct = 0
    logits = []
    for i in range(0, len(canvases), batch):
        out = fn(to_input(canvases[i:i + batch]))
        logits.append(out)
        correct += (out.argmax(-1).numpy() == labels[i:i + batch]).sum()
    return correct / len(canvases), torch.cat(logits)


def train_backbone(args, work):
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    images, labels = load_split("train")
    model = make_model()
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}", flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "pos_embed" not in n and "cls_token" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "pos_embed" not in n and "cls_token" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}], lr=1e-3)
    model.train()
    start = time.time()
    sched = Schedule(args.steps, args.backbone_decay_from, args.minutes, 100, 1e-3, 1e-5, "backbone")
    step = 0
    while not sched.done(step):
        lr = sched.lr(step)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batches(images, labels, rng, 128)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            print(f"backbone step {step:5d} loss {loss.item():.4f} lr {lr:.2e} "
                  f"{time.time() - start:7.1f}s", flush=True)
        step += 1
    minutes = (time.time() - start) / 60
    print(f"backbone: {step} steps, decay from {sched.decay_from}", flush=True)
    torch.save({"model": model.state_dict(), "minutes": minutes, "steps": step, "decay_from": sched.decay_from},
               work / "backbone.pt")
    print(f"backbone trained in {minutes:.1f} min", flush=True)


def train_predictors(args, work):
    torch.manual_seed(SEED + 2)
    rng = np.random.default_rng(SEED + 2)
    images, labels = load_split("train")
    ckpt = torch.load(work / "backbone.pt")
    model = make_model()
    model.load_state_dict(ckpt["model"])
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    predictors = nn.ModuleList([Predictor(96) for _ in LOCATIONS])
    rho = 0.7
    targets = [rho ** (s + 1) for s in range(len(LOCATIONS))]
    groups = [{"params": list(predictors.parameters()), "lr_scale": 1.0, "weight_decay": 0.05}]
    if args.finetune:
        groups.append({"params": list(model.parameters()), "lr_scale": 0.1, "weight_decay": 0.05})
    opt = torch.optim.AdamW(groups, lr=1e-3)
    model.train(args.finetune)
    predictors.train()
    start = time.time()
    sched = Schedule(args.pred_steps, args.predictors_decay_from, args.pred_minutes, 50, 1e-3, 1e-5, "predictors")
    step = 0
    while not sched.done(step):
        lr = sched.lr(step)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        x, y = batches(images, labels, rng, 128)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with torch.no_grad():
                t_feats = teacher.forward_features(x)
                t_logits, t_tokens = teacher.forward_head(t_feats), t_feats[:, 1:]
            logits, tokens, mask, decisions = forward_train_dyvit(model, predictors, x)
        logits, tokens, t_logits, t_tokens = logits.float(), tokens.float(), t_logits.float(), t_tokens.float()
        ratio_loss = sum(((d.float().mean(1) - t) ** 2).mean() for d, t in zip(decisions, targets))
        cls_loss = F.cross_entropy(logits, y)
        kl = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(t_logits, -1), reduction="batchmean", log_target=True)
        m = mask.reshape(-1) > 0.5
        token_loss = ((tokens.reshape(-1, 96)[m] - t_tokens.reshape(-1, 96)[m]) ** 2).mean() if m.any() else logits.new_zeros(())
        loss = cls_loss + 2.0 * ratio_loss / len(LOCATIONS) + 0.5 * kl + 0.5 * token_loss
        evit_loss = logits.new_zeros(())
        if args.finetune and args.evit_weight > 0:
            # EViT fine-tunes its backbone too (paper: keep rate 0.7, fused token): the shared
            # backbone learns to run on EViT's kept tokens as well as DynamicViT's.
            with torch.autocast("cpu", dtype=torch.bfloat16):
                e_logits = forward_reduced(model, x, "evit", rho=0.7).float()
            evit_loss = F.cross_entropy(e_logits, y) + 0.5 * F.kl_div(
                F.log_softmax(e_logits, -1), F.log_softmax(t_logits, -1), reduction="batchmean", log_target=True)
            loss = loss + args.evit_weight * evit_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        opt.step()
        if step % 25 == 0:
            kept = " ".join(f"{d.float().mean().item():.3f}" for d in decisions)
            print(f"predictor step {step:4d} loss {loss.item():.4f} ce {cls_loss.item():.3f} kl {kl.item():.3f} evit {evit_loss.item():.3f} "
                  f"tok {token_loss.item():.3f} ratio {ratio_loss.item():.4f} kept {kept} "
                  f"{time.time() - start:7.1f}s", flush=True)
        step += 1
    minutes = (time.time() - start) / 60
    print(f"predictors: {step} steps, decay from {sched.decay_from}", flush=True)
    torch.save({"model": model.state_dict(), "predictors": predictors.state_dict(), "minutes": minutes,
                "steps": step, "decay_from": sched.decay_from, "evit_weight": args.evit_weight, "backbone_decay_from": ckpt["decay_from"], "finetune": args.finetune, "backbone_minutes": ckpt["minutes"],
                "backbone_steps": ckpt["steps"]}, work / "dyvit.pt")
    print(f"predictors trained in {minutes:.1f} min", flush=True)


# ---------------------------------------------------------------------------------------------
# export

def write_ppm(path, canvas):
    rgb = np.repeat(canvas[:, :, None], 3, axis=2)
    path.write_bytes(b"P6\n64 64\n255\n" + rgb.tobytes())


def export(args, work):
    out = ROOT / "samples" / "fashion"
    out.mkdir(parents=True, exist_ok=True)
    ckpt = torch.load(work / "dyvit.pt")
    model = make_model()
    model.load_state_dict(ckpt["model"])
    predictors = nn.ModuleList([Predictor(96) for _ in LOCATIONS])
    predictors.load_state_dict(ckpt["predictors"])
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    for k, v in predictors.state_dict().items():
        tensors[f"score_predictor.{k}"] = v.detach().to(torch.float16).contiguous()
    safetensors.torch.save_file(dict(sorted(tensors.items())), str(out / "weights.safetensors"),
                                metadata={"format": "pt"})  # one key: safetensors orders a map at random
    (out / "weights.safetensors").chmod(0o644)
    # everything below uses the float16-rounded weights, as vitc reads them
    back = safetensors.torch.load_file(str(out / "weights.safetensors"))
    model.load_state_dict({k: v.float() for k, v in back.items() if not k.startswith("score_predictor.")})
    predictors.load_state_dict({k[len("score_predictor."):]: v.float() for k, v in back.items() if k.startswith("score_predictor.")})
    model.eval()
    predictors.eval()

    images, labels = load_split("test")
    canvases = test_canvases(images)
    sub, sub_labels = canvases[:SUBSET], labels[:SUBSET]
    flat = sub.reshape(-1)
    enc = rle_encode(flat.tolist())
    assert np.array_equal(rle_decode(enc, flat.size), flat)
    (out / "test-images.rle").write_bytes(enc)
    (out / "test-labels.u8").write_bytes(sub_labels.astype(np.uint8).tobytes())
    (out / "classes.txt").write_text("".join(c + "\n" for c in CLASSES))
    (out / "LICENSE-fashion-mnist.txt").write_text(DATA_LICENSE)
    samples = []
    for c in range(10):  # the first canvas of a few classes, for the README and demos
        if c not in (0, 1, 7, 8, 9):
            continue
        i = int(np.nonzero(sub_labels == c)[0][0])
        name = CLASSES[c].lower().replace("/", "-").replace(" ", "-")
        write_ppm(out / f"{name}.ppm", sub[i])
        samples.append((f"{name}.ppm", i, CLASSES[c]))
    x0 = to_input(sub[:1])[0]
    x0.numpy().astype("<f4").tofile(out / "input0.f32")

    with torch.no_grad():
        fix = model(to_input(sub[:FIXTURES])).numpy().astype("<f4")
    fix.tofile(out / "logits-dense-100.f32")
    mine = forward_pruned(model, to_input(sub[:FIXTURES]), "dense").numpy()
    print(f"own dense forward vs timm: max |d| = {np.abs(mine - fix).max():.2e}", flush=True)
    record = []
    with torch.no_grad():
        fix7 = forward_pruned(model, to_input(sub[:FIXTURES]), "dyvit", predictors, 0.7, record=record).numpy().astype("<f4")
    fix7.tofile(out / "logits-dyvit0.7-100.f32")
    kept = [[{"block": blk, "patches": ids[j].tolist()} for blk, ids in record] for j in range(FIXTURES)]
    (out / "kept-dyvit0.7-100.json").write_text(
        "[\n" + ",\n".join(json.dumps(k, separators=(",", ":")) for k in kept) + "\n]\n")

    rows = []
    gen = torch.Generator().manual_seed(SEED + 3)
    limit = args.quick or len(canvases)
    for name, full, fn in [
        ("dense (timm)", True, lambda x: model(x)),
        ("dyvit:0.9", False, lambda x: forward_pruned(model, x, "dyvit", predictors, 0.9)),
        ("dyvit:0.7", True, lambda x: forward_pruned(model, x, "dyvit", predictors, 0.7)),
        ("dyvit:0.5", False, lambda x: forward_pruned(model, x, "dyvit", predictors, 0.5)),
        ("evit:0.7", False, lambda x: forward_pruned(model, x, "evit", rho=0.7)),
        ("random drop 0.7 (dyvit counts)", False, lambda x: forward_pruned(model, x, "random", rho=0.7, gen=gen)),
    ]:
        t = time.time()
        acc_full = evaluate(fn, canvases[:limit], labels[:limit])[0] if full else None
        acc_sub, _ = evaluate(fn, sub[:limit], sub_labels[:limit])
        rows.append((name, acc_full, acc_sub))
        full_text = f"{100 * acc_full:6.2f} %" if full else "   -    "
        print(f"{name:32s} test 10k {full_text}  subset 2000 {100 * acc_sub:6.2f} %  ({time.time() - t:.0f}s)", flush=True)
    # the dense backbone before DynamicViT fine-tuning, for reference (float16-rounded too)
    base = make_model()
    base.load_state_dict({k: v.half().float() for k, v in torch.load(work / "backbone.pt")["model"].items()})
    base.eval()
    acc_base, _ = evaluate(lambda x: base(x), canvases[:limit], labels[:limit])
    acc_base_sub, _ = evaluate(lambda x: base(x), sub[:limit], sub_labels[:limit])
    print(f"backbone before fine-tuning      test 10k {100 * acc_base:6.2f} %  subset {100 * acc_base_sub:6.2f} %", flush=True)
    fix_pred = fix.argmax(-1)
    info = {
        "rows": rows, "base": (acc_base, acc_base_sub), "samples": samples, "ckpt": {**{k: ckpt[k] for k in ("minutes", "steps", "decay_from", "finetune", "backbone_minutes", "backbone_steps", "backbone_decay_from")}, "evit_weight": ckpt.get("evit_weight", 0)},
        "rle_bytes": len(enc), "fixture_correct": int((fix_pred == sub_labels[:FIXTURES]).sum()),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
                     "numpy": np.__version__, "safetensors": safetensors.__version__},
        "threads": torch.get_num_threads(),
        "sample_preds": {s[0]: CLASSES[int(fix_pred[s[1]])] if s[1] < FIXTURES else None for s in samples},
    }
    (work / "export.json").write_text(json.dumps(info, indent=1))
    write_readme(out, info, args)
    print(json.dumps(info, indent=1), flush=True)


def write_readme(out, info, args):
    c = info["ckpt"]
    pct = lambda v: "-" if v is None else f"{100 * v:.2f} %"
    table = "\n".join(f"| {name} | {pct(full)} | {pct(sub)} |" for name, full, sub in info["rows"])
    v = info["versions"]
    files = sorted(p for p in out.iterdir() if p.name != "README.md")
    sizes = "\n".join(f"| `{p.name}` | {p.stat().st_size:,} |" for p in files)
    samples = ", ".join(f"`{f}` (canvas {i}, {label})" for f, i, label in info["samples"])
    bb = (f"{c['backbone_steps']} steps, constant lr from step 100, decay from step {c['backbone_decay_from']}"
          if c["backbone_decay_from"] != 100 else f"{c['backbone_steps']} steps, cosine after 100 warm-up steps")
    pr = (f"{c['steps']} steps, constant lr from step 50, decay from step {c['decay_from']}"
          if c["decay_from"] != 50 else f"{c['steps']} steps, cosine after 50 warm-up steps")
    repeat = (f"--backbone-decay-from {c['backbone_decay_from']}" if c["backbone_decay_from"] != 100 else f"--steps {c['backbone_steps']}")
    repeat += (f" --predictors-decay-from {c['decay_from']}" if c["decay_from"] != 50 else f" --pred-steps {c['steps']}")
    evit_weight = c.get("evit_weight", 0)
    evit_training = (f"; in the same steps the backbone also learns EViT's forward at keep rate 0.7 "
                     f"(+ {evit_weight:g}·(CE + 0.5·KL(teacher logits)) on it), as EViT fine-tunes its backbone"
                     if evit_weight else "")
    evit_note = ", whose fine-tuning also ran EViT at 0.7 (below)" if evit_weight else ", no training of its own"
    undertrained = ""
    if info["rows"][0][1] < 0.74:
        undertrained = (f"- Under-trained: the machine was shared, so the time budgets allowed only "
                        f"{c['backbone_steps']} backbone steps (the issue's recipe is 1500, measured at 76.5 %). "
                        f"`--steps 1500 --pred-steps 600` on a quiet machine should do better.\n")
    text = f"""# samples/fashion: the trained sample model

Made by `tools/train_sample.py` (read its docstring); the model is `samples/fashion.graph`:
timm `VisionTransformer(img_size=64, patch_size=8, embed_dim=96, depth=12, num_heads=3,
num_classes=10)` (1,368,106 parameters, stock timm names, `pos_embed` [1,65,96]) plus
DynamicViT's three predictors `score_predictor.{{0,1,2}}.*` (46,158 parameters) for ρ = 0.7
before blocks 3, 6, 9.

Data: Fashion-MNIST, MIT licence, © 2017 Zalando SE (Debian package `dataset-fashion-mnist`,
/usr/share/datasets/fashion-mnist/). The canvases here are derived from its test split.

## The task: Cluttered Fashion-MNIST 64

One 28×28 item on a black 64×64 canvas, its top-left pixel at (8r+2, 8c+2) with r, c in 0…4
(centred in a 4×4 block of 8-px patches, 25 positions), plus 4–8 distractor crops (squares of
8–12 px cut from other items of the same split, intensity × U(0.5, 1.0), max-blended at any
pixel position). The item covers 16 of the 64 patches; the rest is background or clutter.
**Input to the model:** the grey canvas copied to 3 channels, normalized as `pixel/127.5 − 1`
= `(pixel/255 − 0.5)/0.5`, not with ImageNet's mean and std. samples/fashion.graph says so in
its first line (`preprocess mean=0.5, std=0.5, crop_pct=1.0`), so `vitc run --image`, the
binary's `--image` and `--eval` apply it to these 64×64 PPMs (no resampling: crop_pct 1).

The files `test-images.rle` and `test-labels.u8` make this folder an evaluation set
(docs/eval-set.md): `vitc eval samples/fashion.graph --weights samples/fashion/weights.safetensors
--data samples/fashion`, or a built binary's `--eval samples/fashion`. docs/accuracy.md has
the measured table.

## Files

| file | bytes |
|---|---|
{sizes}

- `weights.safetensors`: every tensor in F16 (vitc's reader converts it): the timm backbone
  and `score_predictor.{{0,1,2}}.{{in_conv.0,in_conv.1,out_conv.0,out_conv.2,out_conv.4}}.{{weight,bias}}`
  (LayerNorm(96) with eps 1e-5, 96→96, 96→48, 48→24, 24→2; channel 0 of the log-softmax is
  "keep"). All numbers below were computed with these F16-rounded weights converted to F32.
- `test-images.rle`: the first {SUBSET} test canvases (test item i on canvas i), 64×64 grey
  uint8, row-major, image after image, {SUBSET}·4096 = {SUBSET * 4096:,} bytes once decoded, in a
  zero-run encoding: a nonzero byte stands for itself; a 0 byte is followed by one byte n
  (1…255) and stands for n zeros (runs longer than 255 are several pairs; runs may cross image
  boundaries). Decoding in Python: see `rle_decode` in tools/train_sample.py; in C or Swift it
  is a ten-line loop.
- `test-labels.u8`: the {SUBSET} labels, one byte each (0…9, indices into `classes.txt`).
- `classes.txt`: the 10 class names, one per line, in label order.
- `LICENSE-fashion-mnist.txt`: the dataset's MIT notice, which travels with the canvases.
- `asvit-0.65.txt`: the `--prune` spec of AS-ViT with thresholds that `vitc calibrate` picked
  for an average of 0.65 of the dense MACs on 256 canvases of the training split (stage
  `calibrate`; AS-ViT publishes no thresholds, docs/methods.md §5).
- {samples}: 64×64 P6 PPMs of canvases of the subset (grey in all three channels).
- `input0.f32`: canvas 0 as the model's input, [3,64,64] little-endian float32, normalized.
- `logits-dense-100.f32`: timm's logits (`model(x)`, float32, eval mode) for canvases 0…99,
  [100,10] little-endian float32. They pick the true class on {info['fixture_correct']} of the 100.
- `logits-dyvit0.7-100.f32`, `kept-dyvit0.7-100.json`: the PyTorch DynamicViT inference path at
  ρ = 0.7 (SEMANTICS.md §2.3: keep int(64·0.7^(s+1)) = 44, 31, 21 patches before blocks 3, 6, 9,
  descending keep score, ties to the lower index) for the same 100 canvases: logits, and per
  canvas per stage the original patch ids of the kept tokens in sequence order.

## Accuracy (PyTorch, float32, F16-rounded weights)

| model | test, 10,000 canvases | shipped subset, 2,000 |
|---|---|---|
{table}
| backbone before DynamicViT fine-tuning (dense) | {pct(info['base'][0])} | {pct(info['base'][1])} |

`dyvit:RHO` is the DynamicViT inference path above with the predictors trained at ρ = 0.7;
`evit:0.7` is EViT (SEMANTICS.md §3, fused token, inside blocks 3, 6, 9) on the same backbone{evit_note};
the random-drop row keeps DynamicViT's counts at ρ = 0.7 but a
uniformly random set of patches (seeded). The dense row is timm's own forward.

## How it was trained

On this project's 2-core CPU (AMD EPYC, {info['threads']} torch threads), under `nice -n 15`
while other builds and tests ran, so the times are long and depend on the load:

- backbone: AdamW lr 1e-3, weight decay 0.05 (not on biases, norms, cls_token, pos_embed),
  batch 128, bf16 autocast, gradient clipping 1.0, fresh canvases every step plus a random
  horizontal flip; {bb} (to 1e-5); {c['backbone_minutes']:.1f} minutes.
- DynamicViT: predictors at lr 1e-3 and the backbone fine-tuned at 1e-4 (AdamW, weight decay
  0.05), hard Gumbel-softmax decisions with attention masking as in the paper's training;
  loss = CE + 0.5·KL(teacher logits) + 0.5·MSE(teacher tokens on kept tokens) + 2·ratio loss
  (targets 0.7, 0.49, 0.343), the dense backbone as frozen teacher{evit_training}; {pr}; {c['minutes']:.1f} minutes.
- Versions: Python {v['python']}, torch {v['torch']}, timm {v['timm']}, numpy {v['numpy']},
  safetensors {v['safetensors']}.

## Notes

- Kept-token order: PyTorch ranks float32 keep scores; near-certain keeps have log-softmax
  scores of order −1e-5 (little relative precision left in float32) and others cluster
  closely, so another implementation may order such near-ties differently (vitc's interpreter
  does on a few canvases: same sets, same logits within 1e-6). Compare kept **sets** per
  stage, and the logits; `--stage check` does.
- The EViT here is the official code's (the fused token is the attention-weighted sum of the
  dropped tokens, not renormalized); vitc's binary gives the same class and logits within
  1e-3 on all 2000 canvases of the subset.
{undertrained}
To repeat the run (with `--steps`/`--pred-steps` the schedule is fixed; without them a time
budget decides when the learning rate decays, and the `--*-decay-from` flags fix it).
Everything is seeded; bit-identical results also need the same versions and thread count, and
were not re-verified by a second full run):

```sh
nice -n 15 bench/.venv/bin/python tools/train_sample.py {repeat}
swift build -c release && bench/.venv/bin/python tools/train_sample.py --stage check    # vitc run vs the fixtures
```
"""
    (out / "README.md").write_text(text)


def calibrate(args, work):
    """AS-ViT's thresholds for a 0.65 MACs budget, picked by `vitc calibrate` on canvases rendered
    from the *training* split (never the test subset), written to samples/fashion/asvit-0.65.txt
    as the one-line --prune spec."""
    import subprocess
    out = ROOT / "samples" / "fashion"
    images, labels = load_split("train")
    rng = np.random.default_rng(SEED + 4)
    items = rng.integers(len(images), size=CALIBRATION)
    canvases = render(images, items, rng)
    calib = work / "calibration"
    calib.mkdir(parents=True, exist_ok=True)
    (calib / "test-images.rle").write_bytes(rle_encode(canvases.reshape(-1).tolist()))
    (calib / "test-labels.u8").write_bytes(labels[items].astype(np.uint8).tobytes())
    run = subprocess.run([args.vitc, "calibrate", str(ROOT / "samples" / "fashion.graph"), "--weights", str(out / "weights.safetensors"),
                          "--budget", "0.65", "--data", str(calib), "--max-images", str(CALIBRATION)],
                         check=True, stdout=subprocess.PIPE, text=True)
    print(run.stdout, end="", flush=True)
    spec = [line for line in run.stdout.splitlines() if line.startswith("--prune ")][-1][len("--prune "):]
    (out / "asvit-0.65.txt").write_text(spec + "\n")
    print(f"samples/fashion/asvit-0.65.txt: {spec}", flush=True)


def check(args, work):
    """Holds `vitc run` (the interpreter) to the fixtures on the first --count canvases, and a
    built EViT binary to PyTorch's EViT on the whole subset."""
    import subprocess
    import tempfile
    out = ROOT / "samples" / "fashion"
    flat = rle_decode((out / "test-images.rle").read_bytes(), SUBSET * SIDE * SIDE)
    sub = flat.reshape(SUBSET, SIDE, SIDE).copy()
    labels = np.frombuffer((out / "test-labels.u8").read_bytes(), dtype=np.uint8)
    kept = json.loads((out / "kept-dyvit0.7-100.json").read_text())
    worst = 0.0
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for spec, fixture in (("none", "logits-dense-100.f32"), ("dyvit:0.7", "logits-dyvit0.7-100.f32")):
            ref = np.fromfile(out / fixture, dtype="<f4").reshape(FIXTURES, 10)
            agree = reordered = 0
            for i in range(args.count):
                x = pathlib.Path(tmp) / "x.f32"
                to_input(sub[i:i + 1])[0].numpy().astype("<f4").tofile(x)
                trace = pathlib.Path(tmp) / "t.json"
                subprocess.run([args.vitc, "run", str(ROOT / "samples" / "fashion.graph"), "--weights", str(out / "weights.safetensors"),
                                "--prune", spec, "--input", str(x), "--trace", str(trace), "--top", "1"],
                               check=True, stdout=subprocess.DEVNULL)
                t = json.loads(trace.read_text())
                logits = np.array(t["logits"], dtype=np.float64)
                d = np.abs(logits - ref[i]).max() / max(1.0, np.abs(ref[i]).max())
                worst = max(worst, d)
                ok = d <= 1e-4 and logits.argmax() == ref[i].argmax()
                if spec != "none":
                    mine = [[p[0] for p in st["patches"]] for st in t["stages"]]
                    ref_kept = [k["patches"] for k in kept[i]]
                    ok = ok and [sorted(k) for k in mine] == [sorted(k) for k in ref_kept]
                    reordered += ok and mine != ref_kept
                bad += not ok
                agree += ok
            print(f"vitc run --prune {spec}: {agree}/{args.count} canvases agree with the fixtures "
                  f"(logits, class{', kept set per stage' if spec != 'none' else ''})"
                  + (f"; {reordered} of them order near-tied kept tokens differently" if spec != "none" else ""), flush=True)
        # EViT has no fixture file: PyTorch's official-code forward here against a built binary
        # on the whole subset (classes, and logits within 1e-3: the binary's tolerance).
        model = make_model()
        back = safetensors.torch.load_file(str(out / "weights.safetensors"))
        model.load_state_dict({k: v.float() for k, v in back.items() if not k.startswith("score_predictor.")})
        model.eval()
        binary = pathlib.Path(tmp) / "evit"
        subprocess.run([args.vitc, "build", str(ROOT / "samples" / "fashion.graph"), "--weights", str(out / "weights.safetensors"),
                        "--prune", "evit:0.7", "-o", str(binary)], check=True, stdout=subprocess.DEVNULL)
        count = args.quick or SUBSET
        ref = torch.cat([forward_pruned(model, to_input(sub[i:i + 250]), "evit", rho=0.7) for i in range(0, count, 250)]).numpy()
        differ = []
        for i in range(count):
            x, o = pathlib.Path(tmp) / "x.f32", pathlib.Path(tmp) / "o.f32"
            to_input(sub[i:i + 1])[0].numpy().astype("<f4").tofile(x)
            subprocess.run([str(binary), "--input", str(x), "--out", str(o), "--threads", "1", "--top", "1"], check=True, stdout=subprocess.DEVNULL)
            logits = np.fromfile(o, dtype="<f4")
            if logits.argmax() != ref[i].argmax() or np.abs(logits - ref[i]).max() > 1e-3 * max(1.0, np.abs(ref[i]).max()):
                differ.append(i)
        print(f"binary --prune evit:0.7: {count - len(differ)}/{count} canvases agree with PyTorch's EViT (class, logits)"
              + (f"; differ: {differ[:20]}" if differ else ""), flush=True)
        bad += len(differ)
    print(f"worst |d logit| / max(1, max|logit|) = {worst:.2e}; labels of those canvases: "
          f"{labels[:args.count].tolist()}", flush=True)
    sys.exit(1 if bad else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=["all", "backbone", "predictors", "export", "calibrate", "check"], default="all")
    ap.add_argument("--work", default=str(ROOT / "out" / "fashion-train"))
    ap.add_argument("--steps", type=int, help="backbone steps: 100 warm-up, then cosine (the issue's recipe: 1500)")
    ap.add_argument("--backbone-decay-from", type=int, help="backbone: constant lr until this step, then decay")
    ap.add_argument("--minutes", type=float, default=25, help="backbone time budget when neither of the above is given")
    ap.add_argument("--pred-steps", type=int, help="DynamicViT steps: 50 warm-up, then cosine")
    ap.add_argument("--predictors-decay-from", type=int, help="DynamicViT: constant lr until this step, then decay")
    ap.add_argument("--pred-minutes", type=float, default=12, help="DynamicViT time budget otherwise")
    ap.add_argument("--no-finetune", dest="finetune", action="store_false",
                    help="train the predictors with the backbone frozen")
    ap.add_argument("--evit-weight", type=float, default=1.0,
                    help="predictors: weight of EViT's loss (CE + 0.5 KL at keep rate 0.7) in the backbone's fine-tuning; 0 = DynamicViT only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vitc", default=str(ROOT / ".build" / "release" / "vitc"),
                    help="calibrate, check: the vitc binary (swift build -c release)")
    ap.add_argument("--count", type=int, default=20, help="check: how many canvases")
    ap.add_argument("--quick", type=int, default=0, help="evaluate only this many canvases (smoke tests)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.stage in ("all", "backbone"):
        train_backbone(args, work)
    if args.stage in ("all", "predictors"):
        train_predictors(args, work)
    if args.stage in ("all", "export"):
        export(args, work)
    if args.stage in ("all", "calibrate"):
        calibrate(args, work)
    if args.stage == "check":
        check(args, work)


if __name__ == "__main__":
    main()
