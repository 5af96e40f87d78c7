"""``metatrack pretrain``: MDNet-style multi-domain pretraining, a start for meta-training."""
from __future__ import annotations

import argparse

from ..sdnet.family import MODELS
from ._common import add_device_arg, resolve_device_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain", help="multi-domain pretraining from scratch (a start for meta-train --init)",
        description="Train MetaSDNet's layers from scratch the way MDNet pretrains offline: one 2-way "
                    "head per training track, shared conv1-3 and fc4-5. The result (with a fresh "
                    "fc6) is a start for `metatrack meta-train --init` when no ImageNet weights exist.")
    p.add_argument("--dataset", required=True, metavar="DIR", help="training videos")
    p.add_argument("--format", default="otb", choices=["otb", "vid", "got10k"])
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--model", default="small", choices=MODELS,
                   help="architecture: small (CPU, default), vgg-m (official shape), tiny (tests), "
                        "efficientnet (frozen ImageNet blocks: fc4-5 alone train)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--no-progress", action="store_true")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import math

    from foundation.errors import UserError
    from foundation.fileio import ensure_writable_file

    from ..metatrain.pretrain import PretrainConfig, pretrain
    from ..metatrain.sources import load_tracks
    from ..sdnet.model import ModelConfig
    from ..sdnet.weights import SDNetWeights, save_weights

    device = resolve_device_arg(args)
    if args.iterations < 1:
        raise UserError(f"--iterations must be at least 1, got {args.iterations}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise UserError(f"--lr must be a positive number, got {args.lr}")
    model = ModelConfig.named(args.model)
    ensure_writable_file(args.out, "--out")
    tracks = load_tracks(args.dataset, args.format)
    params = pretrain(tracks, model, PretrainConfig(args.iterations, args.lr, seed=args.seed),
                      progress=not args.no_progress, device=device)
    from foundation.devices import describe_device
    from otb_eval.synthetic.packages import benchmark_sources

    meta = {"data": {"dataset": args.dataset, "format": args.format,
                     "tracks": len(tracks), "sources": benchmark_sources(args.dataset)},
            "stage": "multi-domain pretraining (no meta-learning yet)", "device": describe_device(device)}
    save_weights(args.out, SDNetWeights(config=model, params=params, adapted=tuple(params), metadata=meta), meta)
    print(f"pretrained start written to {args.out}")
    return 0
