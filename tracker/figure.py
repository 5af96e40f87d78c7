"""Qualitative figures fit for a paper: chosen frames of one or more sequences with every
tracker's box, in the seed's style (its Fig. A: baseline red, L2F green, DropGrad blue,
L2F+DropGrad cyan; :func:`tracker.overlay.colors_for`).

Small source frames are upscaled before anything is drawn, so boxes and text keep a legible
thickness; the legend sits in a strip below the frames, never over them. The same pieces make
the frames of overlay videos (:func:`video_frame`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from foundation.errors import UserError

from .overlay import GT_COLOR, LOST_COLOR, PALETTE, RGB, _bgr, draw_box

__all__ = ["Panel", "upscale", "legend_strip", "qualitative_figure", "video_frame", "MIN_TILE_WIDTH"]

MIN_TILE_WIDTH = 360      # px: a 64-px-wide source frame is drawn 5.6x larger
WHITE = (255, 255, 255)


@dataclass
class Panel:
    """One frame of the figure: its image (BGR), number, each tracker's box and the ground truth."""

    image: np.ndarray
    frame: int
    boxes: Mapping[str, Sequence[float]]
    gt: Optional[Sequence[float]] = None
    lost: Collection[str] = ()   # trackers whose score is under their lost threshold here (dashed grey)


@dataclass
class _Row:
    title: str
    panels: List[Panel] = field(default_factory=list)


def upscale(image: np.ndarray, width: int) -> Tuple[np.ndarray, float]:
    """``image`` resized to ``width`` px wide (aspect kept) and the factor applied to boxes."""
    import cv2

    k = width / image.shape[1]
    h = max(1, int(round(image.shape[0] * k)))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (width, h), interpolation=interp), k


def _put(img: np.ndarray, text: str, org: Tuple[int, int], colour: RGB, scale: float,
         background: Optional[Tuple[int, int, int]] = None) -> int:
    """Text at ``org`` (its baseline's left end); returns its width in px."""
    import cv2

    thick = max(1, int(round(scale * 2)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    if background is not None:
        x, y = org
        cv2.rectangle(img, (x - 3, y - h - 3), (x + w + 3, y + base + 1), background, -1)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, _bgr(colour), thick, cv2.LINE_AA)
    return w


def _draw_panel(panel: Panel, colors: Mapping[str, RGB], width: int) -> np.ndarray:
    img, k = upscale(np.ascontiguousarray(panel.image), width)
    thickness = max(2, int(round(width / 160)))
    if panel.gt is not None:
        draw_box(img, np.asarray(panel.gt, float) * k, GT_COLOR, thickness, dashed=True)
    for name, box in panel.boxes.items():
        lost = name in panel.lost
        draw_box(img, np.asarray(box, float) * k, LOST_COLOR if lost else colors.get(name, PALETTE[0]), thickness,
                 dashed=lost)
    scale = width / 480
    _put(img, f"#{panel.frame}", (8, int(28 * scale) + 6), (255, 255, 0), scale, background=(0, 0, 0))
    return img


def legend_strip(names: Sequence[str], colors: Mapping[str, RGB], width: int, gt: bool,
                 scale: float = 0.6) -> np.ndarray:
    """A white strip ``width`` px wide with a coloured line and the name of each tracker (and
    the dashed ground truth), wrapped over as many lines as it needs."""
    import cv2

    entries = [(n, colors.get(n, PALETTE[0]), False) for n in names]
    if gt:
        entries.append(("ground truth", GT_COLOR, True))
    thick = max(1, int(round(scale * 2)))
    line_h = int(34 * scale) + 10
    swatch = int(40 * scale) + 8
    lines: List[List[Tuple[str, RGB, bool, int]]] = [[]]
    x = 10
    for name, col, dashed in entries:
        (tw, _), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        need = swatch + 8 + tw + 24
        if lines[-1] and x + need > width:
            lines.append([])
            x = 10
        lines[-1].append((name, col, dashed, x))
        x += need
    strip = np.full((line_h * len(lines) + 10, width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        y = 10 + i * line_h + line_h // 2
        for name, col, dashed, x0 in line:
            if dashed:   # the ground truth is white: on a dark chip, to be seen on white paper
                cv2.rectangle(strip, (x0 - 4, y - 7), (x0 + swatch + 4, y + 7), (70, 70, 70), -1)
                for s in range(x0, x0 + swatch, 10):
                    cv2.line(strip, (s, y), (min(s + 5, x0 + swatch), y), _bgr(col), max(3, thick + 1))
            else:
                cv2.line(strip, (x0, y), (x0 + swatch, y), _bgr(col), max(3, thick + 1))
            _put(strip, name, (x0 + swatch + 8, y + int(10 * scale)), (20, 20, 20), scale)
    return strip


def qualitative_figure(rows: Sequence[Tuple[str, Sequence[Panel]]], trackers: Sequence[str],
                       colors: Mapping[str, RGB], tile_width: Optional[int] = None,
                       gap: int = 8) -> np.ndarray:
    """A grid: one row per sequence (its name above it), its panels left to right in the order
    given, and the legend below the grid. Tiles are at least :data:`MIN_TILE_WIDTH` px wide."""
    rows = [_Row(title, list(panels)) for title, panels in rows]
    if not rows or not all(r.panels for r in rows):
        raise UserError("no frames for the figure")
    width = int(tile_width or max(MIN_TILE_WIDTH, max(p.image.shape[1] for r in rows for p in r.panels)))
    cols = max(len(r.panels) for r in rows)
    drawn = [[_draw_panel(p, colors, width) for p in r.panels] for r in rows]
    tile_h = max(t.shape[0] for r in drawn for t in r)
    title_h = int(34 * width / 480) + 12
    total_w = cols * width + (cols + 1) * gap
    blocks = []
    for row, tiles in zip(rows, drawn):
        block = np.full((title_h + tile_h + gap, total_w, 3), 255, np.uint8)
        _put(block, row.title, (gap + 2, title_h - 10), (20, 20, 20), width / 480 * 0.8)
        for c, t in enumerate(tiles):
            x = gap + c * (width + gap)
            block[title_h:title_h + t.shape[0], x:x + width] = t
        blocks.append(block)
    has_gt = any(p.gt is not None for r in rows for p in r.panels)
    blocks.append(legend_strip(list(trackers), colors, total_w, has_gt, scale=width / 480 * 0.7))
    return np.concatenate(blocks, axis=0)


def video_frame(panel: Panel, trackers: Sequence[str], colors: Mapping[str, RGB],
                min_width: int = 640, legend: Optional[np.ndarray] = None) -> np.ndarray:
    """One overlay-video frame: upscaled to at least ``min_width`` px, boxes drawn, the legend
    strip (built once by the caller, or here) below the frame."""
    width = max(min_width, panel.image.shape[1])
    img = _draw_panel(panel, colors, width)
    if legend is None:
        legend = legend_strip(list(trackers), colors, width, panel.gt is not None, scale=width / 480 * 0.6)
    return np.concatenate([img, legend], axis=0)

