#!/usr/bin/env python3
"""PyTorch checkpoints for vitc's checkpoint reader (Tests/Fixtures/checkpoints/).

Every file is written by torch.save itself, except evil.pth, whose data.pkl is a pickle that
calls os.system (what a hostile checkpoint does), packed the way torch.save packs one.

    pip install torch safetensors numpy
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

for name in sorted(os.listdir(OUT)):
    print(name, os.path.getsize(out(name)))
