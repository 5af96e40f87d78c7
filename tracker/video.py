"""Frames from a video file, a folder of images, or an OTB sequence folder.

:func:`open_frames` decides what ``path`` is and returns a :class:`FrameSource`: iterate it for
8-bit BGR frames (grey, RGBA and 16-bit images are converted by :func:`foundation.images.read_bgr`).

- an OTB sequence folder (``img/`` + ``groundtruth_rect*.txt``): its frames and ground truth
  (``gt``; the first box is the default initial box); a two-target folder uses target 1;
- a folder of images (or a folder whose ``img/`` holds them, without ground truth), in frame-number
  order;
- anything else is opened as a video with ``cv2.VideoCapture``.

Every failure (missing path, empty folder, a video OpenCV cannot decode, two files with one frame
number) is a one-line :class:`~foundation.errors.UserError`. A video that ends before the frame
count its header announces (a cut download) warns with both counts: what was read is kept.
Cameras and network streams are :mod:`tracker.sources`.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Iterator, List, Optional

import numpy as np

from foundation.errors import UserError

__all__ = ["FrameSource", "open_frames", "VIDEO_EXTENSIONS"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".gif")


@dataclass
class FrameSource:
    """Where frames come from; iterate for BGR uint8 arrays."""

    path: str
    kind: str                                  # video | folder | otb
    name: str
    files: List[str] = field(default_factory=list)
    gt: Optional[np.ndarray] = None
    fps: float = 25.0
    count: int = 0                             # frames (a video's may be an estimate)
    live = False                               # a file or folder: results are written at the end

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def frames(self, start: int = 0) -> Iterator[np.ndarray]:
        """The frames from index ``start`` (0-based) on; a video warns if it ends early."""
        from foundation.images import read_bgr, to_bgr

        if self.kind != "video":
            for f in self.files[start:]:
                yield read_bgr(f)
            return
        import cv2

        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            raise UserError(f"cannot open video {self.path}")
        read = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                read += 1
                if read > start:
                    yield to_bgr(frame)
        finally:
            cap.release()
        if 0 < read < self.count:
            warnings.warn(f"video {self.path} ended after {read} frames but its header announces "
                          f"{self.count} (a cut or damaged file?): only the {read} frames read "
                          "were used", stacklevel=2)


def _stem(path: str) -> str:
    base = os.path.basename(os.path.normpath(path))
    return os.path.splitext(base)[0] if os.path.isfile(path) else base


def _check_numbers(files: List[str]) -> None:
    """Frames of mixed extensions are ordered by their numbers; two files with one number
    (``0007.jpg`` and ``0007.png``) leave the order unknown, so they are refused by name."""
    from foundation.images import frame_number

    seen: dict = {}
    for f in files:
        n = frame_number(f)
        if n is not None and n in seen:
            raise UserError(f"two frames numbered {n} in {os.path.dirname(f)}: "
                            f"{os.path.basename(seen[n])} and {os.path.basename(f)}; keep one")
        seen[n] = f


def open_frames(path: str) -> FrameSource:
    """A :class:`FrameSource` for a video file, a folder of frames or an OTB sequence folder."""
    from foundation.images import list_frames

    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"input {path} does not exist")
    name = _stem(path) or "video"
    if os.path.isdir(path):
        has_gt = any(n.lower().startswith("groundtruth") and n.lower().endswith(".txt")
                     for n in os.listdir(path))
        if os.path.isdir(os.path.join(path, "img")) and has_gt:
            from otb_eval.datasets import load_sequence_folder

            seq = load_sequence_folder(path)[0]
            return FrameSource(path, "otb", name, list(seq.img_files), np.asarray(seq.anno, float),
                               count=len(seq.img_files))
        folder = path
        files = list_frames(folder)
        if not files and os.path.isdir(os.path.join(path, "img")):
            folder = os.path.join(path, "img")
            files = list_frames(folder)
        if not files:
            raise UserError(f"no images (.jpg/.png/.bmp) in folder {path}")
        _check_numbers(files)
        return FrameSource(path, "folder", name, files, count=len(files))
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise UserError(f"cannot open video {path}: OpenCV cannot decode it (not a video, "
                            "or a codec this OpenCV build lacks)")
        ok, _ = cap.read()
        if not ok:
            raise UserError(f"cannot read a frame from video {path} (empty or unsupported)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    return FrameSource(path, "video", name, fps=fps if 1.0 <= fps <= 240.0 else 25.0, count=max(count, 0))
