"""Drawing tracker boxes on frames: legends, dashed ground truth, frame numbers; mp4/gif/png.

Colours follow the seed's qualitative figure: a family's baseline red, its L2F variant green,
DropGrad blue, both cyan (the colour is the variant's, :mod:`tracker.variants`; MetaCREST's are
lighter shades, its family's ``shades``); other trackers take the next colour of :data:`PALETTE`. Colours are given and returned as RGB tuples; drawing happens on BGR frames.
"""
from __future__ import annotations

import os
from typing import Collection, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from foundation.errors import UserError

__all__ = ["NAMED_COLORS", "PALETTE", "parse_color", "parse_colors", "colors_for", "plot_colors", "draw_box",
           "draw_frame", "draw_text", "VideoSink", "write_frames", "GT_COLOR"]

RGB = Tuple[int, int, int]
NAMED_COLORS: Dict[str, RGB] = {
    "red": (230, 25, 25), "green": (30, 190, 40), "blue": (30, 80, 240), "cyan": (0, 220, 230),
    "magenta": (220, 40, 220), "yellow": (250, 220, 0), "orange": (255, 140, 0),
    "purple": (140, 60, 200), "brown": (150, 90, 40), "pink": (255, 120, 180),
    "gray": (128, 128, 128), "grey": (128, 128, 128), "white": (255, 255, 255), "black": (0, 0, 0),
    "olive": (128, 128, 0), "teal": (0, 128, 128), "navy": (0, 0, 128), "lime": (120, 255, 0),
}
PALETTE: List[RGB] = [NAMED_COLORS[c] for c in ("orange", "magenta", "yellow", "purple", "brown",
                                                 "pink", "olive", "teal", "lime", "navy", "gray")]
GT_COLOR: RGB = (255, 255, 255)
LOST_COLOR: RGB = (150, 150, 150)   # a box whose tracker says it has lost the target (dashed)


def parse_color(text: str) -> RGB:
    """``red``, ``#ff8800`` or ``255,136,0`` -> RGB."""
    t = text.strip().lower()
    if t in NAMED_COLORS:
        return NAMED_COLORS[t]
    try:
        if t.startswith("#") and len(t) == 7:
            return tuple(int(t[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        parts = [int(p) for p in t.split(",")]
        if len(parts) == 3 and all(0 <= p <= 255 for p in parts):
            return tuple(parts)  # type: ignore[return-value]
    except ValueError:
        pass
    raise UserError(f"unknown colour {text!r}: use a name ({', '.join(sorted(NAMED_COLORS))}), "
                    "#rrggbb or r,g,b")


def parse_colors(text: Optional[str]) -> Dict[str, RGB]:
    """``"a=red,b=#00ff00"`` -> {name: RGB} (r,g,b triples need ``;`` between entries)."""
    out: Dict[str, RGB] = {}
    if not text:
        return out
    entries = text.split(";") if ";" in text else text.split(",")
    for entry in entries:
        if not entry.strip():
            continue
        if "=" not in entry:
            raise UserError(f"--colors entries must be name=colour, got {entry!r}")
        name, col = entry.split("=", 1)
        out[name.strip()] = parse_color(col)
    return out


def _family_color(name: str) -> Optional[RGB]:
    """A registered variant's colour (tracker.variants), in its family's shade; None otherwise."""
    from .api import family_of, spec

    fam = family_of(name.lower())
    if fam is None:
        return None
    v = spec(name.lower()).variant
    if v is None:   # the family's plain start (mdnet, crest) takes a palette colour
        return None
    return fam.shades.get(v.color, NAMED_COLORS[v.color])


def colors_for(names: Sequence[str], overrides: Optional[Mapping[str, RGB]] = None) -> Dict[str, RGB]:
    """A colour per tracker name: overrides, then the family colours, then the palette."""
    overrides = dict(overrides or {})
    out: Dict[str, RGB] = {}
    used = set(overrides.values())
    k = 0
    for n in names:
        if n in overrides:
            out[n] = overrides[n]
            continue
        fam = _family_color(n)
        if fam is not None:
            out[n] = fam
            continue
        while k < len(PALETTE) - 1 and PALETTE[k] in used:
            k += 1
        out[n] = PALETTE[k % len(PALETTE)]
        used.add(out[n])
        k += 1
    return out


def plot_colors(names: Sequence[str], overrides: Optional[Mapping[str, RGB]] = None
                ) -> Dict[str, Tuple[float, float, float]]:
    """:func:`colors_for` as matplotlib colours (0-1 floats), for the OTB toolkit's plots, so a
    tracker has the same colour in every plot and video."""
    return {n: tuple(c / 255.0 for c in rgb) for n, rgb in colors_for(names, overrides).items()}


def _bgr(c: RGB) -> Tuple[int, int, int]:
    return (int(c[2]), int(c[1]), int(c[0]))


def draw_box(img: np.ndarray, box: Sequence[float], color: RGB, thickness: int = 2,
             dashed: bool = False, dash: int = 8) -> None:
    """Draw ``(x, y, w, h)`` in place (nothing for non-finite or empty boxes)."""
    import cv2

    b = np.asarray(box, dtype=float).reshape(4)
    if not np.all(np.isfinite(b)) or b[2] <= 0 or b[3] <= 0:
        return
    x1, y1 = int(round(b[0])), int(round(b[1]))
    x2, y2 = int(round(b[0] + b[2] - 1)), int(round(b[1] + b[3] - 1))
    col = _bgr(color)
    if not dashed:
        cv2.rectangle(img, (x1, y1), (x2, y2), col, thickness, cv2.LINE_AA)
        return
    for (ax, ay), (bx, by) in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)),
                               ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(bx - ax), abs(by - ay))
        for s in range(0, length, 2 * dash):
            e = min(s + dash, length)
            p = (ax + (bx - ax) * s // max(length, 1), ay + (by - ay) * s // max(length, 1))
            q = (ax + (bx - ax) * e // max(length, 1), ay + (by - ay) * e // max(length, 1))
            cv2.line(img, p, q, col, thickness, cv2.LINE_AA)


def draw_text(img: np.ndarray, text: str, org: Tuple[int, int], color: RGB, scale: float) -> None:
    """``text`` at ``org`` (its baseline's left end) in ``color``, outlined in black to read on any frame."""
    import cv2

    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, _bgr(color), 1, cv2.LINE_AA)


def draw_frame(image: np.ndarray, boxes: Mapping[str, Sequence[float]], colors: Mapping[str, RGB],
               gt: Optional[Sequence[float]] = None, frame: Optional[int] = None,
               legend: bool = True, thickness: int = 2, lost: Collection[str] = (),
               scores: Optional[Mapping[str, Optional[float]]] = None) -> np.ndarray:
    """A copy of BGR ``image`` with every tracker's box, the dashed ground truth, the frame
    number (top left) and a legend (bottom left). A tracker named in ``lost`` (its score under
    its lost threshold) is drawn as a dashed grey box: where it would be, not a confident claim.
    ``scores``: each tracker's confidence, written above its box (none where None)."""
    img = np.ascontiguousarray(image).copy()
    h = img.shape[0]
    scale = max(0.4, min(1.0, h / 480))
    if gt is not None:
        draw_box(img, gt, GT_COLOR, thickness, dashed=True)
    for name, box in boxes.items():
        if name in lost:
            draw_box(img, box, LOST_COLOR, thickness, dashed=True)
        else:
            draw_box(img, box, colors.get(name, PALETTE[0]), thickness)
        score = (scores or {}).get(name)
        b = np.asarray(box, dtype=float).reshape(4)
        if score is not None and np.isfinite(score) and np.all(np.isfinite(b)):
            col = LOST_COLOR if name in lost else colors.get(name, PALETTE[0])
            draw_text(img, f"{score:.2f}", (int(b[0]), max(int(b[1]) - 4, int(14 * scale))), col, scale * 0.5)
    if frame is not None:
        draw_text(img, f"#{frame}", (6, int(22 * scale) + 4), (255, 255, 0), scale * 0.8)
    if legend:
        entries = list(boxes) + (["ground truth (dashed)"] if gt is not None else [])
        step = int(20 * scale) + 4
        y = h - 8 - step * (len(entries) - 1)
        for name in entries:
            col = (GT_COLOR if name.startswith("ground truth") else LOST_COLOR if name in lost
                   else colors.get(name, PALETTE[0]))
            draw_text(img, f"{name} (lost)" if name in lost else name, (8, y), col, scale * 0.6)
            y += step
    return img


class VideoSink:
    """Write BGR frames to ``.mp4``/``.avi`` (cv2.VideoWriter) or ``.gif`` (Pillow), atomically:
    frames go to a hidden temporary file beside ``path`` that :meth:`close` renames over it;
    :meth:`discard` (and leaving a ``with`` block by an exception) removes it instead, so an
    earlier video at ``path`` is never replaced by a truncated one."""

    def __init__(self, path: str, fps: float = 25.0) -> None:
        ext = os.path.splitext(path)[1].lower()
        if ext not in (".mp4", ".avi", ".gif"):
            raise UserError(f"cannot write {path}: use .mp4, .avi or .gif")
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.path, self.ext, self.fps = path, ext, float(fps) if fps and fps > 0 else 25.0
        self._tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
        self._writer = None
        self._gif: List[np.ndarray] = []
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        self.frames += 1
        if self.ext == ".gif":
            self._gif.append(np.ascontiguousarray(frame[:, :, ::-1]))
            return
        if self._writer is None:
            h, w = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.ext == ".mp4" else "MJPG"))
            self._writer = cv2.VideoWriter(self._tmp, fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise UserError(f"cv2 cannot write video {self.path} (no encoder for {self.ext})")
            self._size = (w, h)
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size)
        self._writer.write(np.ascontiguousarray(frame))

    def close(self) -> None:
        """Finish the file and put it at ``path``."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.ext == ".gif" and self._gif:
            from PIL import Image

            imgs = [Image.fromarray(f) for f in self._gif]
            imgs[0].save(self._tmp, format="GIF", save_all=True, append_images=imgs[1:], loop=0,
                         duration=int(round(1000 / self.fps)))
            self._gif = []
        if os.path.exists(self._tmp):
            os.replace(self._tmp, self.path)

    def discard(self) -> None:
        """Drop what was written; ``path`` keeps whatever it held before."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._gif = []
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self) -> "VideoSink":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def write_frames(path: str, frames: Iterable[np.ndarray], fps: float = 25.0) -> int:
    """Write all ``frames`` (BGR) to a video/gif; returns the number written."""
    with VideoSink(path, fps) as sink:
        for f in frames:
            sink.write(f)
    return sink.frames
