"""Real video-codec artefacts: a sequence's frames through an actual encoder and back.

The frames are shrunk by the plan's factor (0.4-0.7: fewer bits per scene pixel, as from a
low-bitrate stream; OpenCV's writers take no bitrate), encoded with MPEG-4 Part 2
(``cv2.VideoWriter`` with FourCC ``mp4v`` into a temporary ``.mp4``), decoded with
``cv2.VideoCapture`` and scaled back: blocking, ringing and smeared detail from a real encoder's
motion compensation and quantisation. Where OpenCV cannot open that encoder each frame goes
through JPEG at the plan's low quality (15-35) instead;
``generator.stats.codec`` says which ran. Boxes are untouched: the codec changes pixels only.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

__all__ = ["plan_codec", "through_codec"]

FOURCC = "mp4v"


def plan_codec(rng: np.random.Generator) -> dict:
    return {"fourcc": FOURCC, "shrink": round(float(rng.uniform(0.4, 0.7)), 3),
            "jpeg_quality": int(rng.integers(15, 36))}


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else image


def through_codec(frames, codec: dict | None, report: dict | None = None):
    """Yield ``frames`` (:class:`.rendering.Frame`) with their images passed through ``codec``
    (unchanged when None). Frames are yielded once all are encoded; ``report["codec"]`` tells
    which path ran."""
    if codec is None:
        yield from frames
        return
    import cv2

    tmp = tempfile.mkdtemp(prefix="synth-codec-")
    try:
        path = os.path.join(tmp, "seq.mp4")
        kept, writer, size, shape = [], None, None, None
        for fr in frames:
            if writer is None:
                shape = fr.image.shape[:2]
                size = (max(16, int(round(shape[1] * codec["shrink"])) // 2 * 2),
                        max(16, int(round(shape[0] * codec["shrink"])) // 2 * 2))
                writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec["fourcc"]), 30, size)
            if writer.isOpened():
                writer.write(cv2.resize(fr.image, size, interpolation=cv2.INTER_AREA))
                fr.image = None  # only the decoded frame is needed (memory: long sequences)
            kept.append(fr)
        if writer is None:
            return
        if not writer.isOpened():
            if report is not None:
                report["codec"] = f"jpeg quality {codec['jpeg_quality']} per frame (no working video encoder)"
            for fr in kept:
                fr.image = _jpeg(fr.image, codec["jpeg_quality"])
                yield fr
            return
        writer.release()
        if report is not None:
            report["codec"] = f"{codec['fourcc']} via cv2.VideoWriter at {size[0]}x{size[1]}"
        cap = cv2.VideoCapture(path)
        try:
            for f, fr in enumerate(kept):
                ok, image = cap.read()
                if not ok:
                    raise RuntimeError(f"the {codec['fourcc']} round trip lost frames from {f} on")
                fr.image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
                kept[f] = None
                yield fr
        finally:
            cap.release()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
