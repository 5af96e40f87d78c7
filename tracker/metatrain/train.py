"""Meta-training MetaSDNet's start theta0 and element-wise rates alpha (optionally L2F, DropGrad).

Everything meta-learned goes through the one engine (:class:`meta_learning.MetaLearner`): the
inner step is ``learner.adapt`` (one second-order meta-SGD step over all layers, L2F attenuation
first when on, DropGrad noise on the inner gradient when on), the outer step is
``learner.outer_step`` (Adam with one learning rate per group). This module only supplies the
tracker's loss, the episodes and the schedule.

Schedule (Meta-Tracker): Adam lr 1e-4 for theta0 and 1e-5 for alpha, fc layers only for the first
third of the iterations (conv fixed), all layers afterwards, both rates x0.1 at two thirds
(5,000 / 10,000 of 15,000 in the paper; the fractions are kept for shorter runs).

Robustness: checkpoints are written atomically every ``checkpoint_every`` iterations and at the
end; ``resume=True`` continues from the last one bit-identically (episodes depend only on the seed
and their index, and the torch RNG state that drives DropGrad is saved); an iteration with a
non-finite loss or gradient is skipped, rolled back and reported instead of corrupting the weights.
"""
from __future__ import annotations

import copy
import csv
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence as SequenceType

import numpy as np
import torch

from ..errors import UserError
from ..sdnet import roi_align as R
from ..sdnet.model import MetaSDNet, ModelConfig, binary_loss, conv_forward, fc_forward
from .episodes import EpisodeConfig, EpisodeDataset, episode_loader
from .sources import Track


@dataclass
class MetaTrainConfig:
    """Meta-training settings; defaults follow Meta-Tracker where the CPU allows (see docs)."""

    iterations: int = 15000
    meta_batch: int = 8                  # episodes per meta-update, losses summed
    lr_start: float = 1e-4               # Adam lr of theta0
    lr_alpha: float = 1e-5               # Adam lr of the element-wise rates
    lr_attenuator: float = 1e-3          # Adam lr of g_phi (L2F's classification setting)
    alpha_init: float = 1e-4
    fc_only_fraction: float = 1 / 3      # 5,000 of 15,000: conv layers fixed
    decay_fraction: float = 2 / 3        # 10,000 of 15,000: all rates x0.1
    adapt: str = "all"                   # all: every layer (Meta-Tracker); fc: fc4-6 only, conv fixed
    pretrain_iterations: int = 0         # multi-domain pretraining first (no --init): see pretrain.py
    l2f: bool = False
    l2f_mode: str = "identity"           # gamma = clamp(1 - s g, 0, 1), s from 0: starts at gamma = 1
    l2f_embedding: str = "detached"
    dropgrad: Optional[str] = None       # None | binary | gaussian
    dropgrad_rate: float = 0.1
    seed: int = 0
    workers: int = 0                     # episode-reading processes
    feature_cache: Optional[str] = None  # adapt='fc': folder sharing conv features between runs
    checkpoint_every: int = 50
    val_every: int = 0                   # 0: validate only at checkpoints when val tracks exist
    val_episodes: int = 16
    model: dict = field(default_factory=lambda: ModelConfig.small().to_dict())
    episodes: dict = field(default_factory=lambda: EpisodeConfig().to_dict())

    def validate(self) -> "MetaTrainConfig":
        if self.iterations < 1:
            raise UserError(f"--iterations must be at least 1, got {self.iterations}")
        if self.meta_batch < 1:
            raise UserError(f"--meta-batch must be at least 1, got {self.meta_batch}")
        if self.dropgrad not in (None, "binary", "gaussian"):
            raise UserError(f"--dropgrad must be binary or gaussian, got {self.dropgrad!r}")
        if self.adapt not in ("all", "fc"):
            raise UserError(f"--adapt must be all or fc, got {self.adapt!r}")
        if not 0.0 <= self.dropgrad_rate < 1.0:
            raise UserError(f"--dropgrad-rate must be in [0, 1), got {self.dropgrad_rate}")
        return self

    @property
    def fc_only_until(self) -> int:
        return int(round(self.iterations * self.fc_only_fraction))

    @property
    def decay_at(self) -> int:
        return int(round(self.iterations * self.decay_fraction))


def sdnet_loss(model: ModelConfig) -> Callable:
    """The tracker's summed binary loss of ``(region, grid, labels)`` at ``params``: conv features
    of the search region, RoIAlign of the sampled boxes, fc layers (what the fast tracker runs)."""
    k = R.grid_cells(model)

    def loss_fn(params, batch):
        region, grid, labels = batch
        feats = R.roi_align(conv_forward(params, region, model), grid, k)
        return binary_loss(fc_forward(params, feats), labels)

    return loss_fn


def fc_loss(params, batch):
    """The summed binary loss of fc4-6 on pooled conv3 features ``(feats, labels)``."""
    feats, labels = batch
    return binary_loss(fc_forward(params, feats), labels)


class FeatureCache:
    """conv3 features of search regions at FIXED conv weights, keyed by frame: with
    ``adapt='fc'`` conv neither adapts nor meta-learns, and a frame's region does not depend on
    the episode, so each frame goes through the conv layers once per run."""

    def __init__(self, conv_params: dict, model: ModelConfig, capacity: int = 20000,
                 folder: Optional[str] = None):
        import hashlib

        self.params = {k: v.detach() for k, v in conv_params.items()}
        self.model = model
        self.capacity = capacity
        self._store: dict = {}
        # on disk, features are keyed by the conv weights too, so runs from the same start share them
        h = hashlib.sha1()
        for k in sorted(self.params):
            h.update(k.encode())
            h.update(self.params[k].float().contiguous().numpy().tobytes())
        self.folder = os.path.join(folder, h.hexdigest()[:16]) if folder else None

    def _disk_path(self, fs) -> str:
        import hashlib

        r = fs.region
        key = f"{os.path.abspath(fs.frame)}|{r.ox:.6f},{r.oy:.6f},{r.sx:.6f},{r.sy:.6f},{r.width},{r.height}"
        return os.path.join(self.folder, hashlib.sha1(key.encode()).hexdigest() + ".pt")

    def _features(self, fs) -> torch.Tensor:
        path = self._disk_path(fs) if self.folder else None
        if path and os.path.isfile(path):
            try:
                return torch.load(path, weights_only=True)
            except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed
                pass
        with torch.no_grad():
            feats = conv_forward(self.params, fs.pixels(), self.model)
        if path:
            from ..fileio import atomic_path

            with atomic_path(path) as tmp:
                torch.save(feats, tmp)
        return feats

    def __call__(self, fs) -> tuple:
        """A :class:`~tracker.metatrain.episodes.FrameSet` -> ``(pooled features, labels)``."""
        feats = self._store.get(fs.frame)
        if feats is None:
            feats = self._features(fs)
            if len(self._store) >= self.capacity:
                self._store.pop(next(iter(self._store)))
            self._store[fs.frame] = feats
        with torch.no_grad():
            pooled = R.roi_align(feats, fs.grid, R.grid_cells(self.model))
        return pooled, fs.labels


def build_learner(config: MetaTrainConfig, start: Optional[dict] = None,
                  alpha: Optional[dict] = None):
    """The engine holding theta0 (``start`` or the seeded untrained init), alpha and g_phi."""
    from meta_learning import MetaConfig, MetaLearner

    model_cfg = ModelConfig.from_dict(config.model)
    model = MetaSDNet(model_cfg, start, seed=config.seed)
    meta = MetaConfig(inner_steps=1, inner_lr=config.alpha_init, first_order=False,
                      adapt="all" if config.adapt == "all" else "fc.*",
                      lr_mode="elementwise", learn_lr=True, l2f=config.l2f, l2f_mode=config.l2f_mode,
                      l2f_embedding=config.l2f_embedding, dropgrad=config.dropgrad,
                      dropgrad_rate=config.dropgrad_rate, outer_lr=config.lr_start,
                      lr_outer_lr=config.lr_alpha, attenuator_outer_lr=config.lr_attenuator,
                      task_reduction="sum")
    learner = MetaLearner(model, meta)
    if alpha is not None:
        learner.inner_lr.load_rates(alpha)
    return learner


def _apply_schedule(learner, config: MetaTrainConfig, iteration: int) -> str:
    """Freeze conv in the fc-only phase and decay every group's lr; returns the phase name."""
    fc_only = iteration < config.fc_only_until or config.adapt == "fc"
    learner.freeze("features.*" if fc_only else None)
    scale = 0.1 if iteration >= config.decay_at else 1.0
    base = {"start": config.lr_start, "inner_lr": config.lr_alpha, "attenuator": config.lr_attenuator}
    for group in learner.optimizer.param_groups:
        group["lr"] = base[group["name"]] * scale
    return "fc" if fc_only else "all"


def tracker_weights(learner, config: MetaTrainConfig, metadata: dict):
    """The learner's state as tracker weights (start, rates, attenuator)."""
    from ..weights import SDNetWeights

    params = {k: v.detach().clone() for k, v in learner.model.named_parameters()}
    rates = learner.inner_lr.rates()
    # tensors that never adapt (conv with adapt='fc') get rate 0, so the tracker keeps them too
    alpha = {k: (torch.as_tensor(rates[k]).detach().clone().expand_as(params[k]).clone()
                 if k in rates else torch.zeros_like(params[k])) for k in params}
    att = ({k: v.detach().clone() for k, v in learner.attenuator.state_dict().items()}
           if learner.attenuator is not None else None)
    return SDNetWeights(ModelConfig.from_dict(config.model), params, alpha, att, config.l2f_mode,
                        learner.config.l2f_layers, metadata)


def _finite(learner) -> bool:
    return all(torch.isfinite(p).all() for p in learner.parameters())


CSV_FIELDS = ["iteration", "phase", "query_loss", "support_loss", "grad_norm", "val_query_loss",
              "gamma_mean", "skipped", "seconds"]


def _truncate_log(path: str, iteration: int) -> None:
    """Drop log rows beyond ``iteration`` (written after the checkpoint a resume starts from)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= iteration]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)


def validation_loss(learner, loss_fn, dataset: EpisodeDataset, n: int,
                    prepare: Callable = lambda fs: fs.batch()) -> float:
    """Mean query loss after the (noise-free) inner step on ``n`` fixed validation episodes."""
    total = 0.0
    for i in range(n):
        episode = dataset[i]
        support, query = prepare(episode.support), prepare(episode.query)
        fast, _ = learner.adapt(None, loss_fn, support, training=False)
        with torch.no_grad():
            total += float(loss_fn({k: v.detach() for k, v in fast.items()}, query))
    return total / max(n, 1)


@dataclass
class TrainResult:
    iterations: int
    skipped: list
    last_query_loss: float
    seconds: float
    checkpoint: str
    weights: str


def meta_train(tracks: SequenceType[Track], config: MetaTrainConfig, out: str,
               resume: bool = False, val_tracks: SequenceType[Track] | None = None,
               init: Any = None, progress: bool = True, metadata: Optional[dict] = None,
               nan_hook: Optional[Callable[[int, torch.Tensor], torch.Tensor]] = None) -> TrainResult:
    """Meta-train on ``tracks`` and write tracker weights to ``out`` (plus ``out + '.ckpt'`` to
    resume from and ``out + '.csv'`` with the losses). ``init`` is starting weights
    (:class:`~tracker.weights.SDNetWeights` or a path) or None for the seeded untrained start.
    ``nan_hook(iteration, loss)`` lets tests inject a non-finite loss."""
    from ..weights import load_checkpoint, resolve_weights, save_checkpoint, save_weights

    config.validate()
    ckpt_path, log_path = out + ".ckpt", out + ".csv"
    model_cfg = ModelConfig.from_dict(config.model)
    start = alpha = None
    if init is not None:
        w = resolve_weights("metasdnet", init)
        if w.config != model_cfg:
            config.model = w.config.to_dict()
            model_cfg = w.config
        start, alpha = w.params, w.alpha
    resuming = resume and os.path.isfile(ckpt_path)
    if start is None and config.pretrain_iterations > 0 and not resuming:
        from .pretrain import PretrainConfig, pretrain

        start = pretrain(tracks, model_cfg, PretrainConfig(config.pretrain_iterations, seed=config.seed),
                         progress=progress)
    torch.manual_seed(config.seed)
    learner = build_learner(config, start, alpha)
    if config.adapt == "fc":
        loss_fn = fc_loss
        prepare = FeatureCache({k: v for k, v in learner.model.named_parameters()
                                if k.startswith("features.")}, model_cfg, folder=config.feature_cache)
    else:
        loss_fn = sdnet_loss(model_cfg)

        def prepare(fs):
            return fs.batch()
    it = 0
    skipped: list = []
    if resuming:
        state, _ = load_checkpoint(ckpt_path)
        saved = state["train_config"]
        if {k: v for k, v in saved.items() if k != "iterations"} != \
                {k: v for k, v in asdict(config).items() if k != "iterations"}:
            raise UserError(f"{ckpt_path} was written with other settings; resume with the same "
                            "options or start a new --out")
        learner.load_checkpoint_state(state["learner"])
        it = int(state["iteration"])
        skipped = list(state.get("skipped", []))
        torch.set_rng_state(state["torch_rng"])
        _truncate_log(log_path, it)
    elif os.path.exists(log_path):
        os.unlink(log_path)
    ep_cfg = EpisodeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.episodes.items()})
    dataset = EpisodeDataset(tracks, config.seed, model_cfg, ep_cfg)
    val = (EpisodeDataset(val_tracks, 10**6 + config.seed, model_cfg, ep_cfg)
           if val_tracks else None)
    meta = {"train_config": asdict(config), "engine": learner.config.to_dict(), **(metadata or {})}

    def checkpoint(iteration: int) -> None:
        save_checkpoint(ckpt_path, {"learner": learner.checkpoint_state(), "iteration": iteration,
                                    "torch_rng": torch.get_rng_state(), "skipped": skipped,
                                    "train_config": asdict(config)}, meta)
        save_weights(out, tracker_weights(learner, config, meta), {"iterations": iteration})

    from tqdm.auto import tqdm

    bar = tqdm(total=config.iterations, initial=it, desc="meta-train", unit="it", disable=not progress,
               dynamic_ncols=True)
    new_file = not os.path.isfile(log_path)
    log = open(log_path, "a", newline="")
    writer = csv.DictWriter(log, fieldnames=CSV_FIELDS)
    if new_file:
        writer.writeheader()
    t0 = time.perf_counter()
    last = float("nan")
    loader = iter(episode_loader(dataset, it * config.meta_batch,
                                 (config.iterations - it) * config.meta_batch, config.workers))
    try:
        while it < config.iterations:
            phase = _apply_schedule(learner, config, it)
            losses, support_losses, gammas = [], [], []
            for _ in range(config.meta_batch):
                episode = next(loader)
                support, query = prepare(episode.support), prepare(episode.query)
                fast, info = learner.adapt(None, loss_fn, support, training=True)
                loss = loss_fn(fast, query)
                if nan_hook is not None:
                    loss = nan_hook(it, loss)
                losses.append(loss)
                support_losses.append(float(info["losses"][0].detach()) if info["losses"] else float("nan"))
                if info["gamma"] is not None:
                    gammas.append(info["gamma"].detach())
            total = float(torch.stack([l.detach() for l in losses]).sum())
            row = {"iteration": it + 1, "phase": phase, "support_loss": f"{np.mean(support_losses):.4f}",
                   "gamma_mean": f"{float(torch.stack(gammas).mean()):.4f}" if gammas else "",
                   "val_query_loss": "", "skipped": 0}
            if not math.isfinite(total):
                skipped.append(it + 1)
                row.update(query_loss="nan", grad_norm="", skipped=1)
                warnings.warn(f"meta-train: iteration {it + 1} has a non-finite loss; skipped")
            else:
                snapshot = (copy.deepcopy(learner.state_dict()), copy.deepcopy(learner.optimizer.state_dict()))
                stats = learner.outer_step(losses)
                if not math.isfinite(stats["grad_norm"]) or not _finite(learner):
                    learner.load_state_dict(snapshot[0])
                    learner.optimizer.load_state_dict(snapshot[1])
                    skipped.append(it + 1)
                    row.update(query_loss=f"{total / len(losses):.4f}", grad_norm="nan", skipped=1)
                    warnings.warn(f"meta-train: iteration {it + 1} has a non-finite gradient; "
                                  "skipped and rolled back")
                else:
                    last = total / len(losses)
                    row.update(query_loss=f"{last:.4f}", grad_norm=f"{stats['grad_norm']:.4f}")
            it += 1
            if val is not None and ((config.val_every and it % config.val_every == 0)
                                    or (not config.val_every and it % config.checkpoint_every == 0)
                                    or it == config.iterations):
                row["val_query_loss"] = f"{validation_loss(learner, loss_fn, val, config.val_episodes, prepare):.4f}"
            row["seconds"] = f"{time.perf_counter() - t0:.2f}"
            writer.writerow(row)
            bar.set_postfix(query=row["query_loss"], phase=phase)
            bar.update(1)
            if it % config.checkpoint_every == 0 or it == config.iterations:
                log.flush()
                checkpoint(it)
    finally:
        bar.close()
        log.close()
    if skipped:
        print(f"meta-train: skipped {len(skipped)} iteration(s) with non-finite values: "
              f"{skipped[:10]}{' ...' if len(skipped) > 10 else ''}")
    return TrainResult(it, skipped, last, time.perf_counter() - t0, ckpt_path, out)
