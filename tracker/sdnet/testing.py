"""Synthetic sequences for tests and benchmarks of the MetaSDNet tracker.

:func:`patch_sequence`: a textured patch moving over a background of the SAME texture statistics
(blocky uniform-noise colour textures, block 4 px), so no fixed detector of "texture" or "contrast"
can find it: only appearance learned from frame 1 (and online) can. A tracker that never learns
(no frame-1 step, no online updates) loses it in the first frames.
"""
from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["patch_sequence", "write_otb_sequence", "write_video"]


def _blocks(rng: np.random.Generator, h: int, w: int, block: int = 4) -> np.ndarray:
    import cv2

    small = rng.integers(0, 256, (h // block + 1, w // block + 1, 3)).astype(np.uint8)
    big = cv2.resize(small, (small.shape[1] * block, small.shape[0] * block),
                     interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(big[:h, :w])


def patch_sequence(n: int = 30, size: Tuple[int, int] = (160, 120),
                   box: Sequence[int] = (30, 40, 28, 24), amplitude: float = 30.0,
                   drift: float = 1.2, seed: int = 0) -> Tuple[List[np.ndarray], np.ndarray]:
    """``n`` BGR frames of ``size`` (W, H) and the ground truth (n x 4, x y w h): the patch moves
    ``amplitude * sin(t / 12)`` px horizontally and ``drift`` px per frame down (whole pixels)."""
    rng = np.random.default_rng(seed)
    W, H = size
    bg = _blocks(rng, H, W)
    x, y, w, h = (int(v) for v in box)
    tex = _blocks(rng, h, w)
    frames, boxes = [], []
    for t in range(n):
        ix = int(round(x + amplitude * np.sin(t / 12)))
        iy = int(round(y + drift * t))
        ix = min(max(ix, 0), W - w)
        iy = min(max(iy, 0), H - h)
        fr = bg.copy()
        fr[iy:iy + h, ix:ix + w] = tex
        frames.append(fr)
        boxes.append([ix, iy, w, h])
    return frames, np.array(boxes, dtype=float)


def write_otb_sequence(root: str, name: str, frames: Sequence[np.ndarray], boxes: np.ndarray,
                       ext: str = ".png") -> str:
    """An OTB-format folder ``root/name/img/0001.png ...`` + ``groundtruth_rect.txt``."""
    import cv2

    folder = os.path.join(root, name)
    os.makedirs(os.path.join(folder, "img"), exist_ok=True)
    for i, fr in enumerate(frames, start=1):
        cv2.imwrite(os.path.join(folder, "img", f"{i:04d}{ext}"), fr)
    with open(os.path.join(folder, "groundtruth_rect.txt"), "w") as f:
        for b in boxes:
            f.write(",".join(f"{v:g}" for v in b) + "\n")
    return folder


def write_video(path: str, frames: Sequence[np.ndarray], fps: float = 25.0) -> str:
    """Frames to a video file with cv2.VideoWriter (MJPG in .avi, mp4v otherwise)."""
    import cv2

    h, w = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.lower().endswith(".avi") else "mp4v"))
    vw = cv2.VideoWriter(path, fourcc, fps, (w, h))
    if not vw.isOpened():
        raise RuntimeError(f"cv2 cannot write {path}")
    for fr in frames:
        vw.write(fr)
    vw.release()
    return path
