"""Box maths, in one place for the whole project.

Boxes are ``(x, y, w, h)`` rows in OTB's convention: ``(x, y)`` is the top-left corner and the
centre is ``(x + (w - 1) / 2, y + (h - 1) / 2)`` (MATLAB's 1-based pixel centres). Every function
is vectorised over leading dimensions and works on ``float64`` numpy arrays.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import UserError

MIN_BOX = 4.0  # pixels: a smaller initial box is refused

_EPS = np.finfo(float).eps


def as_boxes(boxes: np.ndarray | list | tuple) -> np.ndarray:
    """Return ``boxes`` as a float64 array of shape ``(..., 4)``."""
    arr = np.asarray(boxes, dtype=float)
    if arr.shape[-1:] != (4,):
        raise ValueError(f"boxes must have 4 columns (x, y, w, h), got shape {arr.shape}")
    return arr


def centers(boxes: np.ndarray) -> np.ndarray:
    """Centres in OTB's convention ``x + (w - 1) / 2`` (shared by got10k and the MATLAB toolkit)."""
    boxes = as_boxes(boxes)
    return boxes[..., :2] + (boxes[..., 2:] - 1) / 2


def center_error(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance between the centres of two aligned sets of boxes."""
    diff = centers(boxes) - centers(gt)
    return np.sqrt(np.sum(diff * diff, axis=-1))


def normalized_center_error(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Centre distance with each axis divided by the ground-truth size (pytracking/pysot)."""
    gt = as_boxes(gt)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = (centers(boxes) - centers(gt)) / gt[..., 2:]
    return np.sqrt(np.sum(diff * diff, axis=-1))


def intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection rectangles ``(x, y, w, h)`` of aligned boxes; empty ones have zero size."""
    a, b = as_boxes(a), as_boxes(b)
    x1 = np.maximum(a[..., 0], b[..., 0])
    y1 = np.maximum(a[..., 1], b[..., 1])
    x2 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y2 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    return np.stack([x1, y1, np.maximum(x2 - x1, 0), np.maximum(y2 - y1, 0)], axis=-1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Continuous intersection over union of aligned boxes, clipped to [0, 1].

    The union carries got10k's ``+ eps`` so that scores match got10k to the last digit and a
    pair of zero-size boxes scores 0 instead of NaN.
    """
    a, b = as_boxes(a), as_boxes(b)
    inter = intersection(a, b)
    area_inter = inter[..., 2] * inter[..., 3]
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - area_inter
    return np.clip(area_inter / (union + _EPS), 0.0, 1.0)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N x 4) with every box in ``b`` (M x 4): an N x M matrix."""
    a, b = as_boxes(a), as_boxes(b)
    return iou(a[:, None, :], b[None, :, :])


def valid(boxes: np.ndarray) -> np.ndarray:
    """True where a box is finite and has positive width and height."""
    boxes = as_boxes(boxes)
    return np.all(np.isfinite(boxes), axis=-1) & (boxes[..., 2] > 0) & (boxes[..., 3] > 0)


def xywh_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """Top-left form to centre form ``(cx, cy, w, h)`` with the continuous centre ``x + w / 2``."""
    boxes = as_boxes(boxes)
    return np.concatenate([boxes[..., :2] + boxes[..., 2:] / 2, boxes[..., 2:]], axis=-1)


def cxcywh_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """Centre form ``(cx, cy, w, h)`` back to top-left form."""
    boxes = as_boxes(boxes)
    return np.concatenate([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., 2:]], axis=-1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Top-left form to corner form ``(x1, y1, x2, y2)`` with ``x2 = x + w`` (continuous)."""
    boxes = as_boxes(boxes)
    return np.concatenate([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], axis=-1)


def clip_to_image(boxes: np.ndarray, width: int, height: int, min_size: float = 1.0) -> np.ndarray:
    """Clip boxes so that they lie inside a ``width`` x ``height`` image, keeping ``min_size``."""
    boxes = as_boxes(boxes).copy()
    x1 = np.clip(boxes[..., 0], 0, width - min_size)
    y1 = np.clip(boxes[..., 1], 0, height - min_size)
    x2 = np.clip(boxes[..., 0] + boxes[..., 2], x1 + min_size, width)
    y2 = np.clip(boxes[..., 1] + boxes[..., 3], y1 + min_size, height)
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)


def check_box(box: Sequence[float], width: int | None = None, height: int | None = None) -> np.ndarray:
    """The rule every tracker applies to a first box: 4 finite numbers with a positive width and
    height and, given the image size, some of it inside the image; else a one-line
    :class:`UserError`."""
    try:
        b = np.asarray(box, dtype=float).reshape(4)
    except (TypeError, ValueError):
        raise UserError(f"the initial box must be 4 numbers x,y,w,h, got {box!r}") from None
    if not np.all(np.isfinite(b)):
        raise UserError(f"the initial box {_fmt(b)} has a non-finite value")
    if b[2] <= 0 or b[3] <= 0:
        raise UserError(f"the initial box {_fmt(b)} has no area (width and height must be > 0)")
    if width is not None and height is not None and (
            b[0] >= width or b[1] >= height or b[0] + b[2] <= 0 or b[1] + b[3] <= 0):
        raise UserError(f"the initial box {_fmt(b)} lies outside the {width}x{height} image")
    return b


def check_init_box(box: Sequence[float], width: int, height: int) -> np.ndarray:
    """The initial box of the learned trackers as float ``(x, y, w, h)`` inside the image.

    On top of :func:`check_box`: a box smaller than 4 px, or with no pixel inside the image, is a
    :class:`UserError`; a box partly outside the image is clipped to it (documented correction).
    """
    b = check_box(box)
    if b[2] < MIN_BOX or b[3] < MIN_BOX:
        raise UserError(f"the initial box {_fmt(b)} is smaller than {MIN_BOX:g} px "
                        f"(width and height must be >= {MIN_BOX:g})")
    x1, y1 = max(b[0], 0.0), max(b[1], 0.0)
    x2, y2 = min(b[0] + b[2], float(width)), min(b[1] + b[3], float(height))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        raise UserError(f"the initial box {_fmt(b)} lies outside the {width}x{height} image")
    if x2 - x1 < MIN_BOX or y2 - y1 < MIN_BOX:
        raise UserError(f"the initial box {_fmt(b)} has less than {MIN_BOX:g} px inside the "
                        f"{width}x{height} image")
    return np.array([x1, y1, x2 - x1, y2 - y1])


def _fmt(b: np.ndarray) -> str:
    return ",".join(f"{v:g}" for v in b)
