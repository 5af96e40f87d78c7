"""Build OTB-format trees and sequences on disk for tests and benchmarks (ours and users').

Two kinds of frames, one writer (:func:`write_frames` and :func:`write_gt`, the real layout):

- loader trees (:func:`make_sequence`, :func:`make_quirky_otb2015_tree`): the real data's quirks,
  frames 320 x 240 (the size the generated boxes are drawn for) and cheap: every frame shares the
  bytes of one small JPEG (a smooth gradient), so folders of 770 frames (David) cost milliseconds;
- trackable sequences (:func:`patch_sequence`, written by :func:`write_otb_sequence` or
  :func:`write_video`): a textured patch moving over a background of the SAME texture statistics
  (blocky uniform-noise colour textures, block 4 px), so no fixed detector of "texture" or
  "contrast" can find it: only appearance learned from frame 1 (and online) can. A tracker that
  never learns (no frame-1 step, no online updates) loses it in the first frames.
"""
from __future__ import annotations

import os
from typing import Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

_JPEG = None


def _jpeg_bytes() -> bytes:
    global _JPEG
    if _JPEG is None:
        ok, buf = cv2.imencode(".jpg", _gradient())
        assert ok
        _JPEG = buf.tobytes()
    return _JPEG


def _gradient() -> np.ndarray:
    yy, xx = np.mgrid[0:240, 0:320]
    return np.stack([xx * 255 // 319, yy * 255 // 239, (xx + yy) * 255 // 558], axis=2).astype(np.uint8)


def random_boxes(rng: np.random.Generator, n: int, width: float = 320, height: float = 240) -> np.ndarray:
    """A smooth random walk of plausible boxes."""
    w = rng.uniform(20, 60)
    h = rng.uniform(20, 60)
    start = np.array([rng.uniform(0, width - w), rng.uniform(0, height - h)])
    steps = rng.normal(0, 2.0, (n, 2)).cumsum(axis=0)
    xy = np.clip(start + steps, 0, [width - w, height - h])
    sizes = np.array([w, h]) * np.exp(rng.normal(0, 0.02, (n, 1)).cumsum(axis=0))
    return np.round(np.concatenate([xy, sizes], axis=1), 2)


def write_frames(folder: str, numbers: Iterable[int], digits: int = 4, ext: str = ".jpg",
                 frames: Optional[Sequence[np.ndarray]] = None) -> list[str]:
    """``folder/img/<number><ext>`` for each number: ``frames`` in order, else the shared gradient."""
    img = os.path.join(folder, "img")
    os.makedirs(img, exist_ok=True)
    data = _jpeg_bytes() if ext == ".jpg" and frames is None else None
    paths = []
    for i, n in enumerate(numbers):
        path = os.path.join(img, f"{n:0{digits}d}{ext}")
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        else:
            cv2.imwrite(path, _gradient() if frames is None else frames[i])
        paths.append(path)
    return paths


def write_gt(path: str, boxes: np.ndarray, delimiter: str = ",") -> None:
    """One box a line, as short as ``%g`` writes it."""
    with open(path, "w") as f:
        for row in boxes:
            f.write(delimiter.join(f"{v:g}" for v in row) + "\n")


def make_sequence(root: str, name: str, n_images: int, rows: int | None = None,
                  first_image: int = 1, delimiter: str = ",", digits: int = 4,
                  targets: int = 1, empty_first: bool = False, seed: int = 0,
                  ext: str = ".jpg") -> list[np.ndarray]:
    """One sequence folder; returns the ground-truth arrays written (one per target)."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, name)
    write_frames(folder, range(first_image, first_image + n_images), digits, ext)
    rows = n_images if rows is None else rows
    written = []
    if targets == 1 and not empty_first:
        boxes = random_boxes(rng, rows)
        write_gt(os.path.join(folder, "groundtruth_rect.txt"), boxes, delimiter)
        return [boxes]
    for t in range(1, targets + 1):
        path = os.path.join(folder, f"groundtruth_rect.{t}.txt")
        if t == 1 and empty_first:
            open(path, "w").close()
            continue
        boxes = random_boxes(rng, rows)
        write_gt(path, boxes, delimiter)
        written.append(boxes)
    return written


def write_otb_sequence(root: str, name: str, frames: Sequence[np.ndarray], boxes: np.ndarray,
                       ext: str = ".png") -> str:
    """An OTB-format folder ``root/name/img/0001.png ...`` + ``groundtruth_rect.txt``; its path."""
    folder = os.path.join(root, name)
    write_frames(folder, range(1, len(frames) + 1), ext=ext, frames=frames)
    write_gt(os.path.join(folder, "groundtruth_rect.txt"), boxes)
    return folder


def block_texture(rng: np.random.Generator, h: int, w: int, block: int = 4) -> np.ndarray:
    """``h x w x 3`` uint8 of uniform-noise colour blocks of ``block`` px."""
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
    bg = block_texture(rng, H, W)
    x, y, w, h = (int(v) for v in box)
    tex = block_texture(rng, h, w)
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


def write_video(path: str, frames: Sequence[np.ndarray], fps: float = 25.0) -> str:
    """Frames to a video file with cv2.VideoWriter (MJPG in .avi, mp4v otherwise)."""
    h, w = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.lower().endswith(".avi") else "mp4v"))
    vw = cv2.VideoWriter(path, fourcc, fps, (w, h))
    if not vw.isOpened():
        raise RuntimeError(f"cv2 cannot write {path}")
    for fr in frames:
        vw.write(fr)
    vw.release()
    return path


def make_quirky_otb2015_tree(root: str) -> dict[str, int]:
    """An OTB-2015-style tree with every quirk the real data has; returns frames per sequence."""
    make_sequence(root, "David", 770, rows=471, seed=1)                     # annotated 300..770
    make_sequence(root, "Jogging", 30, delimiter="\t", targets=2, seed=2)   # tab, two targets
    make_sequence(root, "Human4", 25, targets=2, empty_first=True, seed=3)  # empty .1 file
    make_sequence(root, "Board", 25, digits=5, seed=4)                      # 00001.jpg
    make_sequence(root, "BlurCar1", 742, first_image=247, seed=5)           # 0247..0988
    make_sequence(root, "Football1", 81, rows=74, seed=6)                   # truncated
    make_sequence(root, "Diving", 231, rows=215, seed=7)
    make_sequence(root, "Freeman4", 297, rows=283, seed=8)
    make_sequence(root, "Skating2", 20, delimiter=" ", targets=2, seed=9)   # space-delimited
    [boxes] = make_sequence(root, "Basketball", 30, seed=10)
    boxes[7] = 0                                                           # all-zero gt row
    write_gt(os.path.join(root, "Basketball", "groundtruth_rect.txt"), boxes)
    make_sequence(root, "Tiger1", 40, seed=11)
    return {"David": 471, "Jogging.1": 30, "Jogging.2": 30, "Human4": 25, "Board": 25,
            "BlurCar1": 742, "Football1": 74, "Diving": 215, "Freeman4": 283, "Skating2.1": 20,
            "Skating2.2": 20, "Basketball": 30, "Tiger1": 40}


def write_random_results(results_dir: str, tracker: str, sequences, seed: int,
                         delimiter: str = ",", name_style=lambda n: n, with_times: bool = True) -> None:
    """Noisy results with NaN rows and zero-size boxes, as a careless tracker would write."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(results_dir, tracker)
    os.makedirs(os.path.join(folder, "times"), exist_ok=True)
    for seq in sequences:
        boxes = seq.anno + rng.normal(0, 8, seq.anno.shape) * np.array([1, 1, 0.5, 0.5])
        boxes[:, 2:] = np.abs(boxes[:, 2:])
        n = len(boxes)
        boxes[rng.choice(n, size=max(1, n // 20), replace=False)] = np.nan
        boxes[rng.choice(n, size=max(1, n // 25), replace=False), 2] = 0.0
        stem = name_style(seq.name)
        np.savetxt(os.path.join(folder, f"{stem}.txt"), boxes, fmt="%.3f", delimiter=delimiter)
        if with_times:
            np.savetxt(os.path.join(folder, "times", f"{stem}_time.txt"),
                       rng.uniform(0.005, 0.05, n), fmt="%.8f")
