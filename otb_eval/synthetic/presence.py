"""Per-frame presence truth of a synthetic sequence: when the target is gone from view.

The generator knows, for each frame, the share of the target's mask inside the image
(``visible_fraction``) and the share of that in-image mask an occluder covers
(``occluded_fraction``). ``visibility.txt`` keeps both, one ``visible,occluded`` row per frame, so
a "target lost" signal can be scored against the truth. It is written beside
``groundtruth_rect.txt`` and changes no frame or box; sequences written before it existed simply
lack it (:func:`read_visibility` returns None).

A frame is *absent* when less than :data:`ABSENT_MAX_SEEN` of the target can be seen:
``visible * (1 - occluded)`` below it, i.e. fully occluded, fully out of view, or both.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

__all__ = ["VISIBILITY_FILE", "ABSENT_MAX_SEEN", "format_visibility", "read_visibility", "absent_frames"]

VISIBILITY_FILE = "visibility.txt"
ABSENT_MAX_SEEN = 0.1   # under 10% of the target seen: nothing left to track


def format_visibility(frames: Iterable) -> str:
    """``visible,occluded`` rows (4 decimals) of rendered frames (:class:`.rendering.Frame`)."""
    return "".join(f"{fr.visible_fraction:.4f},{fr.occluded_fraction:.4f}\n" for fr in frames)


def read_visibility(folder: str) -> np.ndarray | None:
    """``(N, 2)`` visible and occluded fractions of a sequence folder; None if it has no file."""
    path = os.path.join(folder, VISIBILITY_FILE)
    if not os.path.isfile(path):
        return None
    return np.loadtxt(path, delimiter=",", ndmin=2, dtype=float)


def absent_frames(visibility: np.ndarray, max_seen: float = ABSENT_MAX_SEEN) -> np.ndarray:
    """Boolean per frame: the seen share ``visible * (1 - occluded)`` is below ``max_seen``."""
    v = np.asarray(visibility, dtype=float).reshape(-1, 2)
    return v[:, 0] * (1.0 - v[:, 1]) < max_seen
