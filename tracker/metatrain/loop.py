"""The meta-training of every tracker family (MetaSDNet, MetaCREST): the family's episodes and
losses on the shared run.

A family supplies the engine (:class:`meta_learning.MetaLearner`), a map-style dataset of episodes
(episode ``i`` depends only on the seed and ``i``), ``task_fn(episode, training) -> (query loss,
adapt info)`` and ``save_weights(learner, iteration)``. This module keeps what is the trackers'
own: meta-batches of episodes from a loader, the phase schedule, the CSV columns (support loss,
L2F's mean gamma), the validation loss and the weights written at each checkpoint (the last
iteration's start, or with ``keep="best"`` the start of the lowest validation loss so far: the
meta-learned starts can get worse as training goes on, while the checkpoint still holds the last
iteration to resume from). Resume (the
settings check), random states, checkpoints, the CSV log, the skip and roll-back of an iteration
with a non-finite loss or gradient, the validation cadence and the progress bar are
:class:`meta_learning.run.MetaRun`'s, the same as every other domain's.

Under torchrun each rank takes its contiguous share of every meta-batch's episodes
(:meth:`foundation.distributed.World.split`), the engine all-reduces the meta-gradients, and rank
0 alone writes the log, checkpoints and weights and shows the progress bar. The random state
carries on from iteration to iteration (``seeding="once"``: ranks above 0 are seeded once); each
rank's is saved in the checkpoint, so a resume with the same number of processes continues exactly.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Tuple

import numpy as np
import torch

from foundation.distributed import SINGLE, World
from foundation.errors import UserError
from meta_learning.run import MetaRun, RunConfig, Step, rank_validation

from .episodes import episode_loader

__all__ = ["CSV_FIELDS", "TrainResult", "check_keep", "learned_state", "run_meta_training",
           "validation_loss"]

CSV_FIELDS = ["iteration", "phase", "query_loss", "support_loss", "grad_norm", "val_query_loss",
              "gamma_mean", "skipped", "seconds"]

TaskFn = Callable[[Any, bool], Tuple[torch.Tensor, dict]]


@dataclass
class TrainResult:
    iterations: int
    skipped: list
    last_query_loss: float
    seconds: float
    checkpoint: str
    weights: str


def learned_state(learner) -> dict:
    """What a tracker keeps of a learner, as :class:`~tracker.weights.TrackerWeights` fields: the
    start, element-wise rates of the start's shapes (0 for tensors that never adapt), the L2F
    attenuator and the names of the tensors the inner step adapts."""
    params = {k: v.detach().clone() for k, v in learner.model.named_parameters()}
    rates = learner.inner_lr.rates()
    alpha = {k: (torch.as_tensor(rates[k]).detach().clone().expand_as(params[k]).clone()  # device: the rate's
                 if k in rates else torch.zeros_like(params[k])) for k in params}
    att = ({k: v.detach().clone() for k, v in learner.attenuator.state_dict().items()}
           if learner.attenuator is not None else None)
    return {"params": params, "alpha": alpha, "attenuator": att, "adapted": tuple(learner.inner_names)}


def validation_loss(task_fn: TaskFn, dataset, n: int) -> float:
    """Mean query loss after the (noise-free) inner step on ``n`` fixed validation episodes."""
    total = 0.0
    for i in range(n):
        loss, _ = task_fn(dataset[i], False)
        total += float(loss.detach())
    return total / max(n, 1)


def check_keep(keep: str, has_validation: bool) -> None:
    """``keep="best"`` picks the weights by validation loss, so it needs validation tracks."""
    if keep == "best" and not has_validation:
        raise UserError("--keep best needs validation tracks (--val-dataset): the weights kept are "
                        "those of the lowest validation loss")


def _episode_indices(first: int, last: int, meta_batch: int, world: World):
    """This rank's episodes of iterations ``first .. last - 1`` (episode ``it * B + j``)."""
    start, stop = world.split(meta_batch)
    return [it * meta_batch + j for it in range(first, last) for j in range(start, stop)]


def _device(learner) -> torch.device:
    """Where the learner's tensors live (nccl reduces only CUDA tensors)."""
    return next(learner.parameters()).device


def run_meta_training(learner, config: Any, out: str, dataset, task_fn: TaskFn,
                      save_weights: Callable[[Any, int], None], resume: bool = False,
                      val_dataset=None, schedule: Optional[Callable[[Any, int], str]] = None,
                      metadata: Optional[dict] = None, progress: bool = True,
                      nan_hook: Optional[Callable[[int, torch.Tensor], torch.Tensor]] = None,
                      world: World = SINGLE) -> TrainResult:
    """Run ``config.iterations`` meta-updates of ``learner`` and write ``out`` (tracker weights,
    through ``save_weights``), ``out + '.ckpt'`` (to resume from) and ``out + '.csv'`` (losses).

    ``config`` is the family's settings dataclass: ``iterations``, ``meta_batch``, ``seed``,
    ``workers``, ``checkpoint_every``, ``val_every`` and ``val_episodes`` are read here, and all of
    it (bar ``iterations``) must match a checkpoint to resume from it. ``schedule(learner, it)``
    sets per-iteration learning rates / frozen tensors and names the phase for the log.
    ``nan_hook(iteration, loss)`` lets tests inject a non-finite loss. ``world``: this process
    among torchrun's (``config.meta_batch`` is the total over all ranks).
    """
    ckpt_path = out + ".ckpt"
    # keep joins the settings only when it is not the default, so that checkpoints written before
    # it existed resume (a resume under another keep would mix the two rules in one file)
    settings = {k: v for k, v in asdict(config).items()
                if k != "iterations" and not (k == "keep" and v == "last")}
    check_keep(config.keep, val_dataset is not None)
    best_only = config.keep == "best"
    run = MetaRun(learner, settings,
                  RunConfig(config.iterations, config.seed, config.checkpoint_every,
                            val_every=config.val_every or config.checkpoint_every, seeding="once"),
                  ckpt_path, resume=resume, csv_log=(out + ".csv", CSV_FIELDS), metadata=metadata,
                  progress=progress, world=world)
    if config.meta_batch < world.size:
        raise UserError(f"--meta-batch {config.meta_batch} is smaller than the {world.size} processes; "
                        "every process needs at least one episode per iteration")
    state = run.start()
    best = list(state.get("best", []))   # [{"iteration", "val_query_loss"}]: the lowest so far
    improved = {"at": None}               # the iteration whose validation entered ``best``
    loader = iter(episode_loader(dataset, _episode_indices(run.iteration, config.iterations, config.meta_batch,
                                                           world), config.workers))
    share = world.split(config.meta_batch)
    n_local = share[1] - share[0]
    query_loss: dict = {}

    def step(it: int) -> Step:
        phase = schedule(learner, it) if schedule is not None else "all"
        losses, support_losses, gammas = [], [], []
        for _ in range(n_local):
            loss, info = task_fn(next(loader), True)
            if nan_hook is not None:
                loss = nan_hook(it, loss)
            losses.append(loss)
            support_losses.append(float(info["losses"][0].detach()) if info["losses"] else float("nan"))
            if info["gamma"] is not None:
                gammas.append(info["gamma"].detach())
        # sums over every rank's episodes, so that all ranks see the same numbers and branch alike
        # (on the learner's device: nccl, the backend of CUDA runs, reduces only CUDA tensors)
        sums = world.all_reduce_sum_(torch.tensor(
            [float(torch.stack([l.detach() for l in losses]).sum()), float(np.sum(support_losses)),
             float(torch.stack(gammas).sum()) if gammas else 0.0,
             float(sum(g.numel() for g in gammas))], dtype=torch.float64, device=_device(learner)))
        total = float(sums[0]) / config.meta_batch
        row = {"phase": phase, "support_loss": f"{float(sums[1]) / config.meta_batch:.4f}",
               "gamma_mean": f"{float(sums[2] / sums[3]):.4f}" if sums[3] > 0 else "", "val_query_loss": ""}
        postfix = {"phase": phase}
        if not math.isfinite(total):    # no outer step at all: the run records the skip
            row.update(query_loss="nan", grad_norm="")
            return Step(total, 0.0, row, {**postfix, "query": "nan"})
        stats = learner.outer_step(losses)
        query_loss[it + 1] = total
        row.update(query_loss=f"{total:.4f}", grad_norm=f"{stats['grad_norm']:.4f}")
        return Step(total, stats["grad_norm"], row, {**postfix, "query": row["query_loss"]})

    def validate(iteration: int) -> Optional[Step]:
        if not world.is_main:
            return None
        loss = validation_loss(task_fn, val_dataset, config.val_episodes)
        ranked, entered = rank_validation(best, {"iteration": iteration, "val_query_loss": loss}, 1,
                                          "val_query_loss", higher_is_better=False)
        if entered and math.isfinite(loss):
            best[:] = ranked
            improved["at"] = iteration
        return Step(row={"val_query_loss": f"{loss:.4f}"})

    def weights(iteration: int) -> None:
        if len(run.skipped) >= iteration:   # weights only once something was learned
            return
        if not best_only or improved["at"] == iteration:
            save_weights(learner, iteration)

    t0 = time.perf_counter()
    run.train(step, validate if val_dataset is not None else None, keep=lambda: {"best": best},
              on_checkpoint=weights)
    it, skipped = run.iteration, run.skipped
    if it and len(skipped) >= it:
        raise UserError(f"all {it} iterations had non-finite losses or gradients: nothing was "
                        f"learned and no weights were written to {out} (lower the learning rates)")
    kept = [i for i in query_loss if i not in skipped]
    last = query_loss[max(kept)] if kept else float("nan")
    return TrainResult(it, skipped, last, time.perf_counter() - t0, ckpt_path, out)
