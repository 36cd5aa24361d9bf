#!/usr/bin/env python3
"""Writes samples/imagenet-labels.txt: line k names ImageNet-1k class k (the sorted-synset order
timm and torchvision models use), the first lemma of each synset.

Needs: pip install timm (its package data holds the synset lists). Run from the repository root:

    python3 tools/make_labels.py
"""
import pathlib

import timm

def main():
    info = pathlib.Path(timm.__file__).parent / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = {}
    for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines():
        synset, lemma = line.split("\t", 1)
        lemmas[synset] = lemma.split(",")[0].strip()
    assert len(synsets) == 1000
    names = [lemmas[s] for s in synsets]
    out = pathlib.Path(__file__).resolve().parent.parent / "samples" / "imagenet-labels.txt"
    out.write_text("\n".join(names) + "\n", encoding="utf-8")
    print(f"{out}: {len(names)} labels; 0 = {names[0]}, 281 = {names[281]}")

if __name__ == "__main__":
    main()
