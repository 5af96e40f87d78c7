"""The MetaSDNet family as one object: what the registry, the commands and the overlays ask.

Light on purpose (no torch): the registry imports it when ``tracker`` is imported.
"""
from __future__ import annotations

import argparse
from typing import Any

from ..family import Family

# tracker.sdnet.model.MODEL_NAMES (not imported: keeps --help light)
MODELS = ("small", "vgg-m", "tiny", "efficientnet")


def _meta_train_args(group: Any) -> None:
    """``metatrack meta-train``'s flags only MetaSDNet takes."""
    group.add_argument("--adapt", default="all", choices=["all", "fc"],
                       help="layers the inner step adapts: all (Meta-Tracker, default) or fc (fc4-6; "
                            "conv fixed and its features computed once: ~10x cheaper on a CPU)")
    group.add_argument("--pretrain-iterations", type=int, default=0, metavar="N",
                       help="without --init: first N iterations of MDNet-style multi-domain "
                            "pretraining of all layers from scratch (default 0)")
    group.add_argument("--model", default="small", choices=MODELS,
                       help="architecture when starting from scratch: small (CPU, default), vgg-m, "
                            "tiny, efficientnet (EfficientNet-Lite0 ImageNet blocks, frozen, under "
                            "fc4-6)")


def _meta_train_settings(args: argparse.Namespace) -> dict:
    """The :class:`~tracker.metatrain.sdnet.MetaTrainConfig` fields those flags set."""
    from .model import ModelConfig

    return dict(adapt=args.adapt, pretrain_iterations=args.pretrain_iterations,
                model=ModelConfig.named(args.model).to_dict())


FAMILY = Family(
    name="metasdnet", title="MetaSDNet",
    about="MetaSDNet: MDNet's network started by one meta-SGD step (Meta-Tracker); fast CPU mode",
    tracker="tracker.sdnet.online:MetaSDNetTracker",
    plain="mdnet", plain_tracker="tracker.sdnet.online:MDNetTracker",
    plain_about="MDNet baseline: the same network started by fine-tuning fc4-6 at frame 1",
    options="tracker.sdnet.online:SDNetOptions",
    read_weights="tracker.sdnet.weights:load_weights",
    write_weights="tracker.sdnet.weights:save_weights",
    train_config="tracker.metatrain.sdnet:MetaTrainConfig",
    train="tracker.metatrain.sdnet:meta_train",
    add_meta_train_args=_meta_train_args,
    meta_train_settings=_meta_train_settings,
    track_flags=("mode",),
)
