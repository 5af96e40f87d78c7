"""Few-shot classification with the MAML protocol of the L2F paper: meta-training, validation,
the top-3 ensemble evaluation, outputs.

Protocol (L2F appendix C.1 and the authors' code): N-way K-shot episodes with 15 query images per
class; 5 inner SGD steps at lr 0.01 on every non-batch-norm tensor; meta-batch 2 (5-shot) or 4
(1-shot); Adam 1e-3; first order for the first ``first_order_iterations`` (default a tenth of the
run, the authors' 10 of 100 epochs), second order afterwards; meta-gradients clamped to [-10, 10].
Every ``val_every`` iterations the start is scored on fixed validation tasks and the ``top_k`` best
are kept; the test score averages the softmax predictions of those checkpoints on ``eval_tasks``
fixed test tasks (the same for every run), reported with a 95% CI (1.96 std / sqrt(tasks)).

Determinism and resume: the model is initialised from ``seed``; meta-iteration ``i`` draws its
episodes from ``episode_rng(seed, i)`` and torch (DropGrad, GradDrop, PCGrad) from the run's
``iteration_seed(seed, i, rank)``, so a run resumed from ``checkpoint.pt`` (with the kept
checkpoints and the history) continues exactly as an uninterrupted one. This module draws the
episodes, steps the learner, validates and keeps the top-k files; resume, seeds, checkpoints, the
history, the validation cadence and the skip of non-finite steps are
:class:`meta_learning.run.MetaRun`'s.

Devices and processes: episodes are drawn on the CPU and moved to the learner's device. Under
torchrun every rank draws the whole meta-batch (so the episode stream is one process's) and adapts
its ``world.split`` share; the engine all-reduces the meta-gradients. Validation and test tasks are
shared round-robin over the ranks and gathered, every task computed as one process computes it,
so the accuracies and the kept checkpoints do not depend on the number of processes. Rank 0 alone
reads the checkpoint to resume (and gives it to the others) and writes files.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from foundation.checkpoint import load_checkpoint, save_checkpoint
from foundation.distributed import SINGLE, World
from foundation.errors import UserError
from foundation.fileio import atomic_write_text

from ...functional import detach_params, functional_loss
from ...l2f import SEED_PAPER_L2F
from ...learner import MetaConfig, MetaLearner
from ...run import MetaRun, RunConfig, Step, rank_validation
from ...stats import mean_ci95
from ..regression import run_info
from .backbones import BACKBONES, make_backbone
from .datasets import DATASETS, DEFAULT_IMAGE_SIZE, SPLIT_CHOICES, load_pools
from .episodes import EVAL_SEED, VAL_SEED, ClassPool, ConcatPool, Episode, episode_rng, sample_episode

__all__ = ["ClassificationConfig", "SPLIT_CHOICES", "build_learner", "train", "predict", "evaluate", "run",
           "evaluate_checkpoint", "pixel_nn", "mean_ci", "method_name"]


@dataclass
class ClassificationConfig:
    """One few-shot classification experiment (defaults: the seed's miniImageNet protocol)."""

    dataset: str = "glyphs"
    root: Optional[str] = None
    ways: int = 5
    shots: int = 1
    queries: int = 15
    backbone: str = "conv4"
    image_size: Optional[int] = None        # None: the data set's default (glyphs 28, ImageNet 84)
    iterations: int = 50_000
    meta_batch: Optional[int] = None        # None: 2 for >= 5 shots, 4 below
    inner_steps: int = 5
    eval_inner_steps: Optional[int] = None  # None: inner_steps
    inner_lr: float = 0.01
    outer_lr: float = 1e-3
    first_order_iterations: Optional[int] = None  # None: iterations // 10
    clamp: Optional[float] = 10.0
    l2f: bool = False                       # the paper's L2F (SEED_PAPER_L2F)
    dropgrad: Optional[str] = None
    dropgrad_rate: float = 0.1
    surgery: Optional[str] = None
    l2_meta_reg: Optional[str] = None
    l2_lambda0: float = 5e-4
    l2_gamma: Optional[Dict[str, float]] = None
    val_every: int = 500
    val_tasks: int = 200
    top_k: int = 3
    eval_tasks: int = 600
    seed: int = 0
    glyph_seed: int = 0
    checkpoint_every: int = 500

    def resolved(self) -> "ClassificationConfig":
        """A copy with every None default filled in."""
        d = asdict(self)
        d["image_size"] = self.image_size or DEFAULT_IMAGE_SIZE.get(self.dataset, 84)
        d["meta_batch"] = self.meta_batch or (2 if self.shots >= 5 else 4)
        d["eval_inner_steps"] = self.inner_steps if self.eval_inner_steps is None else self.eval_inner_steps
        d["first_order_iterations"] = (self.iterations // 10 if self.first_order_iterations is None
                                       else self.first_order_iterations)
        return ClassificationConfig(**d)

    def validate(self) -> "ClassificationConfig":
        def check(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)
        check(self.dataset in DATASETS, f"--dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        check(self.backbone in BACKBONES, f"--backbone must be one of {', '.join(BACKBONES)}")
        check(self.ways >= 2, f"--ways must be >= 2, got {self.ways}")
        check(self.shots >= 1, f"--shots must be >= 1, got {self.shots}")
        check(self.queries >= 1, f"--queries must be >= 1, got {self.queries}")
        check(self.iterations >= 0, f"--iterations must be >= 0, got {self.iterations}")
        check(self.meta_batch is None or self.meta_batch >= 1, "--meta-batch must be >= 1")
        check(self.image_size is None or self.image_size >= 16, "--image-size must be >= 16")
        check(self.inner_steps >= 1, "inner steps must be >= 1")
        check(self.inner_lr > 0 and self.outer_lr > 0, "learning rates must be positive")
        check(self.eval_tasks >= 1 and self.val_tasks >= 1, "--eval-tasks and validation tasks must be >= 1")
        check(self.val_every >= 1 and self.checkpoint_every >= 1 and self.top_k >= 1,
              "validation/checkpoint intervals and top-k must be >= 1")
        check(self.l2_gamma is None or self.l2_meta_reg is not None, "--l2-gamma needs --l2-meta-reg")
        self.resolved().meta_config()
        return self

    def meta_config(self) -> MetaConfig:
        r = self
        return MetaConfig(
            inner_steps=r.inner_steps, inner_lr=r.inner_lr, adapt="no_norm",
            first_order_iterations=r.first_order_iterations or 0,
            l2f=SEED_PAPER_L2F if r.l2f else None, dropgrad=r.dropgrad,
            dropgrad_rate=r.dropgrad_rate, surgery=r.surgery, clamp=r.clamp, l2_meta_reg=r.l2_meta_reg,
            l2_lambda0=r.l2_lambda0, l2_gamma=r.l2_gamma, outer_lr=r.outer_lr).validate()

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def training_key(self) -> Dict[str, Any]:
        """Fields that must match for a checkpoint to be resumed."""
        d = self.resolved().to_dict()
        for k in ("iterations", "eval_tasks", "eval_inner_steps", "checkpoint_every", "root",
                  "first_order_iterations"):
            d.pop(k)
        return d


def method_name(cfg: ClassificationConfig) -> str:
    parts = ["MAML"]
    if cfg.l2f:
        parts.append("L2F")
    if cfg.dropgrad:
        parts.append("DropGrad")
    if cfg.surgery:
        parts.append({"pcgrad": "PCGrad", "graddrop": "GradDrop"}[cfg.surgery])
    if cfg.l2_meta_reg:
        parts.append(f"l2({cfg.l2_meta_reg})")
    return "+".join(parts)


def mean_ci(values: Sequence[float]) -> Dict[str, float]:
    """:func:`meta_learning.stats.mean_ci95` of per-task values, with their count."""
    return {**mean_ci95(values), "tasks": int(len(values))}


def build_learner(cfg: ClassificationConfig, channels: int, device: Optional[torch.device] = None,
                  ) -> Tuple[MetaLearner, Any]:
    """The backbone initialised from ``cfg.seed`` (on the CPU, the same weights for every device)
    and moved to ``device``, wrapped in a learner, and the functional loss."""
    r = cfg.resolved()
    torch.manual_seed(r.seed)
    model = make_backbone(r.backbone, r.ways, channels, r.image_size)
    if device is not None:
        model = model.to(device)
    return MetaLearner(model, r.meta_config()), functional_loss(model, nn.functional.cross_entropy)


def predict(learner: MetaLearner, loss_fn: Any, episode: Episode, steps: int) -> Tuple[Tensor, Optional[Tensor]]:
    """Softmax query predictions (Q, ways) after adapting on the support set (no DropGrad), and
    gamma with L2F; computed on the learner's device, returned on the CPU."""
    from torch.func import functional_call

    start = detach_params(learner.start())
    episode = episode.to(next(iter(start.values())).device)
    fast, info = learner.adapt(start, loss_fn, episode.support, steps=steps, training=False, first_order=True)
    with torch.no_grad():
        logits = functional_call(learner.model, {k: v.detach() for k, v in fast.items()},
                                 (episode.query[0],), strict=False)
    gamma = info["gamma"].detach().cpu() if info["gamma"] is not None else None
    return logits.softmax(-1).cpu(), gamma


def _accuracy(learner: MetaLearner, loss_fn: Any, pool: ClassPool, cfg: ClassificationConfig,
              tasks: int, seed: int, world: World = SINGLE) -> float:
    """Mean query accuracy over ``tasks`` fixed tasks (shared round-robin over ``world``)."""
    r = cfg.resolved()
    accs = []
    for t in world.stride(range(tasks)):
        ep = sample_episode(pool, r.ways, r.shots, r.queries, episode_rng(seed, t))
        probs, _ = predict(learner, loss_fn, ep, r.eval_inner_steps)
        accs.append((t, float((probs.argmax(-1) == ep.query[1]).double().mean())))
    return float(np.mean(world.gather_indexed(accs)))


def _check_pool(pool: ClassPool, split: str, r: ClassificationConfig) -> None:
    """Enough classes for ``r.ways``-way episodes and enough images per class, or one line."""
    if len(pool) < r.ways:
        hint = "; --split all evaluates on every class" if split != "all" else ""
        raise UserError(f"the {split} split of {r.dataset} has {len(pool)} classes; "
                        f"{r.ways}-way episodes need {r.ways}{hint}")
    small = [pool.name(c) for c in range(len(pool)) if pool.count(c) < r.shots + r.queries]
    if small:
        raise UserError(f"{r.dataset} {split}: class {small[0]!r} has fewer than "
                        f"{r.shots + r.queries} images ({r.shots} shots + {r.queries} queries)")


def _load_pools(cfg: ClassificationConfig, progress: bool, splits: Sequence[str] = ("train", "val", "test"),
                ) -> Dict[str, ClassPool]:
    """The data set's pools for ``splits`` (``"all"``: every class of the data set as one pool),
    each checked for ``cfg``'s episodes."""
    r = cfg.resolved()
    pools: Dict[str, ClassPool] = load_pools(r.dataset, r.root, r.image_size, r.glyph_seed, progress)
    if "all" in splits:
        pools["all"] = ConcatPool([pools[s] for s in ("train", "val", "test")])
    pools = {s: pools[s] for s in splits}
    for split, pool in pools.items():
        _check_pool(pool, split, r)
    return pools


def _pools_for(cfg: ClassificationConfig, progress: bool, world: World,
               splits: Sequence[str] = ("train", "val", "test")) -> Dict[str, ClassPool]:
    """The data set's pools, loaded (and, for glyphs, rendered into the cache) by rank 0 first,
    then by the other ranks; an error on rank 0 stops every rank."""
    first: Dict[str, Dict[str, ClassPool]] = {}

    def load() -> None:
        first["pools"] = _load_pools(cfg, progress, splits)

    world.on_main(load)
    return first["pools"] if world.is_main else _load_pools(cfg, False, splits)


def train(cfg: ClassificationConfig, out_dir: Path, pools: Optional[Dict[str, ClassPool]] = None,
          resume: bool = True, progress: bool = True, stop_after: Optional[int] = None,
          device: Optional[torch.device] = None, world: World = SINGLE,
          ) -> Tuple[MetaLearner, Any, Dict[str, Any]]:
    """Meta-train on ``device`` (default CPU; resuming from ``out_dir/checkpoint.pt``), this rank
    adapting its share of each meta-batch, validating every ``val_every`` iterations and keeping
    the ``top_k`` best starts in ``out_dir/top/``.  ``stop_after`` ends early after that many
    iterations in total (checkpoint written)."""
    r = cfg.resolved()
    out_dir = Path(out_dir)
    pools = pools or _pools_for(cfg, progress, world)
    learner, loss_fn = build_learner(r, pools["train"].channels, device)
    top_dir = out_dir / "top"
    run = MetaRun(learner, r.training_key(),
                  RunConfig(r.iterations, r.seed, r.checkpoint_every, val_every=r.val_every,
                            desc=f"meta-train {r.ways}-way {r.shots}-shot"),
                  str(out_dir / "checkpoint.pt"), resume=resume, stop_after=stop_after, progress=progress,
                  world=world)
    state = run.start()
    top: List[Dict[str, Any]] = list(state.get("top", []))   # {"iteration", "val_accuracy", "file"}, best first
    running: Optional[float] = state.get("running")          # smoothed training loss
    start, stop = world.split(r.meta_batch)

    def step(it: int) -> Step:
        nonlocal running
        rng = episode_rng(r.seed, it)
        run.rank_stream(it)   # episodes come from rng: every rank draws its own DropGrad noise at once
        for t in range(r.meta_batch):
            ep = sample_episode(pools["train"], r.ways, r.shots, r.queries, rng)   # every rank draws all
            if start <= t < stop:
                ep = ep.to(device) if device is not None else ep
                loss, _ = learner.task_loss(loss_fn, ep.support, ep.query, training=True)
                learner.backward_task(loss)
        stats = learner.outer_step()
        running = stats["loss"] if running is None else 0.95 * running + 0.05 * stats["loss"]
        return Step(stats["loss"], stats["grad_norm"])

    def validate(it: int) -> Step:
        acc = _accuracy(learner, loss_fn, pools["val"], r, r.val_tasks, VAL_SEED, world)
        row = [it, running if running is not None else float("nan"), acc]
        ranked, kept = rank_validation(top, {"iteration": it, "val_accuracy": acc, "file": f"iter{it}.pt"},
                                       r.top_k, "val_accuracy", higher_is_better=True)
        if world.is_main and kept:
            save_checkpoint(str(top_dir / f"iter{it}.pt"),
                            {"learner": {k: v.detach().clone() for k, v in learner.state_dict().items()}})
        top[:] = ranked
        return Step(row=row, postfix={"loss": f"{row[1]:.3f}", "val": f"{acc:.3f}"})

    def prune(it: int) -> None:
        keep = {t["file"] for t in top}
        for f in top_dir.glob("iter*.pt") if top_dir.exists() else []:
            if f.name not in keep:
                f.unlink()

    run.train(step, validate, keep=lambda: {"top": top, "running": running, "config": r.to_dict()},
              on_checkpoint=prune)
    return learner, loss_fn, {"iterations": run.end, "history": run.history, "seconds": round(run.seconds, 2),
                              "top": top}


def evaluate(learner: MetaLearner, loss_fn: Any, members: Sequence[Dict[str, Tensor]], pool: ClassPool,
             cfg: ClassificationConfig, progress: bool = False, world: World = SINGLE) -> Dict[str, Any]:
    """Accuracy of each member state and of their averaged softmax predictions on the fixed test
    tasks, with 95% CIs; L2F's mean gamma per adapted tensor (first member).  The tasks are
    shared round-robin over ``world`` and gathered in task order (the numbers of one process)."""
    from tqdm import tqdm

    r = cfg.resolved()
    mine = world.stride(range(r.eval_tasks))
    summed: Dict[int, Tensor] = {}
    labels: Dict[int, Tensor] = {}
    member_acc: Dict[int, List[float]] = {t: [] for t in mine}
    gammas: Dict[int, Tensor] = {}
    bar = tqdm(total=len(mine) * len(members), desc="test tasks", disable=not (progress and world.is_main),
               mininterval=1.0)
    for m, state in enumerate(members):
        learner.load_state_dict(state, strict=False)
        for t in mine:
            ep = sample_episode(pool, r.ways, r.shots, r.queries, episode_rng(EVAL_SEED, t))
            probs, gamma = predict(learner, loss_fn, ep, r.eval_inner_steps)
            member_acc[t].append(float((probs.argmax(-1) == ep.query[1]).double().mean()))
            summed[t] = probs if t not in summed else summed[t] + probs
            labels[t] = ep.query[1]
            if gamma is not None and m == 0:
                gammas[t] = gamma
            bar.update(1)
    bar.close()
    rows = world.gather_indexed([(t, (member_acc[t], float((summed[t].argmax(-1) == labels[t]).double().mean()),
                                      gammas.get(t))) for t in mine])
    ens = [e for _, e, _ in rows]
    per_member = [[accs[m] for accs, _, _ in rows] for m in range(len(members))]
    out: Dict[str, Any] = {"accuracy": mean_ci(ens), "members": [mean_ci(a) for a in per_member]}
    gamma_rows = [g for _, _, g in rows if g is not None]
    if gamma_rows:
        g = torch.stack(gamma_rows).double().mean(0)
        out["gamma"] = {name: float(v) for name, v in zip(learner.inner_names, g)}
    return out


def _member_states(out_dir: Path, top: Sequence[Dict[str, Any]]) -> List[Dict[str, Tensor]]:
    return [load_checkpoint(str(out_dir / "top" / t["file"]))[0]["learner"] for t in top]


def run(cfg: ClassificationConfig, out_dir: Path, resume: bool = True, progress: bool = True,
        stop_after: Optional[int] = None, pools: Optional[Dict[str, ClassPool]] = None,
        device: Optional[torch.device] = None, world: World = SINGLE) -> Dict[str, Any]:
    """Train, evaluate the top-k ensemble, and write ``results.json`` and ``model.pt`` (the kept
    starts, self-contained, for ``--evaluate``) beside ``checkpoint.pt`` (rank 0 writes; every
    rank returns the results)."""
    out_dir = Path(out_dir)
    if world.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    r = cfg.resolved()
    pools = pools or _pools_for(cfg, progress, world)
    learner, loss_fn, info = train(cfg, out_dir, pools, resume, progress, stop_after, device, world)
    if info["iterations"] < r.iterations:
        return {"stopped_at": info["iterations"]}
    members = world.on_main(lambda: _member_states(out_dir, info["top"]))
    if world.is_main:
        save_checkpoint(str(out_dir / "model.pt"), {"members": members, "config": r.to_dict(),
                                                     "channels": pools["train"].channels,
                                                     "top": info["top"]})
    t0 = time.perf_counter()
    ev = evaluate(learner, loss_fn, members, pools["test"], r, progress, world)
    results: Dict[str, Any] = {
        "accuracy": ev["accuracy"], "members": [{**t, "accuracy": a} for t, a in zip(info["top"], ev["members"])],
        "config": {**r.to_dict(), "method": method_name(r)},
        "train": {"iterations": info["iterations"], "seconds": info["seconds"], "history": info["history"]},
        "eval_seconds": round(time.perf_counter() - t0, 2)}
    if "gamma" in ev:
        results["gamma"] = ev["gamma"]
    results["run"] = run_info(learner, world)
    if world.is_main:
        atomic_write_text(str(out_dir / "results.json"), json.dumps(results, indent=1) + "\n")
    return results


def evaluate_checkpoint(path: Path, cfg: ClassificationConfig, out_dir: Path, progress: bool = True,
                        device: Optional[torch.device] = None, world: World = SINGLE,
                        split: str = "test") -> Dict[str, Any]:
    """Evaluate a trained ``model.pt`` (its ensemble) or ``checkpoint.pt`` (its last start) on
    ``split`` of ``cfg``'s data set (cross-domain: any data set; ``"all"``: every class of it) on
    ``device``, writing ``out_dir/results.json`` (rank 0 reads the file and writes the results;
    the test tasks are shared over ``world``)."""
    if split not in SPLIT_CHOICES:
        raise UserError(f"--split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    state = world.on_main(lambda: load_checkpoint(str(path))[0])
    if "members" in state:
        trained, members = state["config"], list(state["members"])
    elif "learner" in state and "config" in state:
        trained, members = state["config"], [state["learner"]["learner"]]
    else:
        raise UserError(f"{path} is neither a classification model.pt nor a checkpoint.pt")
    if not isinstance(trained, dict) or "ways" not in trained or "backbone" not in trained:
        raise UserError(f"{path} was not written by metalearn classification")
    known = {f.name for f in fields(ClassificationConfig)}
    trained = {k: v for k, v in trained.items() if k in known}
    if trained["ways"] != cfg.ways:
        raise UserError(f"{path} classifies {trained['ways']} ways; evaluate it with --ways {trained['ways']}")
    tcfg = ClassificationConfig(**{**trained, "l2_gamma": trained.get("l2_gamma")})
    ecfg = ClassificationConfig(**{**trained, "dataset": cfg.dataset, "root": cfg.root, "shots": cfg.shots,
                                   "queries": cfg.queries, "eval_tasks": cfg.eval_tasks,
                                   "image_size": trained["image_size"], "glyph_seed": cfg.glyph_seed,
                                   "eval_inner_steps": cfg.eval_inner_steps or trained["eval_inner_steps"]})
    pools = _pools_for(ecfg, progress, world, (split,))
    channels = int(state.get("channels", pools[split].channels))
    test = _with_channels(pools[split], channels)
    learner, loss_fn = build_learner(tcfg, channels, device)
    t0 = time.perf_counter()
    ev = evaluate(learner, loss_fn, members, test, ecfg, progress, world)
    results = {"accuracy": ev["accuracy"], "members": ev["members"],
               "config": {**ecfg.resolved().to_dict(), "method": method_name(tcfg)}, "split": split,
               "classes": len(pools[split]),
               "trained": {**trained, "checkpoint": str(path)}, "eval_seconds": round(time.perf_counter() - t0, 2)}
    if "gamma" in ev:
        results["gamma"] = ev["gamma"]
    results["run"] = run_info(learner, world)
    if world.is_main:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(str(Path(out_dir) / "results.json"), json.dumps(results, indent=1) + "\n")
    return results


class _ChannelView:
    """A pool whose images are converted to ``channels`` (grey <-> RGB) for a model trained on
    another data set."""

    def __init__(self, pool: ClassPool, channels: int) -> None:
        self.pool, self.channels, self.image_size = pool, channels, pool.image_size

    def __len__(self) -> int:
        return len(self.pool)

    def count(self, c: int) -> int:
        return self.pool.count(c)

    def name(self, c: int) -> str:
        return self.pool.name(c)

    def images(self, c: int, idx: Sequence[int]) -> np.ndarray:
        x = self.pool.images(c, idx)
        if x.shape[1] == self.channels:
            return x
        if self.channels == 1:
            return x.mean(1, keepdims=True)
        return np.repeat(x, self.channels, axis=1)


def _with_channels(pool: ClassPool, channels: int) -> ClassPool:
    return pool if pool.channels == channels else _ChannelView(pool, channels)


def pixel_nn(pool: ClassPool, ways: int, shots: int, queries: int = 15, tasks: int = 600) -> Dict[str, float]:
    """The floor: 1-nearest-neighbour on raw pixels (Euclidean, to every support image) on the
    same fixed test tasks as :func:`evaluate`."""
    accs = []
    for t in range(tasks):
        ep = sample_episode(pool, ways, shots, queries, episode_rng(EVAL_SEED, t))
        s, q = ep.support[0].flatten(1), ep.query[0].flatten(1)
        nearest = torch.cdist(q, s).argmin(1)
        accs.append(float((ep.support[1][nearest] == ep.query[1]).double().mean()))
    return mean_ci(accs)
