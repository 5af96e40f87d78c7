"""Tracker weights of every family: one file layout, the shipped-weights lookup, and the
frame-1 learner a weights file defines.

A weights file is a :mod:`foundation.checkpoint` file whose state holds, for any family::

    family      "metasdnet" | "metacrest" (files without it are MetaSDNet's)
    model       the meta-learned start theta0, name -> tensor
    alpha       element-wise Meta-SGD rates, same names and shapes (optional)
    attenuator  the L2F g_phi state dict, with l2f_mode, l2f_layers and l2f_input (optional)
    adapted     the names of the tensors the frame-1 step adapts, in order (the attenuator's inputs)

and beside them the family's payload (:meth:`TrackerWeights.payload`): ``model_config`` for
MetaSDNet (:mod:`tracker.sdnet.weights`), ``backbone`` and ``options`` for MetaCREST
(:mod:`tracker.crest.weights`). The metadata says how the weights were made (command, data, date).

Shipped weights are looked up by tracker name (:func:`find_weights`) in, in order: the folder or
file named by the environment variable ``METATRACK_WEIGHTS``, the installed package data
``tracker/_weights/``, and the repository's top-level ``weights/`` folder (editable installs).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple

from foundation.checkpoint import load_checkpoint, save_checkpoint
from foundation.errors import UserError

__all__ = ["TrackerWeights", "save_tracker_weights", "read_tracker_state", "common_fields",
           "frame1_learner", "find_weights", "weights_dirs", "warn_untrained",
           "UntrainedWeightsWarning", "UNTRAINED_HINT", "ENV_VAR"]

ENV_VAR = "METATRACK_WEIGHTS"
UNTRAINED_HINT = (f"put a trained checkpoint in weights/<name>.pt (see weights/README.md), point "
                  f"{ENV_VAR} at one, or pass weights=FILE (--weights FILE): our own .pt, an official "
                  "Meta-Tracker checkpoint, or imagenet-vgg-m.mat")
DEFAULT_FAMILY = "metasdnet"     # files written before the family was recorded
FAMILY_NAMES = {"metasdnet": "MetaSDNet", "metacrest": "MetaCREST"}


class UntrainedWeightsWarning(UserWarning):
    """The tracker runs with the seeded untrained start (no trained weights were found)."""


@dataclass(kw_only=True)
class TrackerWeights:
    """What every family's weights hold: the start, its rates, the attenuator, and which tensors
    the frame-1 step adapts. Families subclass it with their payload (architecture, backbone)."""

    family: ClassVar[str] = ""
    params: Dict[str, Any]                        # name -> tensor: the start theta0
    alpha: Optional[Dict[str, Any]] = None        # name -> element-wise rate (None: initial rate)
    attenuator: Optional[Dict[str, Any]] = None   # L2F g_phi state dict
    l2f_mode: str = "sigmoid"
    l2f_layers: int = 2
    l2f_input: str = "mean"                       # g_phi's embedding (meta_learning.l2f.INPUTS)
    adapted: Tuple[str, ...] = ()                 # tensors the frame-1 step adapts (empty: all)
    metadata: Dict[str, Any] = field(default_factory=dict)
    trained: bool = True
    source: str = ""

    def adapted_names(self) -> Tuple[str, ...]:
        return tuple(self.adapted) or tuple(self.params)

    def payload(self) -> Dict[str, Any]:
        """The family's own state entries (written beside the common ones)."""
        return {}


def _cpu(tensors: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v.detach().cpu() for k, v in tensors.items()}


def save_tracker_weights(path: str, weights: TrackerWeights,
                         metadata: Optional[Mapping[str, Any]] = None) -> str:
    """Write ``weights`` atomically in the one layout (metadata: command, data, date, ...)."""
    state: Dict[str, Any] = {"family": weights.family, "model": _cpu(weights.params),
                             "adapted": list(weights.adapted_names()), **weights.payload()}
    if weights.alpha is not None:
        state["alpha"] = _cpu(weights.alpha)
    if weights.attenuator is not None:
        state["attenuator"] = _cpu(weights.attenuator)
        state["l2f_mode"], state["l2f_layers"] = weights.l2f_mode, int(weights.l2f_layers)
        state["l2f_input"] = weights.l2f_input
    meta = {"family": weights.family, "trained": bool(weights.trained), **weights.metadata,
            **dict(metadata or {})}
    return save_checkpoint(path, state, meta)


def read_tracker_state(path: str, family: str, map_location: Any = "cpu") -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(state, metadata)`` of a weights file of ``family``, its tensors on ``map_location``
    (a tracker's device); another family's file or a checkpoint without weights is a one-line error."""
    state, metadata = load_checkpoint(path, map_location)
    if "model" not in state:
        raise UserError(f"{path}: checkpoint holds no tracker weights ('model' missing)")
    found = state.get("family") or DEFAULT_FAMILY
    if found != family:
        raise UserError(f"{path} holds {FAMILY_NAMES.get(found, found)} weights, not "
                        f"{FAMILY_NAMES.get(family, family)}'s")
    return state, metadata


def common_fields(state: Mapping[str, Any], metadata: Mapping[str, Any], source: str,
                  l2f_mode: str) -> Dict[str, Any]:
    """The :class:`TrackerWeights` fields every family reads the same way from a state."""
    return {"attenuator": state.get("attenuator"), "l2f_mode": str(state.get("l2f_mode", l2f_mode)),
            "l2f_layers": int(state.get("l2f_layers", 2)), "l2f_input": str(state.get("l2f_input", "mean")),
            "adapted": tuple(str(n) for n in state.get("adapted") or ()),
            "metadata": dict(metadata), "trained": bool(metadata.get("trained", True)),
            "source": source}


def frame1_learner(weights: TrackerWeights, model: Any, inner_steps: int, initial_rate: float):
    """The engine a tracker's frame-1 step runs through: ``model`` holds the start; the rates,
    the L2F attenuator and the adapted tensors come from ``weights`` (``initial_rate`` where the
    weights carry no rates). First order: a tracker adapts, it does not meta-learn."""
    from meta_learning import MetaConfig, MetaLearner
    from meta_learning.l2f import INPUTS

    adapted = list(weights.adapted_names())
    if weights.attenuator is not None:
        if weights.l2f_input not in INPUTS:
            raise UserError(f"{weights.source}: unknown L2F input {weights.l2f_input!r}")
        first = [v for k, v in weights.attenuator.items() if k.endswith("weight")][0]
        per_tensor = INPUTS[weights.l2f_input]
        if int(first.shape[1]) != per_tensor * len(adapted):
            raise UserError(f"{weights.source}: the L2F attenuator takes {int(first.shape[1])} inputs "
                            f"but the weights adapt {len(adapted)} tensors ({per_tensor} input each)")
    cfg = MetaConfig(inner_steps=inner_steps, inner_lr=initial_rate, first_order=True, adapt=adapted,
                     lr_mode="elementwise", learn_lr=False, l2f=weights.attenuator is not None,
                     l2f_mode=weights.l2f_mode, l2f_layers=weights.l2f_layers, l2f_input=weights.l2f_input)
    learner = MetaLearner(model, cfg)
    if weights.alpha is not None:
        learner.inner_lr.load_rates({n: weights.alpha[n] for n in learner.inner_names})
    if weights.attenuator is not None:
        learner.attenuator.load_state_dict(weights.attenuator)
    return learner


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


def warn_untrained(name: str, what: str) -> None:
    """ONE :class:`UntrainedWeightsWarning` per tracker name and process."""
    if name not in _WARNED:
        _WARNED.add(name)
        warnings.warn(f"tracker {name!r} {what}; {UNTRAINED_HINT}", UntrainedWeightsWarning,
                      stacklevel=4)
