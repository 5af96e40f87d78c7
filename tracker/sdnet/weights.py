"""MetaSDNet weights: our files, official Meta-Tracker checkpoints, MatConvNet's VGG-M, and the
seeded untrained start.

Formats read by :func:`load_weights`:

- **ours** (``.pt``, :func:`save_weights`): the layout of :mod:`tracker.weights` with the payload
  ``model_config`` (:class:`ModelConfig` as a dict); tensors ``features.conv1.weight`` ...
  ``fc.fc6.bias``.
- **official Meta-Tracker checkpoints** (torch files holding dicts ``meta_init`` and
  ``meta_alpha`` keyed ``features.conv{1,2,3}.*`` and ``fc.fc{4,5,6}.*``; a ``.0`` Sequential
  index before the tensor name is accepted): mapped to our names, shapes checked against VGG-M.
- **MatConvNet** ``imagenet-vgg-m.mat`` (:mod:`tracker.matconvnet`): conv1-conv3; fc4-6 get the
  seeded untrained start and rates 1e-4.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from foundation.checkpoint import FORMAT, torch_load
from foundation.errors import UserError

from ..weights import (
    TrackerWeights,
    common_fields,
    find_weights,
    read_tracker_state,
    save_tracker_weights,
    warn_untrained,
)
from .model import ModelConfig, init_params, param_shapes

__all__ = ["FAMILY", "SDNetWeights", "save_weights", "load_weights", "load_mat", "load_official",
           "untrained_weights", "resolve_weights"]

FAMILY = "metasdnet"


@dataclass(kw_only=True)
class SDNetWeights(TrackerWeights):
    """Everything the MetaSDNet tracker needs from a checkpoint: the common fields and the
    architecture."""

    family = FAMILY
    config: ModelConfig

    def payload(self) -> Dict[str, Any]:
        return {"model_config": self.config.to_dict()}


def fc_names(params: Mapping[str, Any]) -> Tuple[str, ...]:
    return tuple(k for k in params if k.startswith("fc."))


def _check_params(params: Mapping[str, Any], config: ModelConfig, source: str) -> Dict[str, Any]:
    import torch

    shapes = param_shapes(config)
    missing = sorted(set(shapes) - set(params))
    if missing:
        raise UserError(f"{source}: parameters missing: {', '.join(missing)}")
    out = {}
    for name, shape in shapes.items():
        t = torch.as_tensor(params[name]).float()   # device: where the file was mapped to
        if tuple(t.shape) != tuple(shape):
            raise UserError(f"{source}: {name} has shape {tuple(t.shape)}, expected {tuple(shape)} "
                            f"for the architecture {config}")
        out[name] = t
    return out


def save_weights(path: str, weights: SDNetWeights, metadata: Optional[Mapping[str, Any]] = None) -> str:
    """Save MetaSDNet weights in our format (metadata: architecture, training command, data, ...)."""
    return save_tracker_weights(path, weights, {"architecture": weights.config.to_dict(),
                                                **dict(metadata or {})})


def untrained_weights(config: Optional[ModelConfig] = None, seed: int = 0, alpha: float = 1e-4,
                      conv_alpha: float = 0.0) -> SDNetWeights:
    """The seeded, ImageNet-free start (see :func:`tracker.sdnet.model.init_params`) with
    element-wise rates ``alpha`` (Meta-SGD's initial value, 1e-4) on fc4-6 and ``conv_alpha`` on
    conv1-3. Without meta-learned rates a frame-1 step on random conv filters only scrambles them
    (the support loss rises 5x with 1e-4 there), so the untrained start adapts fc4-6 only."""
    import torch

    config = config or ModelConfig.small()
    params = init_params(config, seed)
    rates = {k: torch.full_like(v, float(conv_alpha if k.startswith("features.") else alpha))
             for k, v in params.items()}
    adapted = tuple(params) if conv_alpha else fc_names(params)
    return SDNetWeights(config=config, params=params, alpha=rates, adapted=adapted,
                        metadata={"trained": False, "seed": seed, "architecture": config.to_dict()},
                        trained=False, source=f"untrained (seed {seed})")


_OFFICIAL_KEY = re.compile(r"^(?:module\.)?(features\.conv[123]|fc\.fc[456])(?:\.\d+)?\.(weight|bias)$")


def load_official(path_or_obj: Any, source: str = "checkpoint", map_location: Any = "cpu") -> SDNetWeights:
    """An official Meta-Tracker checkpoint (``meta_init`` + ``meta_alpha``) -> our names (VGG-M);
    every layer adapts at frame 1, as Meta-Tracker's. A path's tensors load onto ``map_location``."""
    obj = torch_load(path_or_obj, map_location) if isinstance(path_or_obj, (str, os.PathLike)) else path_or_obj
    source = str(path_or_obj) if isinstance(path_or_obj, (str, os.PathLike)) else source
    if not isinstance(obj, dict) or "meta_init" not in obj:
        raise UserError(f"{source}: not a Meta-Tracker checkpoint (no 'meta_init' dict)")

    def rename(d: Mapping[str, Any], what: str) -> Dict[str, Any]:
        out = {}
        for k, v in d.items():
            m = _OFFICIAL_KEY.match(str(k))
            if m is None:
                continue  # other heads/branches of the official code are not ours
            name = f"{m.group(1)}.{m.group(2)}"
            if name in out:
                raise UserError(f"{source}: {what} has two tensors for {name}")
            out[name] = v
        return out

    config = ModelConfig()
    params = _check_params(rename(obj["meta_init"], "meta_init"), config, f"{source} meta_init")
    alpha = None
    if obj.get("meta_alpha") is not None:
        alpha = _check_params(rename(obj["meta_alpha"], "meta_alpha"), config, f"{source} meta_alpha")
    return SDNetWeights(config=config, params=params, alpha=alpha, adapted=tuple(params),
                        metadata={"imported_from": source, "format": "meta-tracker"}, source=source)


def load_mat(path: str) -> Dict[str, Any]:
    """conv1-conv3 of MatConvNet's ``imagenet-vgg-m.mat`` as our tensors (VGG-M shapes checked):
    the file's first three conv layers become ``features.conv{1,2,3}``."""
    import torch

    from ..matconvnet import read_conv_layers, to_torch

    if not os.path.isfile(path):
        raise UserError(f"weights file {path} does not exist")
    convs = read_conv_layers(path)
    if len(convs) < 3:
        raise UserError(f"{path}: found {len(convs)} conv layers, need conv1-conv3")
    shapes = param_shapes(ModelConfig())
    out: Dict[str, Any] = {}
    for i, layer in enumerate(convs[:3], start=1):
        want = shapes[f"features.conv{i}.weight"]                 # out, in, kh, kw
        mat_shape = (want[2], want[3], want[1], want[0])            # kh, kw, in, out
        if layer.filters.shape != mat_shape:
            raise UserError(f"{path}: layer {layer.name} (conv{i}) filters have shape "
                            f"{layer.filters.shape}, expected {mat_shape} ([kh, kw, in, out] of VGG-M)")
        if layer.biases.shape != (want[0],):
            raise UserError(f"{path}: layer {layer.name} (conv{i}) has {layer.biases.size} biases, "
                            f"expected {want[0]}")
        out[f"features.conv{i}.weight"] = to_torch(layer.filters)
        out[f"features.conv{i}.bias"] = torch.from_numpy(layer.biases.astype(np.float32))  # device: CPU, as read
    return out


def _adapted_before_it_was_recorded(params: Mapping[str, Any], alpha: Optional[Mapping[str, Any]],
                                    attenuator: Optional[Mapping[str, Any]], source: str) -> Tuple[str, ...]:
    """Files written before ``adapted`` was recorded (metatrack 0.1): the attenuator's input
    width tells (12 tensors = all layers, 6 = fc4-6); without one, all layers unless every conv
    rate is 0 (then the step leaves conv unchanged and fc4-6 alone adapt)."""
    import torch

    names, fc = tuple(params), fc_names(params)
    if attenuator is not None:
        width = int([v for k, v in attenuator.items() if k.endswith("weight")][0].shape[1])
        if width in (len(names), len(fc)):
            return names if width == len(names) else fc
        raise UserError(f"{source}: the L2F attenuator takes {width} inputs; the network has "
                        f"{len(names)} tensors ({len(fc)} in fc4-6)")
    if alpha is not None and all(float(torch.as_tensor(v).abs().max()) == 0.0   # device: v's
                                 for k, v in alpha.items() if k.startswith("features.")):
        return fc
    return names


def load_weights(path: str, seed: int = 0, map_location: Any = "cpu") -> SDNetWeights:
    """MetaSDNet weights from our ``.pt``, an official checkpoint, or a MatConvNet ``.mat``;
    torch files load onto ``map_location`` (a ``.mat`` and the seeded parts stay on the CPU until
    the tracker moves them)."""
    if str(path).lower().endswith(".mat"):
        base = untrained_weights(ModelConfig(), seed)
        base.params.update(load_mat(path))
        base.metadata = {"imported_from": str(path), "format": "matconvnet",
                         "note": "conv1-3 from the .mat; fc4-6 seeded untrained, rates 1e-4"}
        base.trained, base.source = True, str(path)
        return base
    obj = torch_load(path, map_location)
    if isinstance(obj, dict) and "meta_init" in obj:
        return load_official(obj, str(path))
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{path}: unknown weights format (expected a metatrack checkpoint, an "
                        "official Meta-Tracker checkpoint with meta_init/meta_alpha, or a .mat)")
    state, metadata = read_tracker_state(path, FAMILY, map_location)
    config = ModelConfig.from_dict(state.get("model_config") or metadata.get("architecture") or {})
    params = _check_params(state["model"], config, str(path))
    alpha = _check_params(state["alpha"], config, f"{path} alpha") if state.get("alpha") else None
    fields = common_fields(state, metadata, str(path), old_l2f_mode="sigmoid")
    if not fields["adapted"]:
        fields["adapted"] = _adapted_before_it_was_recorded(params, alpha, fields["attenuator"], str(path))
    unknown = sorted(set(fields["adapted"]) - set(params))
    if unknown:
        raise UserError(f"{path}: adapted tensors {', '.join(unknown)} are not in the network")
    return SDNetWeights(config=config, params=params, alpha=alpha, **fields)


def resolve_weights(name: str, weights: Any = None, config: Optional[ModelConfig] = None, seed: int = 0,
                    fallback: Tuple[str, ...] = (), map_location: Any = "cpu") -> SDNetWeights:
    """Weights for tracker ``name``: ``weights`` (a path or :class:`SDNetWeights`) if given, else
    the shipped ``<name>.pt`` (or one of ``fallback`` names), else the untrained start with ONE
    :class:`~tracker.weights.UntrainedWeightsWarning` per name and process. Files load onto
    ``map_location``."""
    if isinstance(weights, SDNetWeights):
        return weights
    if weights is not None:
        return load_weights(os.fspath(weights), seed, map_location)
    for candidate in (name, *fallback):
        path = find_weights(candidate)
        if path is not None:
            return load_weights(path, seed, map_location)
    warn_untrained(name, "runs with UNTRAINED weights (a seeded start, no meta-training): expect "
                         "poor accuracy")
    return untrained_weights(config, seed)
