"""MetaCREST weights: backbone, target-model start, rates, L2F attenuator and the geometry they
were trained with, in the one layout of :mod:`tracker.weights`.

Payload (``family = "metacrest"``) beside the common ``model`` / ``alpha`` / ``attenuator`` /
``adapted``::

    backbone   {kind, params, config, feature_scale}     (tracker.crest.backbone.Backbone.state)
    options    CRESTOptions fields the weights were trained with (window, target size, lrs)

``model`` holds conv1.weight, conv1.bias, cf.weight, cf.bias (cf at template size). The official
MetaCREST checkpoint (``meta_init`` / ``meta_alpha`` with ``conv1.*`` and ``cf.*``) holds only the
target model; its backbone is VGG-16, which the user supplies (``backbone=``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
from torch import Tensor

from foundation.checkpoint import torch_load
from foundation.errors import UserError

from ..weights import (
    TrackerWeights,
    common_fields,
    find_weights,
    read_tracker_state,
    save_tracker_weights,
    warn_untrained,
)
from .backbone import Backbone
from .dcf import PARAM_NAMES, load_official_crest, param_shapes

__all__ = ["FAMILY", "CRESTWeights", "save_crest_weights", "load_crest_weights", "resolve_crest_weights"]

FAMILY = "metacrest"


@dataclass(kw_only=True)
class CRESTWeights(TrackerWeights):
    """Everything MetaCREST needs from a checkpoint: the common fields, the backbone and the
    tracking options the weights were trained with."""

    family = FAMILY
    backbone: Backbone
    options: Dict[str, Any] = field(default_factory=dict)

    def payload(self) -> Dict[str, Any]:
        return {"backbone": self.backbone.state(), "options": dict(self.options)}


def _check(params: Dict[str, Any], backbone: Backbone, source: str, what: str) -> Dict[str, Tensor]:
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise UserError(f"{source}: {what} lacks {', '.join(missing)}")
    out = {k: torch.as_tensor(params[k]).detach().float() for k in PARAM_NAMES}   # device: as mapped
    w1, wc = out["conv1.weight"], out["cf.weight"]
    if w1.dim() != 4 or wc.dim() != 4:
        raise UserError(f"{source}: {what} conv1.weight / cf.weight must be 4-D")
    expected = param_shapes(backbone.out_channels, tuple(wc.shape[-2:]), int(w1.shape[0]))
    for k in PARAM_NAMES:
        if tuple(out[k].shape) != expected[k]:
            raise UserError(f"{source}: {what} {k} has shape {tuple(out[k].shape)}, expected "
                            f"{expected[k]} for a {backbone.out_channels}-channel backbone")
    return out


def save_crest_weights(path: str, weights: CRESTWeights, metadata: Optional[Dict[str, Any]] = None) -> str:
    """Write MetaCREST weights atomically in the one layout."""
    return save_tracker_weights(path, weights, metadata)


def load_crest_weights(path: str, backbone: Any = None, map_location: Any = "cpu") -> CRESTWeights:
    """Our MetaCREST ``.pt``, or an official MetaCREST checkpoint with ``backbone`` = VGG-16
    (``imagenet-vgg-verydeep-16.mat``, a state-dict file, or a :class:`Backbone`). The file's
    tensors load onto ``map_location`` (a VGG-16 given as a file stays on the CPU until the
    tracker moves its backbone)."""
    path = os.fspath(path)
    obj = torch_load(path, map_location)
    if isinstance(obj, dict) and "meta_init" in obj:
        if backbone is None:
            raise UserError(f"{path} is an official MetaCREST checkpoint (target model only): also "
                            "give its VGG-16 backbone, imagenet-vgg-verydeep-16.mat or a torch "
                            "state dict (--backbone FILE)")
        bb = backbone if isinstance(backbone, Backbone) else Backbone.vgg16(backbone)
        init, alpha = load_official_crest(obj, in_channels=bb.out_channels)
        # the official code meta-trains on raw VGG-16 features: its own tracking lrs apply
        return CRESTWeights(backbone=bb, params=init, alpha=alpha,
                            metadata={"imported_from": path, "format": "official"}, source=path)
    state, metadata = read_tracker_state(path, FAMILY, map_location)
    bb = backbone if isinstance(backbone, Backbone) else (
        Backbone.vgg16(backbone) if backbone is not None else Backbone.from_state(state["backbone"]))
    params = _check(state["model"], bb, path, "model")
    alpha = _check(state["alpha"], bb, path, "alpha") if state.get("alpha") else None
    for k in PARAM_NAMES if alpha is not None else ():
        if alpha[k].shape != params[k].shape:
            raise UserError(f"{path}: alpha {k} has shape {tuple(alpha[k].shape)}, expected its weight's "
                            f"{tuple(params[k].shape)}")
    return CRESTWeights(backbone=bb, params=params, alpha=alpha, options=dict(state.get("options") or {}),
                        **common_fields(state, metadata, path, old_l2f_mode="identity"))



def resolve_crest_weights(name: str, weights: Any = None, backbone: Any = None,
                          fallback: tuple = (), map_location: Any = "cpu") -> Optional[CRESTWeights]:
    """Weights for tracker ``name``: ``weights`` (a path or :class:`CRESTWeights`), else the
    shipped ``<name>.pt`` or one of ``fallback``; None when there are none (the caller then
    builds an untrained start on :func:`default_backbone`). Files load onto ``map_location``."""
    if isinstance(weights, CRESTWeights):
        return weights
    if weights is not None:
        return load_crest_weights(weights, backbone, map_location)
    for candidate in (name, *fallback):
        path = find_weights(candidate)
        if path is not None:
            return load_crest_weights(path, backbone, map_location)
    return None


def default_backbone(name: str, backbone: Any = None) -> Backbone:
    """The backbone when no MetaCREST weights exist: the one given, else EfficientNet-Lite0's
    ImageNet features as the shipped weights read them (one warning: the target model then
    starts untrained)."""
    if isinstance(backbone, Backbone):
        return backbone
    if backbone is not None:
        return Backbone.vgg16(backbone)
    warn_untrained(name, "has no MetaCREST weights: the target model starts untrained on "
                         "EfficientNet-Lite0's ImageNet features")
    return Backbone.efficientnet()
