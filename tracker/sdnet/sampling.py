"""MDNet's box samplers (gaussian, uniform, whole) and rejection to IoU ranges, vectorised.

Definitions (``../shared/reference/tracking.md``), boxes in centre form, ``s = mean(w, h)``:

- ``gaussian``: centre shift ``trans * s * clip(0.5 N(0,1), -1, 1)`` per axis, size
  ``* scale ** clip(0.5 N(0,1), -1, 1)`` (one factor for both sides);
- ``uniform``: centre shift ``trans * s * U(-1, 1)`` per axis, size ``* scale ** U(-1, 1)``;
- ``whole``: centres on a grid over the image (one cell per sample, a uniform position inside
  its cell, cells in random order), size ``* scale ** U(-1, 1)``;
- aspect jitter (all three): ``w * aspect ** u``, ``h * aspect ** -u`` with ``u ~ U(-1, 1)``
  (the area is kept, only the shape changes);
- sizes clipped to ``[10, image - 10]``; ``valid=True`` moves centres so the whole box is inside
  the image (otherwise the centre is clipped to the image).

Every function takes a seeded ``numpy.random.Generator`` and returns ``n x 4`` ``(x, y, w, h)``
float64 boxes (OTB's top-left form; centres via :mod:`foundation.boxes`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from foundation.boxes import cxcywh_to_xywh, iou, xywh_to_cxcywh

__all__ = ["Sampler", "gaussian", "uniform", "whole", "sample", "sample_iou", "episode_samples",
           "MIN_SIZE"]

MIN_SIZE = 10.0
KINDS = ("gaussian", "uniform", "whole")


@dataclass(frozen=True)
class Sampler:
    """A sampler kind and its ``(trans, scale, aspect)`` parameters."""

    kind: str
    trans: float
    scale: float
    aspect: float = 1.0
    valid: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"sampler kind must be one of {KINDS}, got {self.kind!r}")

    def __call__(self, rng: np.random.Generator, box, image_size: Tuple[int, int], n: int,
                 area: Optional[Sequence[float]] = None) -> np.ndarray:
        return sample(rng, self.kind, box, image_size, n, self.trans, self.scale, self.aspect,
                      self.valid, area)


def _finish(rng: np.random.Generator, c: np.ndarray, image_size, aspect: float, valid: bool,
            ) -> np.ndarray:
    """Aspect jitter, size clipping and centre clipping on centre-form boxes ``c`` (n x 4)."""
    W, H = float(image_size[0]), float(image_size[1])
    if aspect != 1.0:
        u = rng.uniform(-1.0, 1.0, len(c))
        r = float(aspect) ** u
        c[:, 2] *= r
        c[:, 3] /= r
    c[:, 2] = np.clip(c[:, 2], MIN_SIZE, max(MIN_SIZE, W - MIN_SIZE))
    c[:, 3] = np.clip(c[:, 3], MIN_SIZE, max(MIN_SIZE, H - MIN_SIZE))
    if valid:
        c[:, 0] = np.clip(c[:, 0], c[:, 2] / 2, W - c[:, 2] / 2)
        c[:, 1] = np.clip(c[:, 1], c[:, 3] / 2, H - c[:, 3] / 2)
    else:
        c[:, 0] = np.clip(c[:, 0], 0.0, W)
        c[:, 1] = np.clip(c[:, 1], 0.0, H)
    return cxcywh_to_xywh(c)


def _repeat(box, n: int) -> np.ndarray:
    c = xywh_to_cxcywh(np.asarray(box, dtype=float).reshape(4))
    return np.repeat(c[None, :], n, axis=0)


def gaussian(rng: np.random.Generator, box, image_size, n: int, trans: float, scale: float,
             aspect: float = 1.0, valid: bool = False) -> np.ndarray:
    c = _repeat(box, n)
    s = c[0, 2:].mean()
    c[:, :2] += trans * s * np.clip(0.5 * rng.standard_normal((n, 2)), -1.0, 1.0)
    c[:, 2:] *= (float(scale) ** np.clip(0.5 * rng.standard_normal(n), -1.0, 1.0))[:, None]
    return _finish(rng, c, image_size, aspect, valid)


def uniform(rng: np.random.Generator, box, image_size, n: int, trans: float, scale: float,
            aspect: float = 1.0, valid: bool = False) -> np.ndarray:
    c = _repeat(box, n)
    s = c[0, 2:].mean()
    c[:, :2] += trans * s * rng.uniform(-1.0, 1.0, (n, 2))
    c[:, 2:] *= (float(scale) ** rng.uniform(-1.0, 1.0, n))[:, None]
    return _finish(rng, c, image_size, aspect, valid)


def whole(rng: np.random.Generator, box, image_size, n: int, trans: float = 0.0, scale: float = 1.2,
          aspect: float = 1.1, valid: bool = False, area: Optional[Sequence[float]] = None,
          ) -> np.ndarray:
    """Centres on a jittered grid over ``area`` (x0, y0, x1, y1; default the whole image) less half
    the box (so boxes lie inside); ``trans`` is unused (kept for the common signature)."""
    c = _repeat(box, n)
    c[:, 2:] *= (float(scale) ** rng.uniform(-1.0, 1.0, n))[:, None]
    W, H = float(image_size[0]), float(image_size[1])
    c = xywh_to_cxcywh(_finish(rng, c, image_size, aspect, valid=False))   # final sizes first
    x0, y0, x1, y1 = area if area is not None else (0.0, 0.0, W, H)
    lo = np.stack([x0 + c[:, 2] / 2, y0 + c[:, 3] / 2], axis=1)
    span = np.maximum(np.stack([x1 - c[:, 2] / 2, y1 - c[:, 3] / 2], axis=1) - lo, 0.0)
    sx, sy = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cols = max(1, int(round(np.sqrt(n * sx / sy))))
    rows = max(1, int(np.ceil(n / cols)))
    cells = rng.permutation(rows * cols)[:n]
    gx = (cells % cols + rng.uniform(0, 1, n)) / cols
    gy = (cells // cols + rng.uniform(0, 1, n)) / rows
    c[:, 0] = lo[:, 0] + gx * span[:, 0]
    c[:, 1] = lo[:, 1] + gy * span[:, 1]
    return _finish(rng, c, image_size, 1.0, valid)


_FUNCS = {"gaussian": gaussian, "uniform": uniform, "whole": whole}


def sample(rng: np.random.Generator, kind: str, box, image_size, n: int, trans: float, scale: float,
           aspect: float = 1.0, valid: bool = False, area: Optional[Sequence[float]] = None,
           ) -> np.ndarray:
    """``n`` boxes from sampler ``kind`` around ``box`` in an image of ``image_size = (W, H)``."""
    if kind not in _FUNCS:
        raise ValueError(f"sampler kind must be one of {KINDS}, got {kind!r}")
    if kind == "whole":
        return whole(rng, box, image_size, n, trans, scale, aspect, valid, area)
    return _FUNCS[kind](rng, box, image_size, n, trans, scale, aspect, valid)


def sample_iou(rng: np.random.Generator, sampler: Sampler, box, image_size, n: int,
               iou_range: Tuple[float, float], max_rounds: int = 20,
               area: Optional[Sequence[float]] = None) -> np.ndarray:
    """``n`` boxes from ``sampler`` whose IoU with ``box`` lies in ``[lo, hi]`` (rejection sampling
    in vectorised rounds of 2n). Returns fewer than ``n`` rows only if ``max_rounds`` rounds did
    not find enough (e.g. negatives around a box as large as the image)."""
    lo, hi = iou_range
    box = np.asarray(box, dtype=float).reshape(4)
    kept = []
    found = 0
    for _ in range(max_rounds):
        cand = sampler(rng, box, image_size, max(2 * n, 16), area)
        o = iou(cand, box[None, :])
        cand = cand[(o >= lo) & (o <= hi)]
        kept.append(cand)
        found += len(cand)
        if found >= n:
            break
    out = np.concatenate(kept, axis=0)[:n] if kept else np.zeros((0, 4))
    return out


# Reference samplers (tracking.md); the tracker's options refer to these by default.
EPISODE_POS = Sampler("gaussian", 0.1, 1.2, 1.1)
EPISODE_NEG = Sampler("uniform", 1.0, 1.2, 1.1)


def episode_samples(rng: np.random.Generator, box, image_size, n_pos: int = 32, n_neg: int = 96,
                    pos_iou: Tuple[float, float] = (0.7, 1.0), neg_iou: Tuple[float, float] = (0.0, 0.5),
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """A meta-training support (or query) set on one frame: 32 positives with IoU in [0.7, 1]
    from gaussian (0.1, 1.2, 1.1) and 96 negatives with IoU in [0, 0.5] from uniform (1, 1.2, 1.1).
    Returns ``(positives, negatives)``; label shuffling is the caller's business."""
    pos = sample_iou(rng, EPISODE_POS, box, image_size, n_pos, pos_iou)
    neg = sample_iou(rng, EPISODE_NEG, box, image_size, n_neg, neg_iou)
    return pos, neg
