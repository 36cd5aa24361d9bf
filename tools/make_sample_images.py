#!/usr/bin/env python3
"""Converts scikit-image's sample photographs to PPM (P6) under samples/images/.

Needs: pip install scikit-image pillow. Run once from the repository root:

    python3 tools/make_sample_images.py
"""
import pathlib

from PIL import Image
from skimage import data

# (file, loader, size or None to keep): small enough to commit, large enough to be resized
# down to 256 by the DeiT preprocessing (or, for astronaut, already at 256).
IMAGES = [
    ("chelsea.ppm", data.chelsea, None),      # 451x300, the cat
    ("coffee.ppm", data.coffee, (384, 256)),  # 600x400 -> 384x256
    ("astronaut.ppm", data.astronaut, (256, 256)),  # 512x512 -> 256x256
]

def main():
    root = pathlib.Path(__file__).resolve().parent.parent / "samples" / "images"
    root.mkdir(parents=True, exist_ok=True)
    for name, load, size in IMAGES:
        image = Image.fromarray(load()).convert("RGB")
        if size is not None:
            image = image.resize(size, Image.LANCZOS)
        image.save(root / name, format="PPM")
        print(f"samples/images/{name}: {image.size[0]}x{image.size[1]}")

if __name__ == "__main__":
    main()
