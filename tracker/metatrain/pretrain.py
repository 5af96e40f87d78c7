"""Offline multi-domain pretraining of MetaSDNet's layers (MDNet's recipe), from scratch.

Meta-Tracker starts meta-training from an ImageNet-pretrained network. Without ImageNet we give
the conv layers features with the recipe MDNet itself uses offline: every training track is its
own domain with its own 2-way head (fc6), the shared layers (conv1-3, fc4-5) learn to separate
each target from its background. Ordinary first-order training, cheap next to meta-training.
The result is a start for ``metatrack meta-train --init``: fc6 is replaced by a fresh shared head.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence as SequenceType

import torch

from foundation.devices import resolve_device

from ..sdnet.losses import pool_region
from ..sdnet.model import ModelConfig, binary_loss, conv_forward, fc_forward, init_params
from .episodes import EpisodeConfig, sample_episode
from .sources import Track


@dataclass
class PretrainConfig:
    iterations: int = 2000
    lr: float = 1e-3                 # Adam
    frames_per_iteration: int = 2    # episodes' support frames (one domain each)
    seed: int = 0


def pretrain(tracks: SequenceType[Track], model: ModelConfig, config: PretrainConfig = PretrainConfig(),
             episodes: EpisodeConfig = EpisodeConfig(), progress: bool = True, device: Any = "cpu") -> dict:
    """Shared layers trained with one fc6 head per track; returns start parameters (fc6 fresh)
    on ``device``, where the training runs (the seeded starts are drawn on the CPU, so every
    device starts from the same numbers)."""
    from tqdm.auto import tqdm

    device = resolve_device(device)
    params = {k: v.clone().to(device).requires_grad_(True) for k, v in init_params(model, config.seed).items()}
    g = torch.Generator().manual_seed(config.seed)
    heads_w = torch.randn((len(tracks), 2, model.fc_dim), generator=g).mul(0.01).to(device).requires_grad_(True)
    heads_b = torch.zeros((len(tracks), 2), device=device, requires_grad=True)
    shared = [v for k, v in params.items() if not k.startswith("fc.fc6")]
    opt = torch.optim.Adam(shared + [heads_w, heads_b], lr=config.lr)
    no_shuffle = EpisodeConfig(**{**asdict(episodes), "shuffle_prob": 0.0})
    names = {t.name: i for i, t in enumerate(tracks)}
    bar = tqdm(range(config.iterations), desc="pretrain", unit="it", disable=not progress, dynamic_ncols=True)
    for it in bar:
        loss = 0.0
        for j in range(config.frames_per_iteration):
            ep = sample_episode(tracks, it * config.frames_per_iteration + j, 7919 + config.seed,
                                model, no_shuffle)
            d = names[ep.track]
            s = ep.support
            feats = pool_region(conv_forward(params, s.pixels().to(device), model), s.grid.to(device), model)
            head = {**params, "fc.fc6.weight": heads_w[d], "fc.fc6.bias": heads_b[d]}
            loss = loss + binary_loss(fc_forward(head, feats), s.labels.to(device)) / len(s.labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{float(loss.detach()) / config.frames_per_iteration:.3f}")
    fresh = init_params(model, config.seed + 1)
    out = {k: v.detach().clone() for k, v in params.items()}
    out["fc.fc6.weight"], out["fc.fc6.bias"] = fresh["fc.fc6.weight"].to(device), fresh["fc.fc6.bias"].to(device)
    return out
