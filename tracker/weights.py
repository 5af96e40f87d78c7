"""Tracker weights of every family: one file layout, the shipped-weights lookup, and the
frame-1 learner a weights file defines.

A weights file is a :mod:`foundation.checkpoint` file whose state holds, for any family::

    family      "metasdnet" | "metacrest" (files without it are MetaSDNet's)
    model       the meta-learned start theta0, name -> tensor
    alpha       element-wise Meta-SGD rates, same names and shapes (optional)
    attenuator  the L2F g_phi state dict, with l2f: the L2FSettings it was trained with (optional)
    adapted     the names of the tensors the frame-1 step adapts, in order (the attenuator's inputs)

and beside them the family's payload (:meth:`TrackerWeights.payload`): ``model_config`` for
MetaSDNet (:mod:`tracker.sdnet.weights`), ``backbone`` and ``options`` for MetaCREST
(:mod:`tracker.crest.weights`). The metadata says how the weights were made (command, data, date).
Files written before the one ``l2f`` entry hold ``l2f_mode`` / ``l2f_layers`` / ``l2f_input`` flat;
:func:`read_l2f` reads both.

Shipped weights are looked up by tracker name (:func:`find_weights`) in, in order: the folder or
file named by the environment variable ``METATRACK_WEIGHTS``, the installed package data
``tracker/_weights/``, and the repository's top-level ``weights/`` folder (editable installs).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Mapping, Optional, Tuple

from foundation.checkpoint import load_checkpoint, save_checkpoint
from foundation.errors import UserError

if TYPE_CHECKING:
    from meta_learning.l2f import L2FSettings

__all__ = ["TrackerWeights", "save_tracker_weights", "read_tracker_state", "common_fields", "read_l2f",
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
    l2f: Optional["L2FSettings"] = None           # the settings g_phi was trained with (with attenuator)
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
        if weights.l2f is None:
            raise ValueError("tracker weights with an L2F attenuator need its settings (l2f)")
        state["attenuator"] = _cpu(weights.attenuator)
        state["l2f"] = weights.l2f.to_dict()
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


def read_l2f(state: Mapping[str, Any], source: str, old_mode: str) -> Optional["L2FSettings"]:
    """The L2F settings of a file's attenuator (None without one): its ``l2f`` entry, or in files
    written before that entry, the flat keys, where a missing one meant what the code of the time
    did: ``l2f_mode`` the family's ``old_mode``, 2 layers, the ``mean`` input, a detached embedding."""
    from meta_learning.l2f import L2FSettings

    if state.get("attenuator") is None:
        return None
    try:
        if "l2f" in state:
            return L2FSettings.from_dict(state["l2f"])
        return L2FSettings(mode=str(state.get("l2f_mode", old_mode)), input=str(state.get("l2f_input", "mean")),
                           layers=int(state.get("l2f_layers", 2)), embedding="detached").validate()
    except (TypeError, ValueError) as exc:
        raise UserError(f"{source}: bad L2F settings: {exc}") from None


def common_fields(state: Mapping[str, Any], metadata: Mapping[str, Any], source: str,
                  old_l2f_mode: str) -> Dict[str, Any]:
    """The :class:`TrackerWeights` fields every family reads the same way from a state
    (``old_l2f_mode``: the family's gamma form in files that did not record it, :func:`read_l2f`)."""
    return {"attenuator": state.get("attenuator"), "l2f": read_l2f(state, source, old_l2f_mode),
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
        if weights.l2f is None:
            raise UserError(f"{weights.source}: an L2F attenuator without its settings")
        try:
            weights.l2f.validate()
        except ValueError as exc:
            raise UserError(f"{weights.source}: {exc}") from None
        first = [v for k, v in weights.attenuator.items() if k.endswith("weight")][0]
        per_tensor = INPUTS[weights.l2f.input]
        if int(first.shape[1]) != per_tensor * len(adapted):
            raise UserError(f"{weights.source}: the L2F attenuator takes {int(first.shape[1])} inputs "
                            f"but the weights adapt {len(adapted)} tensors ({per_tensor} input each)")
    cfg = MetaConfig(inner_steps=inner_steps, inner_lr=initial_rate, first_order=True, adapt=adapted,
                     lr_mode="elementwise", learn_lr=False,
                     l2f=weights.l2f if weights.attenuator is not None else None)
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
