#!/usr/bin/env python3
"""Reference fixtures that keep vitc's Swift code honest, made with the real libraries.

Needs: pip install torch torchvision timm safetensors numpy pillow (CI does not: the outputs
are committed). Run from the repository root:

    python3 tools/make_fixtures.py

Writes:
  Tests/Fixtures/preprocess/<image>.crop224.ppm   torchvision Resize(256, bicubic)+CenterCrop(224)
  Tests/Fixtures/preprocess/<image>.json          values of the normalized tensor
  Tests/Fixtures/preprocess/small.ppm             a 100x80 image (the upscaling case)
  Tests/Fixtures/timm-tiny/weights.safetensors    timm VisionTransformer, tiny configuration
  Tests/Fixtures/timm-tiny/input.f32              a seeded normalized input [3,224,224]
  Tests/Fixtures/timm-tiny/logits.f32             timm's 1000 logits for it
  Tests/Fixtures/timm-tiny/README.md              versions and figures
"""
import json
import math
import pathlib

import numpy as np
import safetensors.torch
import timm
import torch
import torchvision
from PIL import Image
from torchvision import transforms

ROOT = pathlib.Path(__file__).resolve().parent.parent
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def preprocess_fixtures():
    out = ROOT / "Tests" / "Fixtures" / "preprocess"
    out.mkdir(parents=True, exist_ok=True)
    # A small image, to test upscaling: the top-left 100x80 of coffee.
    Image.open(ROOT / "samples" / "images" / "coffee.ppm").crop((0, 0, 100, 80)).save(out / "small.ppm", format="PPM")
    sources = {p.stem: p for p in sorted((ROOT / "samples" / "images").glob("*.ppm"))}
    sources["small"] = out / "small.ppm"
    resize = transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC)
    crop = transforms.CenterCrop(224)
    tail = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    for name, path in sources.items():
        image = Image.open(path).convert("RGB")
        resized = resize(image)
        cropped = crop(resized)
        cropped.save(out / f"{name}.crop224.ppm", format="PPM")
        tensor = tail(cropped).numpy().astype(np.float32)
        flat = tensor.reshape(-1)
        indices = list(range(0, flat.size, 4703))
        summary = {
            "source": str(path.relative_to(ROOT)),
            "resized": list(resized.size),
            "sum": float(flat.astype(np.float64).sum()),
            "indices": indices,
            "values": [float(flat[i]) for i in indices],
        }
        (out / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(f"preprocess {name}: resized to {resized.size}")


def init_weights(model, generator):
    """Scales that make attention far from uniform (timm's default init is nearly uniform)."""
    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=generator) * std + mean
    state = {}
    for name, tensor in model.state_dict().items():
        shape = tensor.shape
        if name in ("cls_token",):
            value = normal(shape, 1.0)
        elif name == "pos_embed":
            value = normal(shape, 0.5)
        elif name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
            value = normal(shape, 0.1, 1.0)
        elif name.endswith("norm1.bias") or name.endswith("norm2.bias") or name == "norm.bias":
            value = normal(shape, 0.1)
        elif name.endswith(".bias"):
            value = normal(shape, 0.02)
        elif name.endswith(".weight"):
            fan_in = int(np.prod(shape[1:]))
            gain = 3.0 if "attn.qkv" in name else 1.0
            value = normal(shape, math.sqrt(gain / fan_in))
        else:
            raise ValueError(name)
        state[name] = value
    return state


def stored_dtype(name, tensor):
    if name == "cls_token":
        return torch.float32
    if tensor.dim() >= 2:
        return torch.float16
    return torch.bfloat16  # LayerNorm weights and biases, all biases


def numpy_reference(state, x):
    """SEMANTICS.md §1.3 by hand, float64."""
    s = {k: v.double().numpy() for k, v in state.items()}
    C, H = 64, 2
    d = C // H
    w = s["patch_embed.proj.weight"].reshape(C, -1)
    patches = x.reshape(3, 14, 16, 14, 16).transpose(1, 3, 0, 2, 4).reshape(196, -1)
    X = np.concatenate([s["cls_token"].reshape(1, C), patches @ w.T + s["patch_embed.proj.bias"]]) + s["pos_embed"].reshape(197, C)

    def ln(v, p):
        mu = v.mean(-1, keepdims=True)
        var = ((v - mu) ** 2).mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-6) * s[p + ".weight"] + s[p + ".bias"]

    from math import erf
    gelu = np.vectorize(lambda t: 0.5 * t * (1 + erf(t / math.sqrt(2))))
    for i in range(12):
        b = f"blocks.{i}."
        qkv = ln(X, b + "norm1") @ s[b + "attn.qkv.weight"].T + s[b + "attn.qkv.bias"]
        out = np.zeros((197, C))
        for h in range(H):
            q = qkv[:, h * d:(h + 1) * d]
            k = qkv[:, C + h * d:C + (h + 1) * d]
            v = qkv[:, 2 * C + h * d:2 * C + (h + 1) * d]
            a = q @ k.T * d ** -0.5
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            out[:, h * d:(h + 1) * d] = a @ v
        X = X + out @ s[b + "attn.proj.weight"].T + s[b + "attn.proj.bias"]
        z = gelu(ln(X, b + "norm2") @ s[b + "mlp.fc1.weight"].T + s[b + "mlp.fc1.bias"])
        X = X + z @ s[b + "mlp.fc2.weight"].T + s[b + "mlp.fc2.bias"]
    X = ln(X, "norm")
    return X[0] @ s["head.weight"].T + s["head.bias"]


def timm_fixture():
    out = ROOT / "Tests" / "Fixtures" / "timm-tiny"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=224, patch_size=16, embed_dim=64, depth=12, num_heads=2, mlp_ratio=4,
        qkv_bias=True, num_classes=1000, class_token=True, global_pool="token").eval()
    assert model.norm.eps == 1e-6 and model.blocks[0].norm1.eps == 1e-6
    generator = torch.Generator().manual_seed(20261122)
    state = init_weights(model, generator)
    stored = {k: v.to(stored_dtype(k, v)).contiguous() for k, v in state.items()}
    safetensors.torch.save_file(stored, str(out / "weights.safetensors"))
    rounded = {k: v.float() for k, v in stored.items()}
    model.load_state_dict(rounded)

    x = torch.randn((3, 224, 224), generator=torch.Generator().manual_seed(7)).float()
    x.numpy().astype("<f4").tofile(out / "input.f32")

    attention_maxima = []
    def hook(module, inputs, output):
        qkv = module.qkv(inputs[0]).reshape(1, 197, 3, module.num_heads, -1).permute(2, 0, 3, 1, 4)
        a = (qkv[0] @ qkv[1].transpose(-2, -1)) * module.scale
        attention_maxima.extend(a.softmax(-1)[0, :, 0, :].max(-1).values.tolist())
    handles = [block.attn.register_forward_hook(hook) for block in model.blocks]
    with torch.no_grad():
        logits = model(x[None])[0]
    for handle in handles:
        handle.remove()
    logits.numpy().astype("<f4").tofile(out / "logits.f32")

    reference = numpy_reference(rounded, x.double().numpy())
    scale = max(1.0, float(np.abs(reference).max()))
    difference = float(np.abs(reference - logits.double().numpy()).max())
    assert difference <= 1e-4 * scale, difference
    parameters = sum(v.numel() for v in state.values())
    top5 = torch.topk(logits, 5).indices.tolist()
    mean_max = float(np.mean(attention_maxima))
    (out / "README.md").write_text(f"""# timm reference for the tiny model

Made by `python3 tools/make_fixtures.py` with torch {torch.__version__}, torchvision
{torchvision.__version__}, timm {timm.__version__}, numpy {np.__version__}.

- `weights.safetensors`: timm `VisionTransformer(img_size=224, patch_size=16, embed_dim=64,
  depth=12, num_heads=2, mlp_ratio=4, qkv_bias=True, num_classes=1000)` (the structure of
  `samples/tiny.graph`), {parameters:,} parameters, seeded weights scaled so that attention is
  peaked (qkv N(0, 3/fan_in), other matrices N(0, 1/fan_in)). Stored in mixed dtypes to exercise
  every conversion of the reader: matrices and `pos_embed` F16, LayerNorm parameters and
  biases BF16, `cls_token` F32 (the folder stays under 2 MiB). timm ran on exactly these values (rounded, then fp32).
- `input.f32`: a seeded N(0,1) tensor [3,224,224], raw little-endian float32.
- `logits.f32`: timm's 1000 logits (fp32, batch 1, `fused_attn={model.blocks[0].attn.fused_attn}`).
  Top-5 classes {top5}; max |logit| {float(logits.abs().max()):.4f}.
- A float64 numpy re-implementation of SEMANTICS.md §1.3 agrees with timm to {difference:.2e}
  (max abs), which checks our reading of the semantics independently of vitc.
- Mean over blocks and heads of the largest cls-row attention weight: {mean_max:.3f}
  (uniform would be {1/197:.4f}).
""")
    print(f"timm-tiny: {parameters} parameters, numpy vs timm {difference:.2e}, cls max attention {mean_max:.3f}, top5 {top5}")


if __name__ == "__main__":
    preprocess_fixtures()
    timm_fixture()
