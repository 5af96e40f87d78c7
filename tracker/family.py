"""What a meta-learned tracker family is, in one object every caller asks instead of guessing.

Each family module (``tracker/sdnet/family.py``, ``tracker/crest/family.py``) exports one
:class:`Family`; ``tracker.api.register_family`` registers its four variants
(:mod:`tracker.variants`) and its plain start. The heavy parts (tracker class, options dataclass,
weights reader and writer, training config and entry) are ``"module:attr"`` strings loaded on use,
so registering a family imports no torch and ``metatrack --help`` stays light.
"""
from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Mapping

from foundation.errors import UserError

__all__ = ["Family", "no_inputs"]

RGB = tuple[int, int, int]


def no_inputs(args: argparse.Namespace) -> dict:
    """A family hook that adds nothing (and checks nothing)."""
    return {}


def load_ref(ref: str) -> Any:
    """The object a lazy ``"module:attr"`` reference names (imported on first use, so that
    registering trackers and families imports no torch)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Family:
    """A tracker family: ``name`` is its meta-learned baseline's tracker name and the ``family``
    tag its weights files carry; ``plain`` is the same tracker started without meta-learning."""

    name: str                   # metasdnet
    title: str                  # MetaSDNet (tables, help, errors)
    about: str                  # the registry's description of the baseline
    tracker: str                # "module:Class" of the meta-learned tracker
    plain: str                  # mdnet: the registered non-meta start
    plain_tracker: str          # "module:Class" of that tracker
    plain_about: str
    options: str                # "module:Dataclass" of the tracking options (--option)
    read_weights: str           # "module:function" path -> weights object
    write_weights: str          # "module:function" (path, weights, metadata) -> path
    train_config: str           # "module:Dataclass" of the meta-training settings
    train: str                  # "module:function" the meta-training entry
    # metatrack meta-train: the flags only this family takes (added to an argument group), the
    # config fields and entry keywords they give, and a check of them before any data is read
    add_meta_train_args: Callable[[Any], None]
    meta_train_settings: Callable[[argparse.Namespace], dict]
    meta_train_inputs: Callable[[argparse.Namespace], dict] = no_inputs
    check_meta_train: Callable[[argparse.Namespace], Any] = no_inputs
    track_flags: tuple[str, ...] = ()          # metatrack track's flags only this family takes
    shades: Mapping[str, RGB] = field(default_factory=dict)   # overlay colour name -> its shade

    def load(self, part: str) -> Any:
        """The object one of the ``"module:attr"`` fields names (``"tracker"``, ``"options"``, ...)."""
        return load_ref(getattr(self, part))

    def check_options(self, options: Mapping[str, Any], tracker: str) -> None:
        """``options`` checked against the family's options dataclass before any work: an unknown
        key or a bad value is one :class:`UserError` line (the tracker's own words)."""
        cls = self.load("options")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UserError(f"unknown option(s) for {tracker}: {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
        replace(cls(), **options).validate()
