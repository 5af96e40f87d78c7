"""A real validation set of our own: OTB-format sequences cut from clips that ship inside packages.

    python benchmarks/real_clips.py [--out benchmarks/.data/real-val] [--strips docs] [--no-strips]

The ground truth is data, not per-frame files: ``benchmarks/real_clips/keyframes.json`` names each
clip (the package, the module that locates it, the file inside it) and each sequence (its clip,
first and last frame, target, OTB attributes and key-frame boxes). This script decodes the clips
with OpenCV, checks that every sequence lies within one shot (no cut between its first and last
frame), interpolates the boxes linearly between key frames, clips them to the image, and writes
``<out>/<Seq>/img/0001.jpg ...``, ``groundtruth_rect.txt`` (``x,y,w,h`` in image pixels, top-left
corner, as the synthetic benchmark writes them) and ``attributes.json``; then one strip of frames
per sequence with its boxes drawn, ``docs/real_clips_<seq>.png``. Deterministic: the same
packages and OpenCV give the same bytes. How the key frames were made and checked:
docs/real_clips.md.
"""
from __future__ import annotations

import argparse
import os
import sys

import cv2
from _util import DATA, ROOT

from foundation.errors import UserError
from foundation.fileio import atomic_path
from otb_eval.real_clips import build, load_keyframes, strip

KEYFRAMES = os.path.join(ROOT, "benchmarks", "real_clips", "keyframes.json")
OUT = os.path.join(DATA, "real-val")
DOCS = os.path.join(ROOT, "docs")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--keyframes", default=KEYFRAMES)
    p.add_argument("--out", default=OUT)
    p.add_argument("--strips", default=DOCS, help="folder for real_clips_<seq>.png")
    p.add_argument("--no-strips", action="store_true")
    args = p.parse_args(argv)
    try:   # a missing clip package or a bad key-frame file: one line, no traceback
        spec = load_keyframes(args.keyframes)
        written = build(spec, args.out)
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    for name, boxes in written.items():
        print(f"{name}: {len(boxes)} frames -> {os.path.join(args.out, name)}")
        if not args.no_strips:
            path = os.path.join(args.strips, f"real_clips_{name.lower()}.png")
            with atomic_path(path) as tmp:
                cv2.imwrite(tmp + ".png", strip(os.path.join(args.out, name)))
                os.replace(tmp + ".png", tmp)
            print(f"  strip: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
