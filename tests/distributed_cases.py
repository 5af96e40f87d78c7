"""Engine cases run by ``tests/test_meta_distributed.py`` as one process and under torchrun.

``python tests/distributed_cases.py OUT`` (one process) and ``torchrun --nproc_per_node=2 ...
tests/distributed_cases.py OUT`` meta-train tiny learners on fixed synthetic tasks, every rank
passing only its ``world.split`` share of each meta-batch to the engine, and rank 0 saves the
resulting meta-parameters of every case to ``OUT/<case>.pt``; the test compares the two.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict

import torch
from torch import nn

from foundation.distributed import close_world, init_world
from meta_learning import MetaConfig, MetaLearner, functional_loss
from meta_learning.l2f import SEED_PAPER_L2F
from meta_learning.tasks.rl.trpo import trpo_step

TASKS = 5      # an odd meta-batch: the two ranks get 2 and 3 tasks


def _tasks(seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(TASKS, 6, 2, generator=g)
    w = torch.randn(TASKS, 2, 1, generator=g)
    return x, x @ w + 0.1 * torch.randn(TASKS, 6, 1, generator=g)


def _learner(**cfg: Any) -> MetaLearner:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    return MetaLearner(model, MetaConfig(inner_steps=2, inner_lr=0.1, outer_lr=0.01, **cfg))


def _state(learner: MetaLearner) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learner.state_dict().items()}


def meta_train(world, mode: str, **cfg: Any) -> Dict[str, torch.Tensor]:
    """Three outer steps of one way of driving the engine (``mode``) on this rank's tasks."""
    learner = _learner(**cfg).distribute(world)
    loss_fn = functional_loss(learner.model, nn.functional.mse_loss)
    a, b = world.split(TASKS)
    for it in range(3):
        x, y = _tasks(it)
        s, q = (x[a:b, :3], y[a:b, :3]), (x[a:b, 3:], y[a:b, 3:])
        torch.manual_seed(100 + it)     # surgery's randomness: the same on every rank
        if mode == "vmap":
            losses, _ = learner.meta_batch_losses(loss_fn, s, q)
            learner.outer_step(losses)
        elif mode == "grads":
            losses, grads, _ = learner.meta_batch_grads(loss_fn, s, q)
            learner.outer_step(losses, task_grads=grads)
        elif mode == "loop":
            learner.outer_step([learner.task_loss(loss_fn, (s[0][i], s[1][i]), (q[0][i], q[1][i]))[0]
                                for i in range(b - a)])
        else:  # "backward": one task's graph at a time
            for i in range(b - a):
                learner.backward_task(learner.task_loss(loss_fn, (s[0][i], s[1][i]), (q[0][i], q[1][i]))[0])
            learner.outer_step()
    return _state(learner)


def trpo_toy(world) -> Dict[str, torch.Tensor]:
    """Two TRPO steps on a smooth, well-conditioned toy: per-task quadratic surrogates and a
    per-task quadratic KL, this rank's share weighted by its fraction of the tasks."""
    g = torch.Generator().manual_seed(7)
    centres = torch.randn(TASKS, 4, generator=g)
    scales = 0.5 + torch.rand(TASKS, 4, generator=g)
    a, b = world.split(TASKS)
    weight = (b - a) / TASKS
    params = {"w": torch.zeros(4)}
    for _ in range(2):
        w0 = params["w"].clone()

        def objective(p):
            d = p["w"] - centres[a:b]
            return weight * (d * d * scales[a:b]).sum(1).mean(), \
                weight * (((p["w"] - w0) ** 2) * scales[a:b]).sum(1).mean()

        step, _ = trpo_step(params, objective, world=world)
        params = {"w": params["w"] + step["w"]}
    return params


def main(out: str) -> None:
    torch.set_num_threads(1)
    world = init_world(torch.device("cpu"))
    cases = {
        "vmap-mean": lambda: meta_train(world, "vmap"),
        "vmap-sum": lambda: meta_train(world, "vmap", task_reduction="sum"),
        "loop-l2f-metasgd-clamp-l2": lambda: meta_train(world, "loop", l2f=SEED_PAPER_L2F, lr_mode="elementwise",
                                                       learn_lr=True, clamp=0.5, l2_meta_reg="eqc"),
        "backward-frozen": lambda: meta_train(world, "backward", freeze=["0.*"]),
        "grads-mean": lambda: meta_train(world, "grads"),
        "grads-pcgrad": lambda: meta_train(world, "grads", surgery="pcgrad"),
        "grads-graddrop": lambda: meta_train(world, "grads", surgery="graddrop"),
        "backward-pcgrad": lambda: meta_train(world, "backward", surgery="pcgrad"),
        "trpo": lambda: trpo_toy(world),
    }
    results = {name: run() for name, run in cases.items()}
    picked = world.gather_indexed([(world.rank, world.rank)])
    results["gather_indexed"] = {"ranks": torch.tensor(picked)}
    def refuse() -> None:
        raise ValueError("rank 0 says no")

    try:
        world.on_main(refuse)
    except ValueError as exc:
        results["on_main_raises_everywhere"] = {"ok": torch.tensor(str(exc) == "rank 0 says no")}
    everywhere = world.all_gather_object(results["on_main_raises_everywhere"]["ok"].item())
    results["on_main_raises_everywhere"] = {"ok": torch.tensor(all(everywhere))}
    if world.is_main:
        Path(out).mkdir(parents=True, exist_ok=True)
        for name, state in results.items():
            torch.save(state, Path(out) / f"{name}.pt")
    close_world(world)


if __name__ == "__main__":
    main(sys.argv[1])
