"""Build OTB-format trees on disk in the real layout, with the real data's quirks.

For tests and benchmarks (ours and users'): the loaders are exercised on the layout they will
meet, without the real data.

Frames are 320 x 240, the size the generated boxes are drawn for, and cheap: every frame shares
the bytes of one small JPEG (a smooth gradient) so that folders of 770 frames (David) cost
milliseconds.
"""
from __future__ import annotations

import os

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


def write_frames(folder: str, numbers, digits: int = 4, ext: str = ".jpg") -> list[str]:
    img = os.path.join(folder, "img")
    os.makedirs(img, exist_ok=True)
    data = _jpeg_bytes() if ext == ".jpg" else None
    paths = []
    for n in numbers:
        path = os.path.join(img, f"{n:0{digits}d}{ext}")
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        else:
            cv2.imwrite(path, _gradient())
        paths.append(path)
    return paths


def write_gt(path: str, boxes: np.ndarray, delimiter: str = ",") -> None:
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
