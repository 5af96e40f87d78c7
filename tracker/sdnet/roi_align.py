"""Fast mode: conv features once per frame on a search region, boxes pooled by RoIAlign.

MDNet crops every candidate box (enlarged by the context padding) to 107 x 107 and runs the conv
layers on each crop. Fast mode warps ONE search region around the previous box so that the
previous box's crop is 107 x 107 pixels (the model's scale), runs conv1-conv3 on it once, and
reads each box's ``C x 3 x 3`` features by bilinear sampling at exactly the places where the
3 x 3 conv3 cells of the box's own crop would be centred.

Geometry. With VGG-M's kernels and strides, conv3 cell ``p`` of an input is centred on input
pixel ``OFFSET + STRIDE * p`` (``37 + 16 p``; on a 107 crop: 37, 53, 69). Continuous image
coordinates put pixel ``i`` at ``[i, i + 1)``; a box's crop is the box enlarged by
``ModelConfig.crop_scale`` about its continuous centre; crop pixel ``j`` maps to image
``x0 + (j + 0.5) * crop_w / 107``. A region is an affine image ``u = (x - ox) * sx`` (and y); its
pixel ``i`` sits at ``ox + (i + 0.5) / sx``. So a box whose crop is 107 region pixels wide and starts
at a multiple of 16 is pooled with no interpolation at all: its features equal those of its exact
crop (up to the image border, where the region is padded with the mean pixel like the crops are).

With a frozen EfficientNet backbone (:meth:`ModelConfig.efficientnet`) the boxes are sampled at
the same crop pixels (37, 53, 69 of 107), on the block's map whose cell geometry
(:func:`map_geometry`: TensorFlow "same" padding, cell 0's centre follows the input size) replaces
``OFFSET + STRIDE p``.

No torchvision: sampling is ``torch.nn.functional.grid_sample`` (bilinear, border clamp) on one
feature map with all boxes' 3 x 3 points laid out as one grid, so it is differentiable (the
frame-1 meta step goes through it to the conv layers).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from foundation.boxes import xywh_to_cxcywh

from .config import MEAN_PIXEL, ModelConfig

__all__ = ["Region", "STRIDE", "OFFSET", "grid_cells", "make_region", "region_for_boxes",
           "warp", "crop_boxes", "to_tensor", "roi_grid", "roi_align", "feature_size", "map_geometry",
           "crop_cells"]

STRIDE = 16
OFFSET = 37


def feature_size(n: int, dense: bool = False) -> int:
    """conv3 output size for an input side of ``n`` pixels (k7 s2, pool 3/2, k5 s2, pool 3/2, k3);
    ``dense``: of :func:`~tracker.sdnet.model.conv_forward_dense` (pool2 stride 1, conv3 dilated)."""
    n = (n - 7) // 2 + 1
    n = (n - 3) // 2 + 1
    n = (n - 5) // 2 + 1
    if dense:
        return n - 2 - 4
    n = (n - 3) // 2 + 1
    return n - 2


def grid_cells(config: ModelConfig) -> int:
    """Cells pooled per box side: conv3's on one crop (3 for 107)."""
    return feature_size(config.input_size)


def map_geometry(config: ModelConfig, n: int, dense: bool = False) -> Tuple[int, float, int]:
    """``(cells, centre, stride)`` of the feature map along an input side of ``n`` pixels: cell
    ``i`` is centred on input pixel ``centre + stride * i`` (conv3: 37 + 16 i, or 8 i dense)."""
    stride = STRIDE // 2 if dense else STRIDE
    if config.learned_conv:
        return feature_size(n, dense), float(OFFSET), stride
    from .. import efficientnet as E

    dilate = E.dilate_for_stride(config.backbone_blocks, stride) if dense else None
    cells, centre = E.same_grid(n, config.backbone_blocks, dilate)
    return cells, centre, stride


@dataclass(frozen=True)
class Region:
    """An axis-aligned affine view of the image: ``u = (x - ox) * sx``, ``v = (y - oy) * sy``,
    ``width x height`` pixels."""

    ox: float
    oy: float
    sx: float
    sy: float
    width: int
    height: int

    def matrix(self) -> np.ndarray:
        """The 2 x 3 map from region pixel indices to image pixel indices (for cv2 inverse warps)."""
        return np.array([[1.0 / self.sx, 0.0, self.ox + 0.5 / self.sx - 0.5],
                         [0.0, 1.0 / self.sy, self.oy + 0.5 / self.sy - 0.5]])


def crops_of(boxes: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Crop rectangles (x0, y0, w, h) of boxes: each box enlarged by the context padding."""
    c = xywh_to_cxcywh(np.asarray(boxes, dtype=float).reshape(-1, 4))
    size = c[:, 2:] * config.crop_scale
    return np.concatenate([c[:, :2] - size / 2, size], axis=1)


def make_region(ref_box, bounds: Tuple[float, float, float, float], config: ModelConfig,
                max_side: int = 480) -> Region:
    """A region covering ``bounds`` (x0, y0, x1, y1 in image coordinates) at the scale where
    ``ref_box``'s crop is ``input_size`` pixels; at most ``max_side`` pixels per side (the bounds
    shrink about their centre if needed: boxes beyond are pooled with border clamping)."""
    crop = crops_of(ref_box, config)[0]
    n = config.input_size
    sx, sy = n / max(crop[2], 1e-6), n / max(crop[3], 1e-6)
    x0, y0, x1, y1 = (float(v) for v in bounds)
    w = int(np.ceil((x1 - x0) * sx))
    h = int(np.ceil((y1 - y0) * sy))
    w, h = max(w, n), max(h, n)
    if w > max_side:
        cx = (x0 + x1) / 2
        x0 = cx - max_side / sx / 2
        w = max_side
    if h > max_side:
        cy = (y0 + y1) / 2
        y0 = cy - max_side / sy / 2
        h = max_side
    return Region(x0, y0, sx, sy, w, h)


def region_for_boxes(boxes: np.ndarray, ref_box, config: ModelConfig, max_side: int = 480,
                     margin: float = 8.0) -> Region:
    """The smallest region holding every box's crop (plus ``margin`` region pixels)."""
    crops = crops_of(boxes, config)
    ref = crops_of(ref_box, config)[0]
    mx = margin * ref[2] / config.input_size
    my = margin * ref[3] / config.input_size
    bounds = (crops[:, 0].min() - mx, crops[:, 1].min() - my,
              (crops[:, 0] + crops[:, 2]).max() + mx, (crops[:, 1] + crops[:, 3]).max() + my)
    return make_region(ref_box, bounds, config, max_side)


def warp(image_rgb: np.ndarray, region: Region) -> np.ndarray:
    """The region's pixels (``height x width x 3`` uint8), bilinear, outside filled with 128."""
    import cv2

    return cv2.warpAffine(image_rgb, region.matrix(), (int(region.width), int(region.height)),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))


def crop_boxes(image_rgb: np.ndarray, boxes: np.ndarray, config: ModelConfig) -> np.ndarray:
    """MDNet's exact crops: ``N x 107 x 107 x 3`` uint8, each box with its context padding."""
    n = config.input_size
    crops = crops_of(boxes, config)
    out = np.empty((len(crops), n, n, 3), dtype=np.uint8)
    for i, (x0, y0, cw, ch) in enumerate(crops):
        out[i] = warp(image_rgb, Region(x0, y0, n / max(cw, 1e-6), n / max(ch, 1e-6), n, n))
    return out


def to_tensor(pixels: np.ndarray) -> Tensor:
    """``(N x) H x W x 3`` uint8 RGB -> ``N x 3 x H x W`` float32 minus the mean pixel, on the CPU
    (the numpy side; callers move it to their device)."""
    arr = pixels if pixels.ndim == 4 else pixels[None]
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()  # device: CPU, see above
    return t.sub_(MEAN_PIXEL)


def roi_grid(boxes: np.ndarray, region: Region, config: ModelConfig, dense: bool = False) -> Tensor:
    """grid_sample coordinates ``1 x 3N x 3 x 2`` (align_corners=True) of every box's 3 x 3 cells
    on the feature map of ``region`` (:func:`map_geometry`; stride 16, or 8 for the dense
    forward). On the CPU (numpy geometry); callers move it to the feature map's device."""
    k = grid_cells(config)
    n_in = config.input_size
    crops = crops_of(boxes, config)                                  # N x 4 image coords
    j = OFFSET + STRIDE * np.arange(k) + 0.5                          # crop pixel centres of cells
    # image coordinates of the cell centres, then region pixel indices, then feature coordinates
    xs = crops[:, 0:1] + j[None, :] * crops[:, 2:3] / n_in            # N x k
    ys = crops[:, 1:2] + j[None, :] * crops[:, 3:4] / n_in
    fw, cx, stride = map_geometry(config, region.width, dense)
    fh, cy, _ = map_geometry(config, region.height, dense)
    fx = ((xs - region.ox) * region.sx - 0.5 - cx) / stride
    fy = ((ys - region.oy) * region.sy - 0.5 - cy) / stride
    gx = 2.0 * fx / max(fw - 1, 1) - 1.0
    gy = 2.0 * fy / max(fh - 1, 1) - 1.0
    n = len(crops)
    grid = np.empty((n, k, k, 2), dtype=np.float32)
    grid[..., 0] = gx[:, None, :]
    grid[..., 1] = gy[:, :, None]
    return torch.from_numpy(grid.reshape(1, n * k, k, 2))   # device: CPU, see above


def roi_align(feats: Tensor, grid: Tensor, k: int = 3) -> Tensor:
    """Pool ``1 x C x h x w`` features at a :func:`roi_grid` -> ``N x C x k x k``."""
    c = feats.shape[1]
    out = F.grid_sample(feats, grid, mode="bilinear", padding_mode="border", align_corners=True)
    n = grid.shape[1] // k
    return out.view(c, n, k, k).permute(1, 0, 2, 3)


def crop_cells(fmap: Tensor, config: ModelConfig) -> Tensor:
    """The ``N x C x 3 x 3`` cells of crops' own maps (exact mode): conv3's map of a 107 crop is
    those cells already; a frozen backbone's map is sampled at the same crop pixels."""
    if config.learned_conv:
        return fmap
    n = config.input_size
    whole = Region(0.0, 0.0, 1.0, 1.0, n, n)
    box = np.array([[config.padding, config.padding, n - 2 * config.padding, n - 2 * config.padding]])
    grid = roi_grid(box, whole, config).to(fmap.device)
    return F.grid_sample(fmap, grid.expand(len(fmap), -1, -1, -1), mode="bilinear",
                         padding_mode="border", align_corners=True)
