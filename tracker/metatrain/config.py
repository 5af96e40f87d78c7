"""The meta-training settings both tracker families share, and the engine built from them.

:class:`TrainConfig` holds what every family's training reads (iterations, meta-batch, the three
Adam learning rates, L2F, DropGrad, the loop's checkpoint and validation cadence); MetaSDNet's
:class:`~tracker.metatrain.sdnet.MetaTrainConfig` and MetaCREST's
:class:`~tracker.metatrain.crest.CRESTTrainConfig` extend it with their own and their reference
defaults. :func:`training_learner` is the one place a training run's engine is configured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from foundation.errors import UserError
from meta_learning.l2f import L2FSettings

__all__ = ["TrainConfig", "training_learner", "KEEP_CHOICES"]

KEEP_CHOICES = ("last", "best")   # which start a run's weights file holds (TrainConfig.keep)


@dataclass
class TrainConfig:
    """Settings common to every family (defaults: Meta-Tracker's MetaSDNet values)."""

    iterations: int = 15000
    meta_batch: int = 8                  # episodes per meta-update
    lr_start: float = 1e-4               # Adam lr of theta0
    lr_alpha: float = 1e-5               # Adam lr of the element-wise rates
    lr_attenuator: float = 1e-3          # Adam lr of g_phi (L2F's classification setting)
    alpha_init: float = 1e-4
    decay_fraction: float = 2 / 3        # every lr x0.1 from this fraction of the iterations on
    l2f: Optional[L2FSettings] = None    # the L2F attenuator g_phi; None: none
    dropgrad: Optional[str] = None       # None | binary | gaussian
    dropgrad_rate: float = 0.1
    seed: int = 0
    workers: int = 0                     # episode-reading processes
    feature_cache: Optional[str] = None  # folder of per-frame features shared between runs
    checkpoint_every: int = 50
    val_every: int = 0                   # 0: validate only at checkpoints when val tracks exist
    val_episodes: int = 16
    keep: str = "last"                   # the weights file: "last" iteration's start, or "best" validation's

    def validate(self) -> "TrainConfig":
        """Each wrong setting is a one-line UserError, before any work starts."""
        for flag, value in (("--iterations", self.iterations), ("--meta-batch", self.meta_batch),
                            ("--checkpoint-every", self.checkpoint_every), ("--val-episodes", self.val_episodes)):
            if value < 1:
                raise UserError(f"{flag} must be at least 1, got {value}")
        for flag, value in (("--workers", self.workers), ("--val-every", self.val_every)):
            if value < 0:
                raise UserError(f"{flag} must be >= 0, got {value}")
        for flag, value in (("--lr-start", self.lr_start), ("--lr-alpha", self.lr_alpha),
                            ("--lr-attenuator", self.lr_attenuator), ("--alpha-init", self.alpha_init)):
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"{flag} must be a finite number >= 0, got {value:g}")
        if self.l2f is not None:
            try:
                self.l2f.validate()
            except ValueError as exc:
                raise UserError(str(exc)) from None
        if not 0.0 < self.decay_fraction <= 1.0:
            raise UserError(f"decay_fraction must be in (0, 1], got {self.decay_fraction:g}")
        if self.keep not in KEEP_CHOICES:
            raise UserError(f"--keep must be {' or '.join(KEEP_CHOICES)}, got {self.keep!r}")
        if self.dropgrad not in (None, "binary", "gaussian"):
            raise UserError(f"--dropgrad must be binary or gaussian, got {self.dropgrad!r}")
        if not 0.0 <= self.dropgrad_rate < 1.0:
            raise UserError(f"--dropgrad-rate must be in [0, 1), got {self.dropgrad_rate}")
        return self

    @property
    def decay_at(self) -> int:
        return int(round(self.iterations * self.decay_fraction))

    def lr_scale(self, iteration: int) -> float:
        return 0.1 if iteration >= self.decay_at else 1.0

    def apply_lrs(self, learner: Any, iteration: int) -> float:
        """Set every Adam group's lr for ``iteration`` (the step decay); returns the scale."""
        scale = self.lr_scale(iteration)
        base = {"start": self.lr_start, "inner_lr": self.lr_alpha, "attenuator": self.lr_attenuator}
        for group in learner.optimizer.param_groups:
            group["lr"] = base[group["name"]] * scale
        return scale


def training_learner(model: Any, config: TrainConfig, adapt: Any = "all", task_reduction: str = "sum",
                     alpha: Optional[Mapping[str, Any]] = None):
    """The engine a meta-training run updates: ``model`` holds theta0; one second-order inner
    step with learned element-wise rates (from ``alpha`` when continuing), L2F and DropGrad as
    configured, one Adam lr per group."""
    from meta_learning import MetaConfig, MetaLearner

    meta = MetaConfig(inner_steps=1, inner_lr=config.alpha_init, first_order=False, adapt=adapt,
                      lr_mode="elementwise", learn_lr=True, l2f=config.l2f, dropgrad=config.dropgrad,
                      dropgrad_rate=config.dropgrad_rate, outer_lr=config.lr_start,
                      lr_outer_lr=config.lr_alpha, attenuator_outer_lr=config.lr_attenuator,
                      task_reduction=task_reduction)
    learner = MetaLearner(model, meta)
    if alpha is not None:
        learner.inner_lr.load_rates(alpha)
    return learner
