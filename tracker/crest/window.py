"""The search window's geometry: one normalisation shared by the tracker and meta-training.

CREST scales the whole frame so the target's larger side is at most 100 pixels and searches a
square window of 5 x that side. We express the same thing per window: the target is "normalised"
to ``target_px`` pixels (its larger side clipped to ``[min_target_px, max_target_px]``), the window
is ``window`` = odd(5 x target_px) normalised pixels, and every frame's window is cropped from the
frame at ``window x (current larger side / target_px)`` frame pixels and resized to ``window``.
The target therefore always has the same size in feature cells, which is what lets one kernel size
and the scale search (crops at 0.95 and 1.05 of that side) work.

Coordinates: window pixel ``u`` (0 .. window - 1) has its centre at ``u``; the window's centre is
``(window - 1) / 2``; frame boxes are ``(x, y, w, h)`` with pixel ``i`` spanning ``[i, i + 1)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor

from .backbone import Backbone
from .dcf import gaussian_label, kernel_size, odd

__all__ = ["WindowGeometry", "crop_windows"]


@dataclass(frozen=True)
class WindowGeometry:
    """Sizes of one sequence's windows (fixed from the first box)."""

    window: int                          # window side, normalised pixels (odd)
    target_px: float                     # the first box's larger side, normalised pixels
    target_hw_px: Tuple[float, float]    # the first box's (h, w), normalised pixels
    map_size: int                        # feature cells per window side
    stride: int
    cell0: float                         # window pixel of feature cell 0's centre
    border: int                          # pixels cropped around the window for the backbone

    @classmethod
    def for_box(cls, box_wh: Sequence[float], backbone: Backbone, window_factor: float = 5.0,
                max_target_px: float = 100.0, min_target_px: float = 0.0) -> "WindowGeometry":
        w, h = float(box_wh[0]), float(box_wh[1])
        side = max(w, h, 1.0)
        target = min(max(side, min_target_px), max_target_px)
        k = target / side
        window = odd(window_factor * target)
        return cls(window, target, (h * k, w * k), backbone.map_size(window), backbone.stride,
                   backbone.cell_centre(0, window), backbone.border)

    # ------------------------------------------------------------------ cells
    @property
    def target_cells(self) -> Tuple[float, float]:
        """The target's (h, w) in feature cells."""
        return self.target_hw_px[0] / self.stride, self.target_hw_px[1] / self.stride

    @property
    def kernel(self) -> Tuple[int, int]:
        """The correlation filter's (kh, kw): about the target's size in cells, odd."""
        return kernel_size(self.target_cells)

    def cell_of(self, u: float) -> float:
        """Window pixel -> feature cell coordinate (fractional)."""
        return (u - self.cell0) / self.stride

    def label(self, offset_px: Tuple[float, float] = (0.0, 0.0),
              device: Optional[torch.device] = None) -> Tensor:
        """The Gaussian label of a target whose centre is ``offset_px = (dy, dx)`` normalised
        pixels from the window's centre, on the ``map_size x map_size`` response, on ``device``
        (the features')."""
        c = (self.window - 1) / 2.0
        n = self.map_size
        shift = (self.cell_of(c + offset_px[0]) - n // 2, self.cell_of(c + offset_px[1]) - n // 2)
        return gaussian_label((n, n), self.target_cells, shift, device=device)

    def peak_offset_px(self, dy_cells: float, dx_cells: float) -> Tuple[float, float]:
        """A response cell ``(n // 2 + dy, n // 2 + dx)`` -> offset from the window's centre,
        normalised pixels (dy, dx)."""
        c = (self.window - 1) / 2.0
        n = self.map_size
        return (self.cell0 + self.stride * (n // 2 + dy_cells) - c,
                self.cell0 + self.stride * (n // 2 + dx_cells) - c)

    def frame_side(self, box_wh: Sequence[float]) -> float:
        """Frame pixels spanned by the window for a box of that size."""
        return self.window * max(float(box_wh[0]), float(box_wh[1]), 1e-6) / self.target_px


def crop_windows(image: np.ndarray, centre_xy: Sequence[float], frame_sides: Sequence[float],
                 window: int, border: int = 0) -> np.ndarray:
    """Square crops centred on ``centre_xy`` (frame coordinates) spanning ``frame_sides`` frame
    pixels each, resized to ``window`` pixels, plus ``border`` resized pixels on every side (what a
    valid-convolution backbone consumes). Out-of-frame pixels repeat the frame's edge.
    Returns ``N x (window + 2 border) x (window + 2 border) x 3`` of the image's dtype."""
    q = window + 2 * border
    out = np.empty((len(frame_sides), q, q, image.shape[2]), dtype=image.dtype)
    cx, cy = float(centre_xy[0]), float(centre_xy[1])
    for i, side in enumerate(frame_sides):
        k = float(side) / window                 # frame pixels per window pixel
        # window pixel q has its centre at frame coordinate cx + (q - border - (window-1)/2) k;
        # OpenCV's pixel i has its centre at i, ours at i + 0.5
        first = -(border + (window - 1) / 2.0) * k
        m = np.array([[k, 0.0, cx - 0.5 + first], [0.0, k, cy - 0.5 + first]])
        out[i] = cv2.warpAffine(image, m, (q, q), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REPLICATE)
    return out
