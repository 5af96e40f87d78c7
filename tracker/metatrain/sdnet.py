"""Meta-training MetaSDNet's start theta0 and element-wise rates alpha (optionally L2F, DropGrad).

Everything meta-learned goes through the one engine (:class:`meta_learning.MetaLearner`): the
inner step is ``learner.adapt`` (one second-order meta-SGD step over all layers, L2F attenuation
first when on, DropGrad noise on the inner gradient when on), the outer step is
``learner.outer_step`` (Adam with one learning rate per group). This module only supplies the
tracker's loss, the episodes and the schedule.

Schedule (Meta-Tracker): Adam lr 1e-4 for theta0 and 1e-5 for alpha, fc layers only for the first
third of the iterations (conv fixed), all layers afterwards, both rates x0.1 at two thirds
(5,000 / 10,000 of 15,000 in the paper; the fractions are kept for shorter runs).

The loop itself (meta-batches, the CSV log) is :func:`tracker.metatrain.loop.run_meta_training`,
shared with MetaCREST, on :class:`meta_learning.run.MetaRun` (checkpoints, bit-identical resume,
skipping non-finite iterations), shared with every domain.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence as SequenceType

import torch

from foundation.devices import resolve_device
from foundation.distributed import SINGLE, World
from foundation.errors import UserError

from ..sdnet.losses import fc_loss, pool_region, region_loss
from ..sdnet.model import MetaSDNet, ModelConfig, conv_forward
from .cache import FeatureCache, fingerprint
from .config import TrainConfig, training_learner
from .episodes import EpisodeConfig, EpisodeDataset
from .loop import TrainResult, learned_state, run_meta_training
from .sources import Track


@dataclass
class MetaTrainConfig(TrainConfig):
    """MetaSDNet's meta-training settings: the common ones (with Meta-Tracker's MetaSDNet
    defaults: 15,000 iterations, lrs 1e-4 / 1e-5, x0.1 at two thirds; losses summed over the
    meta-batch) and the network's. ``feature_cache`` applies with ``adapt='fc'``."""

    fc_only_fraction: float = 1 / 3      # 5,000 of 15,000: conv layers fixed
    adapt: str = "all"                   # all: every layer (Meta-Tracker); fc: fc4-6 only, conv fixed
    pretrain_iterations: int = 0         # multi-domain pretraining first (no --init): see pretrain.py
    model: dict = field(default_factory=lambda: ModelConfig.small().to_dict())
    episodes: dict = field(default_factory=lambda: EpisodeConfig().to_dict())

    def validate(self) -> "MetaTrainConfig":
        super().validate()
        if self.adapt not in ("all", "fc"):
            raise UserError(f"--adapt must be all or fc, got {self.adapt!r}")
        if self.pretrain_iterations < 0:
            raise UserError(f"--pretrain-iterations must be >= 0, got {self.pretrain_iterations}")
        return self

    @property
    def fc_only_until(self) -> int:
        return int(round(self.iterations * self.fc_only_fraction))


class ConvFeatures:
    """Features of episodes' search regions at FIXED conv weights (``adapt='fc'``: conv neither
    adapts nor meta-learns; always so on a frozen ImageNet backbone), through the one
    :class:`~tracker.metatrain.cache.FeatureCache`: a frame's region does not depend on the
    episode, so each frame goes through the conv layers once. Features are computed, kept and
    pooled on ``device``."""

    def __init__(self, conv_params: dict, model: ModelConfig, device: torch.device, capacity: int = 20000,
                 folder: Optional[str] = None):
        self.params = {k: v.detach() for k, v in conv_params.items()}
        self.model = model
        self.device = device
        # a frozen backbone's weights come from its package: its configuration names the features
        extra = () if model.learned_conv else (f"{model.backbone}:{model.backbone_blocks}",)
        self.cache = FeatureCache(folder, fingerprint(self.params, *extra), capacity, device=self.device)

    def __call__(self, fs) -> tuple:
        """A :class:`~tracker.metatrain.episodes.FrameSet` -> ``(pooled features, labels)``."""
        r = fs.region
        key = f"{os.path.abspath(fs.frame)}|{r.ox:.6f},{r.oy:.6f},{r.sx:.6f},{r.sy:.6f},{r.width},{r.height}"
        feats = self.cache.get(key, lambda: conv_forward(self.params, fs.pixels().to(self.device), self.model))
        with torch.no_grad():
            pooled = pool_region(feats, fs.grid.to(self.device), self.model)
        return pooled, fs.labels.to(self.device)


def build_learner(config: MetaTrainConfig, start: Optional[dict] = None,
                  alpha: Optional[dict] = None, device: Any = "cpu"):
    """The engine holding theta0 (``start`` or the seeded untrained init), alpha and g_phi, all
    on ``device`` (the model moves first, so the rates and attenuator the engine builds from it
    are made there)."""
    model = MetaSDNet(ModelConfig.from_dict(config.model), start, seed=config.seed).to(resolve_device(device))
    return training_learner(model, config, "all" if config.adapt == "all" else "fc.*", "sum", alpha)


def _apply_schedule(learner, config: MetaTrainConfig, iteration: int) -> str:
    """Freeze conv in the fc-only phase and decay every group's lr; returns the phase name."""
    fc_only = iteration < config.fc_only_until or config.adapt == "fc"
    learner.freeze((lambda name: name.startswith("features.")) if fc_only else None)
    config.apply_lrs(learner, iteration)
    return "fc" if fc_only else "all"


def tracker_weights(learner, config: MetaTrainConfig, metadata: dict):
    """The learner's state as tracker weights (start, rates, attenuator, adapted tensors)."""
    from ..sdnet.weights import SDNetWeights

    return SDNetWeights(config=ModelConfig.from_dict(config.model), l2f=learner.config.l2f, metadata=metadata,
                        **learned_state(learner))


def meta_train(tracks: SequenceType[Track], config: MetaTrainConfig, out: str,
               resume: bool = False, val_tracks: SequenceType[Track] | None = None,
               init: Any = None, progress: bool = True, metadata: Optional[dict] = None,
               nan_hook: Optional[Callable[[int, torch.Tensor], torch.Tensor]] = None,
               world: World = SINGLE, device: Any = "cpu") -> TrainResult:
    """Meta-train on ``tracks`` and write tracker weights to ``out`` (plus ``out + '.ckpt'`` to
    resume from and ``out + '.csv'`` with the losses). ``init`` is starting weights
    (:class:`~tracker.sdnet.weights.SDNetWeights` or a path) or None for the seeded untrained start.
    ``nan_hook(iteration, loss)`` lets tests inject a non-finite loss. ``world``: this process
    among torchrun's (see :func:`~tracker.metatrain.loop.run_meta_training`). ``device``: where the
    engine and every step run (episodes are read on the CPU and moved there)."""
    from ..sdnet.weights import resolve_weights, save_weights

    config.validate()
    device = resolve_device(device)
    model_cfg = ModelConfig.from_dict(config.model)
    start = alpha = None
    if init is not None:
        w = resolve_weights("metasdnet", init)
        if w.config != model_cfg:
            config.model = w.config.to_dict()
            model_cfg = w.config
        start, alpha = w.params, w.alpha
    resuming = resume and os.path.isfile(out + ".ckpt")
    if start is None and config.pretrain_iterations > 0 and not resuming:
        from .pretrain import PretrainConfig, pretrain

        start = pretrain(tracks, model_cfg, PretrainConfig(config.pretrain_iterations, seed=config.seed),
                         progress=progress, device=device)
    torch.manual_seed(config.seed)
    learner = build_learner(config, start, alpha, device)
    if config.adapt == "fc" or not model_cfg.learned_conv:   # a frozen backbone: features once
        loss_fn = fc_loss
        prepare = ConvFeatures({k: v for k, v in learner.model.named_parameters()
                                if k.startswith("features.")}, model_cfg, device, folder=config.feature_cache)
    else:
        loss_fn = region_loss(model_cfg)

        def prepare(fs):
            return tuple(t.to(device) for t in fs.batch())
    ep_cfg = EpisodeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.episodes.items()})
    dataset = EpisodeDataset(tracks, config.seed, model_cfg, ep_cfg)
    val = (EpisodeDataset(val_tracks, 10**6 + config.seed, model_cfg, ep_cfg)
           if val_tracks else None)
    meta = {"train_config": asdict(config), "engine": learner.config.to_dict(), **(metadata or {})}

    def task_fn(episode, training: bool):
        support, query = prepare(episode.support), prepare(episode.query)
        fast, info = learner.adapt(None, loss_fn, support, training=training)
        return loss_fn(fast, query), info

    def save(learner_, iteration: int) -> None:
        save_weights(out, tracker_weights(learner_, config, meta), {"iterations": iteration})

    return run_meta_training(learner, config, out, dataset, task_fn, save, resume=resume,
                             val_dataset=val, schedule=lambda l, i: _apply_schedule(l, config, i),
                             metadata=meta, progress=progress, nan_hook=nan_hook, world=world)
