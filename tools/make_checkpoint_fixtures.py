#!/usr/bin/env python3
"""PyTorch checkpoints for vitc's checkpoint reader (Tests/Fixtures/checkpoints/).

Every file is written by torch.save itself, except evil.pth, whose data.pkl is a pickle that
calls os.system (what a hostile checkpoint does), packed the way torch.save packs one.

Then three small timm variants that `vitc graph` must recognise (section 6), each with every
parameter perturbed away from timm's init and saved as safetensors and as a torch.save .pth
(F16, so that both stay small; timm's logits are computed from the same F16 values):
  deit-distilled  VisionTransformerDistilled: cls + dist token, head_dist, eval output the mean
                  of both heads; with DynamicViT predictors (score_predictor.*)
  deit3-ls        DeiT-III layout: LayerScale (ls1.gamma, ls2.gamma), pos_embed without the
                  class slot (no_embed_class); with AS-ViT thresholds
  vit-avg         no class token, global_pool='avg' with fc_norm; with DynamicViT predictors
Each gets <name>.safetensors, <name>.pth, <name>.config.json (timm's config as the hub ships
it: model_args.num_heads), and <name>.logits.f32 (timm's logits for the input input-32.f32).
Section 7 adds six more, dense only (safetensors, config.json, logits): no qkv bias, MLP ratio 3,
a non-square image, patch 4 on 16x16, a class token with average pooling, width 48 with 3 heads
and eps 1e-5.

    pip install torch timm safetensors numpy
    python3 tools/make_checkpoint_fixtures.py
"""
import io
import os
import pickle
import zipfile

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "Fixtures", "checkpoints")
os.makedirs(OUT, exist_ok=True)


def out(name):
    return os.path.join(OUT, name)


# 1. timm-tiny's weights (mixed F32, F16, BF16, as the safetensors fixture holds them) as a bare
#    state dict: vitc must give the same logits from it as from the safetensors file.
weights = load_file(os.path.join(HERE, "..", "Tests", "Fixtures", "timm-tiny", "weights.safetensors"))
torch.save(dict(sorted(weights.items())), out("timm-tiny.pth"))

# 2. A training checkpoint: the state dict under "model" beside other things; one tensor a view
#    at an offset into a larger storage (saved whole), one int64 buffer, one shared storage.
base = torch.arange(10, dtype=torch.float32) * 0.5 - 1.0
shared = torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16)
model = {
    "a": torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
    "view": base[4:8],  # offset 4 into a storage of 10
    "half": torch.tensor([0.5, -0.25], dtype=torch.float16),
    "bf": shared,
    "bf_again": shared,  # the same storage twice
    "steps": torch.tensor(7, dtype=torch.int64),
}
torch.save({"model": model, "epoch": 3, "args": {"lr": 0.001, "name": "tiny"}}, out("nested.pth"))

# 3. The legacy (non-zip) format.
torch.save({"a": torch.zeros(2)}, out("legacy.pth"), _use_new_zipfile_serialization=False)

# 4. A non-contiguous tensor (a transpose): refused, with the way out.
torch.save({"t": torch.arange(6, dtype=torch.float32).reshape(2, 3).t()}, out("transposed.pth"))


# 5. A hostile pickle: data.pkl calls os.system. vitc must refuse it by name, never run it.
class Evil:
    def __reduce__(self):
        return (os.system, ("echo vitc-ran-the-pickle > /tmp/vitc-evil-pickle",))


buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
    archive.writestr("evil/data.pkl", pickle.dumps({"a": Evil()}, protocol=2))
    archive.writestr("evil/version", "3\n")
with open(out("evil.pth"), "wb") as f:
    f.write(buffer.getvalue())


# 6. timm variants (see the docstring). Tiny: image 32, patch 8 (16 patches), width 32, depth 3,
#    2 heads, MLP ratio 2, 10 classes.
import json

import timm
from safetensors.torch import save_file
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, mlp_ratio=2.0, num_classes=10)


def perturb(model, seed):
    """Every parameter away from its init: weights and biases random, LayerNorm weights around
    1 but not 1, LayerScale gammas in [0.5, 1.5] (timm's init leaves those paths untested)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith("gamma"):
                value = 0.5 + torch.rand(parameter.shape, generator=generator)
            elif "norm" in name and name.endswith("weight"):
                value = 1.0 + 0.2 * noise
            elif name.endswith("bias"):
                value = 0.1 * noise
            elif name in ("cls_token", "dist_token", "pos_embed"):
                value = 0.5 * noise
            else:
                fan_in = parameter[0].numel() if parameter.dim() > 1 else 1
                value = noise / fan_in**0.5
            # Stored as F16: round here so that timm computes with the values the files hold.
            parameter.copy_(value.half().float())


def predictors(width, stages, seed):
    """DynamicViT's predictor tensors (SEMANTICS §2.2) for `stages` stages, seeded."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for s in range(stages):
        shapes = {
            "in_conv.0.weight": [width], "in_conv.0.bias": [width],
            "in_conv.1.weight": [width, width], "in_conv.1.bias": [width],
            "out_conv.0.weight": [width // 2, width], "out_conv.0.bias": [width // 2],
            "out_conv.2.weight": [width // 4, width // 2], "out_conv.2.bias": [width // 4],
            "out_conv.4.weight": [2, width // 4], "out_conv.4.bias": [2],
        }
        for name, shape in shapes.items():
            t = torch.randn(shape, generator=generator)
            if name == "in_conv.0.weight":
                t = 1.0 + 0.2 * t
            elif name.endswith("weight"):
                t = t / shape[-1] ** 0.5
            else:
                t = 0.1 * t
            out[f"score_predictor.{s}.{name}"] = t.half()
    return out


variants = {
    "deit-distilled": (VisionTransformerDistilled(**TINY), 11, lambda: predictors(32, 2, 21)),
    "deit3-ls": (
        VisionTransformer(**TINY, init_values=1e-5, no_embed_class=True), 12,
        lambda: {f"score_predictor.{s}.keep_threshold": torch.tensor(0.04 * (s + 1)).half() for s in range(2)}),
    "vit-avg": (VisionTransformer(**TINY, class_token=False, global_pool="avg", fc_norm=True), 13,
                lambda: predictors(32, 2, 23)),
}
image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
image.numpy().astype("<f4").tofile(out("input-32.f32"))
for name, (model, seed, extra) in variants.items():
    model.eval()
    perturb(model, seed)
    with torch.no_grad():
        logits = model(image)[0]
    logits.numpy().astype("<f4").tofile(out(f"{name}.logits.f32"))
    state = {k: v.half().contiguous() for k, v in model.state_dict().items()}
    state.update(extra())
    save_file(state, out(f"{name}.safetensors"))
    torch.save({"model": state}, out(f"{name}.pth"))  # as the official releases: under "model"
    config = {"architecture": name.replace("-", "_"), "model_args": {"num_heads": TINY["num_heads"]},
              "pretrained_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "crop_pct": 1.0}}
    with open(out(f"{name}.config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    print(name, "timm", timm.__version__, "max |logit|", float(logits.abs().max()))


# 7. Six more variants (dense only: safetensors, config.json, logits; no .pth, to keep the
#    repository small), each a case that `vitc graph` reads off the shapes or the config:
#      vit-noqkvbias  qkv_bias=False
#      vit-mlp3       MLP ratio 3 (hidden 96; section 6 uses 2, timm-tiny 4)
#      vit-rect       a non-square image, img_size=(32, 48): a 4x6 grid (config model_args.img_size)
#      vit-p4         patch 4 on a 16x16 image (input-16.f32)
#      vit-cls-avg    class token with global_pool='avg' and fc_norm (config global_pool)
#      vit-w48h3      width 48, depth 2, MLP ratio 1, with 3 heads (head dimension 16) and LayerNorm eps 1e-5, both
#                     only in config.json (model_args.num_heads, model_args.layer_norm_eps)
#    The inputs: input-32.f32 as above, input-16.f32 [3,16,16], input-32x48.f32 [3,32,48].
from functools import partial

BASE = dict(TINY)
more = {
    "vit-noqkvbias": (dict(BASE, qkv_bias=False), 31, {}),
    "vit-mlp3": (dict(BASE, mlp_ratio=3.0), 32, {}),
    "vit-rect": (dict(BASE, img_size=(32, 48)), 33, {"img_size": [32, 48]}),
    "vit-p4": (dict(BASE, img_size=16, patch_size=4), 34, {"img_size": 16}),
    "vit-cls-avg": (dict(BASE, global_pool="avg", fc_norm=True), 35, {"global_pool": "avg"}),
    "vit-w48h3": (dict(BASE, embed_dim=48, depth=2, num_heads=3, mlp_ratio=1.0, norm_layer=partial(torch.nn.LayerNorm, eps=1e-5)), 36,
                  {"layer_norm_eps": 1e-5}),
}
inputs = {
    (32, 32): ("input-32.f32", image),
    (16, 16): ("input-16.f32", torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(6))),
    (32, 48): ("input-32x48.f32", torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(7))),
}
for size, (file, tensor) in inputs.items():
    tensor.numpy().astype("<f4").tofile(out(file))
for name, (args, seed, model_args) in more.items():
    torch.manual_seed(seed)
    model = VisionTransformer(**args).eval()
    perturb(model, seed)
    size = args["img_size"] if isinstance(args["img_size"], tuple) else (args["img_size"],) * 2
    with torch.no_grad():
        logits = model(inputs[size][1])[0]
    logits.numpy().astype("<f4").tofile(out(f"{name}.logits.f32"))
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, out(f"{name}.safetensors"))
    config = {"architecture": name.replace("-", "_"), "model_args": dict(num_heads=args["num_heads"], **model_args),
              "pretrained_cfg": {"input_size": [3, *size], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "crop_pct": 1.0}}
    with open(out(f"{name}.config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    print(name, "timm", timm.__version__, "max |logit|", float(logits.abs().max()))

for name in sorted(os.listdir(OUT)):
    print(name, os.path.getsize(out(name)))
