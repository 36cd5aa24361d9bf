#!/usr/bin/env python3
"""Seeds for tools/fuzz.sh weights_c: files Fuzz/weights_c.c's table accepts (F32, F16, BF16,
metadata, escapes) and a vitc weights file of its blob's size. Run from the repository root."""
import json, os, struct

out = "Fuzz/corpus/weights_c"
os.makedirs(out, exist_ok=True)

def safetensors(tensors, dtype="F32", metadata=None):
    header, data = {}, b""
    for name, shape, values in tensors:
        begin = len(data)
        for v in values:
            if dtype == "F32": data += struct.pack("<f", v)
            elif dtype == "F16": data += struct.pack("<e", v)
            else: data += struct.pack("<f", v)[2:]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, len(data)]}
    if metadata: header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data

tensors = [
    ("a.bias", [5], [0.5, -1, 2, 3.25, 0]),
    ("fc.weight", [2, 3], [1, 2, 3, 4, 5, 6]),
    ("patch.weight", [2, 1, 2, 2], [0.125 * i for i in range(8)]),
    ("q.weight", [3, 5], [0.5, -1, 0.25, 3, -0.125, 0, 0, 0, 0, 0, 1e-3, -2e-3, 7, 0.5, -7]),
    ("score_predictor.0.keep_threshold", [], [0.01]),
]
for dtype in ["F32", "F16", "BF16"]:
    open(f"{out}/all-{dtype}.safetensors", "wb").write(safetensors(tensors, dtype))
open(f"{out}/metadata.safetensors", "wb").write(
    safetensors(tensors + [("extra\u00e9", [1], [1]), ("bn.num_batches_tracked", [1], [1])], metadata={"format": "pt"}))
blob = 4 * (2 * 16 * 3 + 5 + 8 + 11)
payload = bytes(blob)
h = 0xcbf29ce484222325
for b in payload: h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
header = b"VITCWTS\0" + struct.pack("<IIQQ", 1, 64, len(payload), h) + b"fuzz".ljust(32, b"\0")
open(f"{out}/vitc.weights", "wb").write(header + payload)
