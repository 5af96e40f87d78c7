"""Weights of the MetaSDNet tracker: our checkpoint format, imports, and the shipped-weights lookup.

Formats read by :func:`load_weights`:

- **ours** (``.pt``, written by :func:`save_weights` / :func:`save_checkpoint`): a torch file
  ``{"format": "metatrack-checkpoint", "version": 1, "state": {...}, "metadata": {...}}``. For a
  tracker the state holds ``model`` (``features.conv1.weight`` ... ``fc.fc6.bias``), ``alpha`` (the
  element-wise Meta-SGD rates, same keys and shapes), optionally ``attenuator`` (an L2F ``g_phi``
  state dict) with ``l2f_mode``/``l2f_layers``, and ``model_config`` (:class:`ModelConfig` as a dict).
  The metadata says how the weights were made (architecture, training command, data, date, ...).
- **official Meta-Tracker checkpoints** (torch files holding dicts ``meta_init`` and ``meta_alpha``
  keyed ``features.conv{1,2,3}.*`` and ``fc.fc{4,5,6}.*``; a ``.0`` Sequential index before the
  tensor name is accepted): mapped to our names, shapes checked against VGG-M's configuration.
- **MatConvNet** ``imagenet-vgg-m.mat``: conv1-conv3 filters (``[kh, kw, in, out]``) and biases
  from the ``layers`` cell array (scipy.io.loadmat); fc layers and rates are left to the caller
  (:func:`load_weights` fills them with the seeded untrained start and rates 1e-4).

Shipped weights are looked up by tracker name (:func:`find_weights`) in, in order: the folder or
file named by the environment variable ``METATRACK_WEIGHTS``, the installed package data
``tracker/_weights/``, and the repository's top-level ``weights/`` folder (editable installs).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from foundation.errors import UserError
from foundation.checkpoint import FORMAT, load_checkpoint, save_checkpoint, torch_load

__all__ = ["SDNetWeights", "save_weights",
           "load_weights", "load_mat", "load_official", "untrained_weights", "find_weights",
           "weights_dirs", "resolve_weights", "UntrainedWeightsWarning", "ENV_VAR"]

ENV_VAR = "METATRACK_WEIGHTS"
UNTRAINED_HINT = (f"put a trained checkpoint in weights/<name>.pt (see weights/README.md), point "
                  f"{ENV_VAR} at one, or pass weights=FILE (--weights FILE): our own .pt, an official "
                  "Meta-Tracker checkpoint, or imagenet-vgg-m.mat")


class UntrainedWeightsWarning(UserWarning):
    """The tracker runs with the seeded untrained start (no trained weights were found)."""


@dataclass
class SDNetWeights:
    """Everything the tracker needs from a checkpoint."""

    config: Any                                   # tracker.sdnet.model.ModelConfig
    params: Dict[str, Any]                        # name -> tensor (the start theta0)
    alpha: Optional[Dict[str, Any]] = None        # name -> element-wise rate (None: init rate)
    attenuator: Optional[Dict[str, Any]] = None   # L2F g_phi state dict
    l2f_mode: str = "sigmoid"
    l2f_layers: int = 2
    metadata: Dict[str, Any] = field(default_factory=dict)
    trained: bool = True
    source: str = ""


# ---------------------------------------------------------------- tracker weights
def _check_params(params: Mapping[str, Any], config: Any, source: str) -> Dict[str, Any]:
    import torch

    from .sdnet.model import param_shapes

    shapes = param_shapes(config)
    missing = sorted(set(shapes) - set(params))
    if missing:
        raise UserError(f"{source}: parameters missing: {', '.join(missing)}")
    out = {}
    for name, shape in shapes.items():
        t = torch.as_tensor(params[name]).float()
        if tuple(t.shape) != tuple(shape):
            raise UserError(f"{source}: {name} has shape {tuple(t.shape)}, expected {tuple(shape)} "
                            f"for the architecture {config}")
        out[name] = t
    return out


def save_weights(path: str, weights: SDNetWeights, metadata: Optional[Mapping[str, Any]] = None) -> str:
    """Save tracker weights in our format (metadata: architecture, training command, data, ...)."""
    state = {"model": {k: v.detach().cpu() for k, v in weights.params.items()},
             "model_config": weights.config.to_dict()}
    if weights.alpha is not None:
        state["alpha"] = {k: v.detach().cpu() for k, v in weights.alpha.items()}
    if weights.attenuator is not None:
        state["attenuator"] = {k: v.detach().cpu() for k, v in weights.attenuator.items()}
        state["l2f_mode"] = weights.l2f_mode
        state["l2f_layers"] = int(weights.l2f_layers)
    meta = {"architecture": weights.config.to_dict(), "trained": bool(weights.trained)}
    meta.update(weights.metadata)
    meta.update(dict(metadata or {}))
    return save_checkpoint(path, state, meta)


def untrained_weights(config: Any = None, seed: int = 0, alpha: float = 1e-4,
                      conv_alpha: float = 0.0) -> SDNetWeights:
    """The seeded, ImageNet-free start (see :func:`tracker.sdnet.model.init_params`) with
    element-wise rates ``alpha`` (Meta-SGD's initial value, 1e-4) on fc4-6 and ``conv_alpha`` on
    conv1-3. Without meta-learned rates a frame-1 step on random conv filters only scrambles them
    (the support loss rises 5x with 1e-4 there), so the untrained start keeps them fixed (0)."""
    import torch

    from .sdnet.model import ModelConfig, init_params

    config = config or ModelConfig.small()
    params = init_params(config, seed)
    rates = {k: torch.full_like(v, float(conv_alpha if k.startswith("features.") else alpha))
             for k, v in params.items()}
    return SDNetWeights(config, params, rates, metadata={"trained": False, "seed": seed,
                                                         "architecture": config.to_dict()},
                        trained=False, source=f"untrained (seed {seed})")


_OFFICIAL_KEY = None


def _official_name(key: str) -> Optional[str]:
    import re

    global _OFFICIAL_KEY
    if _OFFICIAL_KEY is None:
        _OFFICIAL_KEY = re.compile(r"^(?:module\.)?(features\.conv[123]|fc\.fc[456])(?:\.\d+)?\.(weight|bias)$")
    m = _OFFICIAL_KEY.match(key)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def load_official(path_or_obj: Any, source: str = "checkpoint") -> SDNetWeights:
    """An official Meta-Tracker checkpoint (``meta_init`` + ``meta_alpha``) -> our names (VGG-M)."""
    from .sdnet.model import ModelConfig

    obj = torch_load(path_or_obj) if isinstance(path_or_obj, (str, os.PathLike)) else path_or_obj
    source = str(path_or_obj) if isinstance(path_or_obj, (str, os.PathLike)) else source
    if not isinstance(obj, dict) or "meta_init" not in obj:
        raise UserError(f"{source}: not a Meta-Tracker checkpoint (no 'meta_init' dict)")

    def rename(d: Mapping[str, Any], what: str) -> Dict[str, Any]:
        out = {}
        for k, v in d.items():
            name = _official_name(str(k))
            if name is None:
                continue  # other heads/branches of the official code are not ours
            if name in out:
                raise UserError(f"{source}: {what} has two tensors for {name}")
            out[name] = v
        return out

    config = ModelConfig()
    params = _check_params(rename(obj["meta_init"], "meta_init"), config, f"{source} meta_init")
    alpha = None
    if obj.get("meta_alpha") is not None:
        alpha = _check_params(rename(obj["meta_alpha"], "meta_alpha"), config, f"{source} meta_alpha")
    return SDNetWeights(config, params, alpha, metadata={"imported_from": source,
                                                         "format": "meta-tracker"},
                        source=source)


def _mat_field(struct: Any, name: str) -> Any:
    try:
        return struct[name]
    except (KeyError, ValueError, IndexError, TypeError):
        return getattr(struct, name, None)


def load_mat(path: str, seed: int = 0) -> Dict[str, Any]:
    """conv1-conv3 of MatConvNet's ``imagenet-vgg-m.mat`` as our tensors (VGG-M shapes checked).

    The file holds ``layers``, a cell array of structs; conv layers have ``weights`` = {filters
    ``[kh, kw, in, out]``, biases}. The first three conv layers (by order, or by names
    ``conv1..conv3``) become ``features.conv{1,2,3}``.
    """
    import scipy.io
    import torch

    from .sdnet.model import ModelConfig, param_shapes

    if not os.path.isfile(path):
        raise UserError(f"weights file {path} does not exist")
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:  # noqa: BLE001
        raise UserError(f"cannot read {path} as a MATLAB .mat file: {str(err)[:200]}") from None
    layers = mat.get("layers")
    if layers is None:
        raise UserError(f"{path}: no 'layers' cell array (is this a MatConvNet model?)")
    layers = np.atleast_1d(layers)
    convs = []
    for layer in layers:
        ltype = _mat_field(layer, "type")
        weights = _mat_field(layer, "weights")
        if (ltype is not None and str(ltype) != "conv") or weights is None:
            continue
        weights = np.atleast_1d(weights)
        if len(weights) < 2:
            raise UserError(f"{path}: conv layer {_mat_field(layer, 'name')} lacks filters or biases")
        convs.append((str(_mat_field(layer, "name")), np.asarray(weights[0]), np.asarray(weights[1])))
    if len(convs) < 3:
        raise UserError(f"{path}: found {len(convs)} conv layers, need conv1-conv3")
    shapes = param_shapes(ModelConfig())
    out: Dict[str, Any] = {}
    for i, (lname, filters, biases) in enumerate(convs[:3], start=1):
        want = shapes[f"features.conv{i}.weight"]                 # out, in, kh, kw
        mat_shape = (want[2], want[3], want[1], want[0])            # kh, kw, in, out
        if filters.shape != mat_shape:
            raise UserError(f"{path}: layer {lname} (conv{i}) filters have shape {filters.shape}, "
                            f"expected {mat_shape} ([kh, kw, in, out] of VGG-M)")
        biases = biases.reshape(-1)
        if biases.shape != (want[0],):
            raise UserError(f"{path}: layer {lname} (conv{i}) has {biases.size} biases, "
                            f"expected {want[0]}")
        out[f"features.conv{i}.weight"] = torch.from_numpy(
            np.ascontiguousarray(filters.transpose(3, 2, 0, 1)).astype(np.float32))
        out[f"features.conv{i}.bias"] = torch.from_numpy(biases.astype(np.float32))
    return out


def load_weights(path: str, seed: int = 0) -> SDNetWeights:
    """Tracker weights from our ``.pt``, an official checkpoint, or a MatConvNet ``.mat``."""
    from .sdnet.model import ModelConfig

    if str(path).lower().endswith(".mat"):
        base = untrained_weights(ModelConfig(), seed)
        base.params.update(load_mat(path))
        base.metadata = {"imported_from": str(path), "format": "matconvnet",
                         "note": "conv1-3 from the .mat; fc4-6 seeded untrained, rates 1e-4"}
        base.trained, base.source = True, str(path)
        return base
    obj = torch_load(path)
    if isinstance(obj, dict) and "meta_init" in obj:
        return load_official(obj, str(path))
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{path}: unknown weights format (expected a metatrack checkpoint, an "
                        "official Meta-Tracker checkpoint with meta_init/meta_alpha, or a .mat)")
    state, metadata = load_checkpoint(path)
    if "model" not in state:
        raise UserError(f"{path}: checkpoint holds no tracker weights ('model' missing)")
    config = ModelConfig.from_dict(state.get("model_config") or metadata.get("architecture") or {})
    params = _check_params(state["model"], config, str(path))
    alpha = _check_params(state["alpha"], config, f"{path} alpha") if state.get("alpha") else None
    return SDNetWeights(config, params, alpha, state.get("attenuator"),
                        str(state.get("l2f_mode", "sigmoid")), int(state.get("l2f_layers", 2)),
                        metadata, trained=bool(metadata.get("trained", True)), source=str(path))


# ---------------------------------------------------------------- shipped weights
def weights_dirs() -> list:
    """Where shipped weights are looked for, in order (existing folders only)."""
    here = os.path.dirname(os.path.abspath(__file__))
    places = []
    env = os.environ.get(ENV_VAR)
    if env:
        places.append(env)
    places.append(os.path.join(here, "_weights"))
    places.append(os.path.join(os.path.dirname(here), "weights"))
    return [p for p in places if os.path.isdir(p)]


def find_weights(name: str) -> Optional[str]:
    """The shipped checkpoint for tracker ``name`` (``<name>.pt``, then ``<name>.pth``), or None.

    ``METATRACK_WEIGHTS`` may also name a file directly: it is then used for every tracker name.
    """
    env = os.environ.get(ENV_VAR)
    if env and os.path.isfile(env):
        return env
    for folder in weights_dirs():
        for ext in (".pt", ".pth"):
            path = os.path.join(folder, name + ext)
            if os.path.isfile(path):
                return path
    return None


_WARNED: set = set()


def resolve_weights(name: str, weights: Any = None, config: Any = None, seed: int = 0,
                    fallback: Tuple[str, ...] = ()) -> SDNetWeights:
    """Weights for tracker ``name``: ``weights`` (a path or :class:`SDNetWeights`) if given, else
    the shipped ``<name>.pt`` (or one of ``fallback`` names), else the untrained start with ONE
    :class:`UntrainedWeightsWarning` per name and process."""
    if isinstance(weights, SDNetWeights):
        return weights
    if weights is not None:
        return load_weights(os.fspath(weights), seed)
    for candidate in (name, *fallback):
        path = find_weights(candidate)
        if path is not None:
            return load_weights(path, seed)
    w = untrained_weights(config, seed)
    if name not in _WARNED:
        _WARNED.add(name)
        warnings.warn(f"tracker {name!r} runs with UNTRAINED weights (a seeded start, no meta-"
                      f"training): expect poor accuracy; {UNTRAINED_HINT}",
                      UntrainedWeightsWarning, stacklevel=3)
    return w
