"""The meta-training loop every tracker family shares (MetaSDNet, MetaCREST).

A family supplies the engine (:class:`meta_learning.MetaLearner`), a map-style dataset of episodes
(episode ``i`` depends only on the seed and ``i``), ``task_fn(episode, training) -> (query loss,
adapt info)`` and ``save_weights(learner, iteration)``; the loop does the rest the same way for
all: meta-batches of episodes, the outer step, a CSV log, atomic checkpoints every
``checkpoint_every`` iterations and at the end, bit-identical resume (the torch RNG state that
drives DropGrad is saved), validation, and an iteration with a non-finite loss or gradient skipped
and rolled back instead of corrupting the weights.

Under torchrun each rank takes its contiguous share of every meta-batch's episodes
(:meth:`foundation.distributed.World.split`), the engine all-reduces the meta-gradients, and rank
0 alone writes the log, checkpoints and weights and shows the progress bar. Each rank's torch RNG
(DropGrad's noise) is saved in the checkpoint, so a resume with the same number of processes
continues exactly.
"""
from __future__ import annotations

import copy
import csv
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Tuple

import numpy as np
import torch

from foundation.distributed import SINGLE, World
from foundation.errors import UserError
from foundation.fileio import atomic_path

from .episodes import episode_loader

__all__ = ["CSV_FIELDS", "TrainResult", "learned_state", "run_meta_training",
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


def _truncate_log(path: str, iteration: int) -> None:
    """Drop log rows beyond ``iteration`` (written after the checkpoint a resume starts from)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= iteration]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)


def _finite(learner) -> bool:
    return all(torch.isfinite(p).all() for p in learner.parameters())


def validation_loss(task_fn: TaskFn, dataset, n: int) -> float:
    """Mean query loss after the (noise-free) inner step on ``n`` fixed validation episodes."""
    total = 0.0
    for i in range(n):
        loss, _ = task_fn(dataset[i], False)
        total += float(loss.detach())
    return total / max(n, 1)


def _episode_indices(first: int, last: int, meta_batch: int, world: World):
    """This rank's episodes of iterations ``first .. last - 1`` (episode ``it * B + j``)."""
    start, stop = world.split(meta_batch)
    return [it * meta_batch + j for it in range(first, last) for j in range(start, stop)]


def _restore_rng(state: dict, world: World) -> None:
    """Each rank continues its own random stream; other process counts get fresh streams."""
    per_rank = state.get("torch_rng_ranks")
    if per_rank is not None and len(per_rank) == world.size:
        torch.set_rng_state(per_rank[world.rank])
        return
    torch.set_rng_state(state["torch_rng"])
    saved = len(per_rank) if per_rank is not None else 1
    if saved != world.size:
        warnings.warn(f"the checkpoint was written by {saved} process(es), this run has {world.size}: "
                      "random inner-loop noise (DropGrad) continues from new streams")
        if world.rank:
            torch.manual_seed(int(state["iteration"]) * 1_000_003 + world.rank)


def _device(learner) -> torch.device:
    """Where the learner's tensors (and so its random draws) live."""
    return next(learner.parameters()).device


def _restore_cuda_rng(state: dict, world: World, device: torch.device) -> None:
    """On a GPU each rank continues its own CUDA stream when the process count is the same (else
    the seeded stream continues; :func:`_restore_rng` has warned)."""
    saved = state.get("cuda_rng_ranks")
    if device.type == "cuda" and saved is not None and len(saved) == world.size:
        torch.cuda.set_rng_state(saved[world.rank], device)


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
    from tqdm.auto import tqdm

    from foundation.checkpoint import load_checkpoint, save_checkpoint

    ckpt_path, log_path = out + ".ckpt", out + ".csv"
    it = 0
    skipped: list = []
    if resume and os.path.isfile(ckpt_path):
        state, _ = load_checkpoint(ckpt_path)
        saved = state["train_config"]
        if {k: v for k, v in saved.items() if k != "iterations"} != \
                {k: v for k, v in asdict(config).items() if k != "iterations"}:
            raise UserError(f"{ckpt_path} was written with other settings; resume with the same "
                            "options or start a new --out")
        learner.load_checkpoint_state(state["learner"])
        it = int(state["iteration"])
        skipped = list(state.get("skipped", []))
        _restore_rng(state, world)
        _restore_cuda_rng(state, world, _device(learner))
        if world.is_main:
            _truncate_log(log_path, it)
    else:
        if os.path.exists(log_path) and world.is_main:
            os.unlink(log_path)
        if world.rank:   # rank 0 keeps one process's stream; the others draw other DropGrad noise
            torch.manual_seed(int(config.seed) * 1_000_003 + world.rank)
    if config.meta_batch < world.size:
        raise UserError(f"--meta-batch {config.meta_batch} is smaller than the {world.size} processes; "
                        "every process needs at least one episode per iteration")
    learner.distribute(world)

    def checkpoint(iteration: int) -> None:
        rng = world.all_gather_object(torch.get_rng_state())
        device = _device(learner)   # DropGrad draws from the CUDA generator on a GPU: keep it too
        cuda_rng = world.all_gather_object(torch.cuda.get_rng_state(device)) if device.type == "cuda" else None
        if not world.is_main:
            return
        save_checkpoint(ckpt_path, {"learner": learner.checkpoint_state(), "iteration": iteration,
                                    "torch_rng": rng[0], "skipped": skipped,
                                    "train_config": asdict(config),
                                    **({"torch_rng_ranks": rng} if world.distributed else {}),
                                    **({"cuda_rng_ranks": cuda_rng} if cuda_rng is not None else {})},
                        metadata)
        if len(skipped) < iteration:   # weights only once something was learned
            save_weights(learner, iteration)

    bar = tqdm(total=config.iterations, initial=it, desc="meta-train", unit="it",
               disable=not (progress and world.is_main), dynamic_ncols=True)
    log = writer = None
    if world.is_main:
        new_file = not os.path.isfile(log_path)
        log = open(log_path, "a", newline="")
        writer = csv.DictWriter(log, fieldnames=CSV_FIELDS)
        if new_file:
            writer.writeheader()
    t0 = time.perf_counter()
    last = float("nan")
    loader = iter(episode_loader(dataset, _episode_indices(it, config.iterations, config.meta_batch, world),
                                 config.workers))
    share = world.split(config.meta_batch)
    n_local = share[1] - share[0]
    try:
        while it < config.iterations:
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
            total, support_mean = float(sums[0]), float(sums[1]) / config.meta_batch
            row = {"iteration": it + 1, "phase": phase, "support_loss": f"{support_mean:.4f}",
                   "gamma_mean": f"{float(sums[2] / sums[3]):.4f}" if sums[3] > 0 else "",
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
                    row.update(query_loss=f"{total / config.meta_batch:.4f}", grad_norm="nan", skipped=1)
                    warnings.warn(f"meta-train: iteration {it + 1} has a non-finite gradient; "
                                  "skipped and rolled back")
                else:
                    last = total / config.meta_batch
                    row.update(query_loss=f"{last:.4f}", grad_norm=f"{stats['grad_norm']:.4f}")
            it += 1
            if world.is_main and val_dataset is not None and ((config.val_every and it % config.val_every == 0)
                                            or (not config.val_every and it % config.checkpoint_every == 0)
                                            or it == config.iterations):
                row["val_query_loss"] = f"{validation_loss(task_fn, val_dataset, config.val_episodes):.4f}"
            row["seconds"] = f"{time.perf_counter() - t0:.2f}"
            if writer is not None:
                writer.writerow(row)
            bar.set_postfix(query=row["query_loss"], phase=phase)
            bar.update(1)
            if it % config.checkpoint_every == 0 or it == config.iterations:
                if log is not None:
                    log.flush()
                checkpoint(it)
    finally:
        bar.close()
        if log is not None:
            log.close()
    if it and len(skipped) >= it:
        raise UserError(f"all {it} iterations had non-finite losses or gradients: nothing was "
                        f"learned and no weights were written to {out} (lower the learning rates)")
    return TrainResult(it, skipped, last, time.perf_counter() - t0, ckpt_path, out)
