"""MetaCREST weights: backbone, target-model start, rates, L2F attenuator and the geometry they
were trained with, in one of our checkpoint files (:func:`foundation.checkpoint.save_checkpoint`).

State layout (``family = "metacrest"``)::

    backbone   {kind, params, config, feature_scale}     (tracker.crest.backbone.Backbone.state)
    model      conv1.weight, conv1.bias, cf.weight, cf.bias   (the start; cf at template size)
    alpha      same keys and shapes (element-wise Meta-SGD rates)
    attenuator L2F g_phi state dict, with l2f_mode / l2f_layers       (optional)
    options    CRESTOptions fields the weights were trained with (window, target size, lrs)

The official MetaCREST checkpoint (``meta_init`` / ``meta_alpha`` with ``conv1.*`` and ``cf.*``)
holds only the target model; its backbone is VGG-16, which the user supplies (``backbone=``).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
from torch import Tensor

from foundation.errors import UserError
from foundation.checkpoint import load_checkpoint, save_checkpoint, torch_load
from ..weights import UNTRAINED_HINT, UntrainedWeightsWarning, find_weights, resolve_weights
from .backbone import Backbone
from .dcf import PARAM_NAMES, load_official_crest, param_shapes

__all__ = ["FAMILY", "CRESTWeights", "save_crest_weights", "load_crest_weights", "resolve_crest_weights"]

FAMILY = "metacrest"


@dataclass
class CRESTWeights:
    """Everything MetaCREST needs from a checkpoint."""

    backbone: Backbone
    params: Dict[str, Tensor]                      # target-model start (template-sized cf)
    alpha: Optional[Dict[str, Tensor]] = None      # element-wise rates (None: no meta step)
    attenuator: Optional[Dict[str, Tensor]] = None
    l2f_mode: str = "identity"
    l2f_layers: int = 2
    options: Dict[str, Any] = field(default_factory=dict)
    metadata: Dict[str, Any] = field(default_factory=dict)
    trained: bool = True
    source: str = ""


def _check(params: Dict[str, Any], backbone: Backbone, source: str, what: str) -> Dict[str, Tensor]:
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise UserError(f"{source}: {what} lacks {', '.join(missing)}")
    out = {k: torch.as_tensor(params[k]).detach().float() for k in PARAM_NAMES}
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
    """Write MetaCREST weights atomically in our checkpoint format."""
    state: Dict[str, Any] = {"family": FAMILY, "backbone": weights.backbone.state(),
                             "model": {k: v.detach().cpu() for k, v in weights.params.items()},
                             "options": dict(weights.options)}
    if weights.alpha is not None:
        state["alpha"] = {k: v.detach().cpu() for k, v in weights.alpha.items()}
    if weights.attenuator is not None:
        state["attenuator"] = {k: v.detach().cpu() for k, v in weights.attenuator.items()}
        state["l2f_mode"], state["l2f_layers"] = weights.l2f_mode, int(weights.l2f_layers)
    meta = {"family": FAMILY, "trained": bool(weights.trained), **weights.metadata, **(metadata or {})}
    return save_checkpoint(path, state, meta)


def load_crest_weights(path: str, backbone: Any = None) -> CRESTWeights:
    """Our MetaCREST ``.pt``, or an official MetaCREST checkpoint with ``backbone`` = VGG-16
    (``imagenet-vgg-verydeep-16.mat``, a state-dict file, or a :class:`Backbone`)."""
    path = os.fspath(path)
    obj = torch_load(path)
    if isinstance(obj, dict) and "meta_init" in obj:
        if backbone is None:
            raise UserError(f"{path} is an official MetaCREST checkpoint (target model only): also "
                            "give its VGG-16 backbone, imagenet-vgg-verydeep-16.mat or a torch "
                            "state dict (--backbone FILE)")
        bb = backbone if isinstance(backbone, Backbone) else Backbone.vgg16(backbone)
        init, alpha = load_official_crest(obj, in_channels=bb.out_channels)
        # the official code meta-trains on raw VGG-16 features: its own tracking lrs apply
        return CRESTWeights(bb, init, alpha, metadata={"imported_from": path, "format": "official"},
                            source=path)
    state, metadata = load_checkpoint(path)
    if state.get("family") != FAMILY:
        raise UserError(f"{path} holds {state.get('family') or 'MetaSDNet'} weights, not MetaCREST's")
    bb = backbone if isinstance(backbone, Backbone) else (
        Backbone.vgg16(backbone) if backbone is not None else Backbone.from_state(state["backbone"]))
    params = _check(state["model"], bb, path, "model")
    alpha = _check(state["alpha"], bb, path, "alpha") if state.get("alpha") else None
    for k in PARAM_NAMES if alpha is not None else ():
        if alpha[k].shape != params[k].shape:
            raise UserError(f"{path}: alpha {k} has shape {tuple(alpha[k].shape)}, expected its weight's "
                            f"{tuple(params[k].shape)}")
    return CRESTWeights(bb, params, alpha, state.get("attenuator"), str(state.get("l2f_mode", "identity")),
                        int(state.get("l2f_layers", 2)), dict(state.get("options") or {}), metadata,
                        trained=bool(metadata.get("trained", True)), source=path)


_WARNED: set = set()


def resolve_crest_weights(name: str, weights: Any = None, backbone: Any = None,
                          fallback: tuple = ()) -> Optional[CRESTWeights]:
    """Weights for tracker ``name``: ``weights`` (a path or :class:`CRESTWeights`), else the
    shipped ``<name>.pt`` or one of ``fallback``; None when there are none (the caller then
    builds an untrained start on :func:`default_backbone`)."""
    if isinstance(weights, CRESTWeights):
        return weights
    if weights is not None:
        return load_crest_weights(weights, backbone)
    for candidate in (name, *fallback):
        path = find_weights(candidate)
        if path is not None:
            return load_crest_weights(path, backbone)
    return None


def default_backbone(name: str, backbone: Any = None) -> Backbone:
    """The backbone when no MetaCREST weights exist: the one given, else the conv layers of the
    shipped MetaSDNet weights (one warning: the target model then starts untrained)."""
    if isinstance(backbone, Backbone):
        return backbone
    if backbone is not None:
        return Backbone.vgg16(backbone)
    if name not in _WARNED:
        _WARNED.add(name)
        warnings.warn(f"tracker {name!r} has no MetaCREST weights: the target model starts "
                      f"untrained on the MetaSDNet conv layers; {UNTRAINED_HINT}",
                      UntrainedWeightsWarning, stacklevel=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        return Backbone.from_sdnet(resolve_weights("metasdnet"))
