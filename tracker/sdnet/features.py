"""Where the online MetaSDNet tracker gets conv3 features of boxes: one object per mode.

- :class:`RegionFeatures` (``mode="fast"``): conv1-3 (or the frozen backbone) once per frame on a search region covering
  the boxes, each box pooled by RoIAlign (:mod:`.roi_align`);
- :class:`CropFeatures` (``mode="exact"``): every box cropped to 107 x 107 and through conv1-3,
  like MDNet.

Both answer the same two questions: :meth:`frame` (features of any boxes of this frame at fixed
parameters, no gradient) and :meth:`loss` (a loss through the conv layers for the frame-1 step).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from . import roi_align as R
from .losses import LossFn, crop_loss, pool_region, region_conv, region_loss
from .model import ModelConfig, conv_forward

__all__ = ["RegionFeatures", "CropFeatures", "make_features"]


class _RegionFrame:
    """One frame's feature map on its search region; pools any boxes inside it."""

    def __init__(self, owner: "RegionFeatures", region: R.Region, fmap: Tensor) -> None:
        self.owner, self.region, self.fmap = owner, region, fmap

    def pool(self, boxes: np.ndarray) -> Tensor:
        """``N x C x 3 x 3`` features of ``boxes``."""
        o = self.owner
        if not len(boxes):
            return torch.zeros(0, o.config.feature_channels, 3, 3, device=o.device)
        grid = R.roi_grid(boxes, self.region, o.config, o.dense).to(o.device)
        with torch.no_grad():
            return pool_region(self.fmap, grid, o.config)


class RegionFeatures:
    """Fast mode: one conv pass per frame on a region (stride 8 with ``dense``, else 16)."""

    def __init__(self, config: ModelConfig, dense: bool = True, device: torch.device = torch.device("cpu")):
        self.config, self.dense, self.device = config, dense, device

    def _region(self, rgb: np.ndarray, cover: np.ndarray, ref_box: np.ndarray,
                max_side: int) -> Tuple[R.Region, Tensor]:
        region = R.region_for_boxes(cover, ref_box, self.config, max_side)
        return region, R.to_tensor(R.warp(rgb, region)).to(self.device)

    def frame(self, params, rgb: np.ndarray, cover: np.ndarray, ref_box: np.ndarray,
              max_side: int) -> _RegionFrame:
        """Features at ``params`` of boxes within ``cover`` (their search region)."""
        region, x = self._region(rgb, cover, ref_box, max_side)
        with torch.no_grad():
            return _RegionFrame(self, region, region_conv(params, x, self.config, self.dense))

    def loss(self, rgb: np.ndarray, boxes: np.ndarray, labels: Tensor, cover: np.ndarray,
             ref_box: np.ndarray, max_side: int) -> Tuple[LossFn, tuple]:
        region, x = self._region(rgb, cover, ref_box, max_side)
        grid = R.roi_grid(boxes, region, self.config, self.dense).to(self.device)
        return region_loss(self.config, self.dense), (x, grid, labels)


class _CropFrame:
    def __init__(self, owner: "CropFeatures", params, rgb: np.ndarray) -> None:
        self.owner, self.params, self.rgb = owner, params, rgb

    def pool(self, boxes: np.ndarray) -> Tensor:
        """``N x C x 3 x 3`` features of ``boxes``, ``chunk`` crops per conv batch."""
        o, out = self.owner, []
        with torch.no_grad():
            for i in range(0, len(boxes), o.chunk):
                crops = R.to_tensor(R.crop_boxes(self.rgb, boxes[i:i + o.chunk], o.config))
                out.append(R.crop_cells(conv_forward(self.params, crops.to(o.device), o.config), o.config))
        return torch.cat(out, 0) if out else torch.zeros(0, o.config.feature_channels, 3, 3, device=o.device)


class CropFeatures:
    """Exact mode: every box its own 107 x 107 crop (MDNet)."""

    def __init__(self, config: ModelConfig, chunk: int = 128, device: torch.device = torch.device("cpu")):
        self.config, self.chunk, self.device = config, chunk, device

    def frame(self, params, rgb: np.ndarray, cover: np.ndarray, ref_box: np.ndarray,
              max_side: int) -> _CropFrame:
        return _CropFrame(self, params, rgb)

    def loss(self, rgb: np.ndarray, boxes: np.ndarray, labels: Tensor, cover: np.ndarray,
             ref_box: np.ndarray, max_side: int) -> Tuple[LossFn, tuple]:
        crops = R.to_tensor(R.crop_boxes(rgb, boxes, self.config)).to(self.device)
        return crop_loss(self.config), (crops, labels)


def make_features(mode: str, config: ModelConfig, dense: bool, chunk: int, device: torch.device):
    """The extractor of a tracking mode (``fast`` or ``exact``)."""
    return RegionFeatures(config, dense, device) if mode == "fast" else CropFeatures(config, chunk, device)
