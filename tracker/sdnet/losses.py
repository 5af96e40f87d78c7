"""MetaSDNet's loss, in one place for the tracker's frame-1 step, its meta-training and pretraining.

The loss is MDNet's summed binary cross entropy (:func:`tracker.sdnet.model.binary_loss`) of the
fc4-6 logits of conv3 features; what differs is only where the features come from:

- :func:`fc_loss`: features given (conv fixed, computed once);
- :func:`crop_loss`: 107 x 107 crops through conv1-3 (exact mode, MDNet's way);
- :func:`region_loss`: conv1-3 once on a search region, boxes pooled by RoIAlign (fast mode and
  meta-training), differentiable through the conv layers.
"""
from __future__ import annotations

from typing import Callable, Mapping, Tuple

from torch import Tensor

from . import roi_align as R
from .model import ModelConfig, binary_loss, conv_forward, conv_forward_dense, fc_forward

__all__ = ["fc_loss", "crop_loss", "region_loss", "region_conv", "pool_region"]

LossFn = Callable[[Mapping[str, Tensor], Tuple], Tensor]


def fc_loss(params: Mapping[str, Tensor], batch: Tuple[Tensor, Tensor]) -> Tensor:
    """The loss of fc4-6 on given conv3 features: ``batch = (features, labels)``."""
    feats, labels = batch
    return binary_loss(fc_forward(params, feats), labels)


def crop_loss(config: ModelConfig) -> LossFn:
    """The loss of ``batch = (crops N x 3 x 107 x 107, labels)`` through every layer."""
    def loss_fn(params: Mapping[str, Tensor], batch: Tuple[Tensor, Tensor]) -> Tensor:
        crops, labels = batch
        return binary_loss(fc_forward(params, R.crop_cells(conv_forward(params, crops, config), config)), labels)

    return loss_fn


def region_conv(params: Mapping[str, Tensor], x: Tensor, config: ModelConfig, dense: bool) -> Tensor:
    """conv1-3 on a search region: stride 8 with ``dense`` (pool2 s1 + dilated conv3), else 16."""
    return (conv_forward_dense if dense else conv_forward)(params, x, config)


def pool_region(fmap: Tensor, grid: Tensor, config: ModelConfig) -> Tensor:
    """RoIAlign of the boxes whose sampling ``grid`` is given (``N x C x 3 x 3``)."""
    return R.roi_align(fmap, grid, R.grid_cells(config))


def region_loss(config: ModelConfig, dense: bool = False) -> LossFn:
    """The loss of ``batch = (region 1 x 3 x H x W, RoIAlign grid, labels)`` through every layer."""
    def loss_fn(params: Mapping[str, Tensor], batch: Tuple[Tensor, Tensor, Tensor]) -> Tensor:
        x, grid, labels = batch
        feats = pool_region(region_conv(params, x, config, dense), grid, config)
        return binary_loss(fc_forward(params, feats), labels)

    return loss_fn
