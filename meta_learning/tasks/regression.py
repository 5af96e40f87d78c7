"""Sinusoid regression with the MAML protocol: data, model, meta-training, evaluation, outputs.

Tasks: y = A sin(x + phi), A ~ U[0.1, 5], phi ~ U[0, pi], x ~ U[-5, 5]; K support and K query points
per training task; model MLP 1-40-40-1 with ReLU; MSE; inner SGD lr 0.01; Adam outer 1e-3.
Evaluation: ``eval_tasks`` held-out tasks drawn from a FIXED evaluation seed (the same tasks for
every run, distinct from any training stream), K support points, 100 query points per task, MSE
after 0, 1 and 10 inner steps with a 95% CI (1.96 std / sqrt(n)).

Determinism and resume: the model is initialised from ``seed``; meta-iteration ``i`` draws its
tasks and any DropGrad/GradDrop/PCGrad randomness after the run's reseed with
``meta_learning.run.iteration_seed(seed, i)``, so a run resumed from ``checkpoint.pt`` continues
exactly as an uninterrupted run would. This module draws the meta-batch and steps the learner;
resume, seeds, checkpoints, history and the skip of non-finite steps are
:class:`meta_learning.run.MetaRun`'s.

Devices and processes: tasks are drawn on the CPU (the same tasks on every device) and moved to
the learner's device. Under torchrun every rank draws the whole meta-batch and adapts its
``world.split`` share; the engine all-reduces the meta-gradients. Evaluation chunks are shared
round-robin and gathered, so the numbers are one process's. Rank 0 alone writes files.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from foundation.distributed import SINGLE, World
from foundation.fileio import atomic_path, atomic_write_text

from ..functional import detach_params, functional_loss
from ..l2f import SEED_PAPER_L2F
from ..learner import MetaConfig, MetaLearner
from ..run import MetaRun, RunConfig, Step
from ..stats import mean_ci95

__all__ = ["RegressionConfig", "sample_tasks", "make_model", "build_learner", "train", "evaluate",
           "run", "run_info", "EVAL_SEED", "load_gamma"]

EVAL_SEED = 20_260_601  # evaluation tasks: fixed, shared by every run, never used for training
AMP_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)


@dataclass
class RegressionConfig:
    """One sinusoid experiment.  ``method`` fields map 1:1 onto :class:`MetaConfig`."""

    shots: int = 5
    iterations: int = 3000
    meta_batch: int = 25
    inner_steps: int = 1
    inner_lr: float = 0.01
    outer_lr: float = 1e-3
    first_order: bool = False
    meta_sgd: bool = False
    l2f: bool = False                      # the paper's L2F (SEED_PAPER_L2F)
    dropgrad: Optional[str] = None
    dropgrad_rate: float = 0.1
    surgery: Optional[str] = None
    l2_meta_reg: Optional[str] = None
    l2_lambda0: float = 5e-4
    l2_gamma: Optional[Dict[str, float]] = None
    eval_tasks: int = 600
    eval_query: int = 100
    eval_steps: Tuple[int, ...] = (0, 1, 10)
    seed: int = 0
    checkpoint_every: int = 1000

    def validate(self) -> "RegressionConfig":
        def check(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)
        check(self.shots >= 1, f"--shots must be a positive integer, got {self.shots}")
        check(self.iterations >= 0, f"--iterations must be >= 0, got {self.iterations}")
        check(self.meta_batch >= 1, f"--meta-batch must be >= 1, got {self.meta_batch}")
        check(self.eval_tasks >= 1, f"--eval-tasks must be >= 1, got {self.eval_tasks}")
        check(self.inner_steps >= 1, f"inner steps must be >= 1, got {self.inner_steps}")
        check(self.inner_lr > 0 and self.outer_lr > 0, "learning rates must be positive")
        check(0.0 <= self.dropgrad_rate < 1.0, f"--dropgrad-rate must be in [0, 1), got {self.dropgrad_rate}")
        check(self.checkpoint_every >= 1, "checkpoint interval must be >= 1")
        self.meta_config()  # validates the method fields
        return self

    def meta_config(self) -> MetaConfig:
        return MetaConfig(
            inner_steps=self.inner_steps, inner_lr=self.inner_lr, first_order=self.first_order,
            lr_mode="elementwise" if self.meta_sgd else "scalar", learn_lr=self.meta_sgd,
            l2f=SEED_PAPER_L2F if self.l2f else None, dropgrad=self.dropgrad,
            dropgrad_rate=self.dropgrad_rate, surgery=self.surgery, l2_meta_reg=self.l2_meta_reg,
            l2_lambda0=self.l2_lambda0, l2_gamma=self.l2_gamma, outer_lr=self.outer_lr,
        ).validate()

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["eval_steps"] = list(self.eval_steps)
        return d

    def training_key(self) -> Dict[str, Any]:
        """Fields that must match for a checkpoint to be resumed (not iterations/eval)."""
        d = self.to_dict()
        for k in ("iterations", "eval_tasks", "eval_query", "eval_steps", "checkpoint_every"):
            d.pop(k)
        return d


def sample_tasks(n: int, shots: int, query: int, generator: Optional[torch.Generator] = None,
                 dtype: torch.dtype = torch.float32) -> Tuple[Tuple[Tensor, Tensor], Tuple[Tensor, Tensor], Tensor, Tensor]:
    """n sinusoid tasks: support (x, y) of shape (n, shots, 1), query (n, query, 1), amp, phase."""
    def u(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=generator, dtype=dtype)
    amp = u(*AMP_RANGE, n, 1, 1)
    phase = u(*PHASE_RANGE, n, 1, 1)
    x = u(*X_RANGE, n, shots + query, 1)
    y = amp * torch.sin(x + phase)
    return (x[:, :shots], y[:, :shots]), (x[:, shots:], y[:, shots:]), amp, phase


def make_model() -> nn.Module:
    """MAML's regressor: MLP 1-40-40-1 with ReLU."""
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))


def mse(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).mean()


def build_learner(cfg: RegressionConfig, device: Optional[torch.device] = None) -> Tuple[MetaLearner, Any]:
    """Model initialised from ``cfg.seed`` (on the CPU, so every device starts from the same
    weights) and moved to ``device``, wrapped in a learner, and the functional loss."""
    torch.manual_seed(cfg.seed)
    model = make_model()
    if device is not None:
        model = model.to(device)
    learner = MetaLearner(model, cfg.meta_config())
    return learner, functional_loss(model, mse)


def _to(pair: Tuple[Tensor, Tensor], device: torch.device, share: Optional[Tuple[int, int]] = None,
        ) -> Tuple[Tensor, Tensor]:
    """(x, y) of a meta-batch on ``device``, only the tasks ``[start, stop)`` of ``share``."""
    if share is not None:
        pair = (pair[0][share[0]:share[1]], pair[1][share[0]:share[1]])
    return pair[0].to(device), pair[1].to(device)


def train(cfg: RegressionConfig, out_dir: Optional[Path] = None, resume: bool = True,
          progress: bool = True, stop_after: Optional[int] = None, device: Optional[torch.device] = None,
          world: World = SINGLE) -> Tuple[MetaLearner, Any, Dict[str, Any]]:
    """Meta-train (resuming from ``out_dir/checkpoint.pt`` if present and ``resume``) on
    ``device`` (default CPU), this rank adapting its share of each meta-batch.

    ``stop_after`` ends early after that many iterations in total (checkpoint written) - used to
    test resuming.  Returns (learner, loss_fn, training info).
    """
    device = torch.device("cpu") if device is None else device
    learner, loss_fn = build_learner(cfg, device)
    ckpt = str(Path(out_dir) / "checkpoint.pt") if out_dir is not None else None
    run = MetaRun(learner, cfg.training_key(),
                  RunConfig(cfg.iterations, cfg.seed, cfg.checkpoint_every, desc=f"meta-train {cfg.shots}-shot"),
                  ckpt, resume=resume, stop_after=stop_after, progress=progress, world=world)
    running = run.start().get("running")
    share = world.split(cfg.meta_batch) if world.distributed else None

    def step(it: int) -> Step:
        nonlocal running
        # the run seeded iteration_seed(seed, it): every rank draws the same meta-batch
        support, query, _, _ = sample_tasks(cfg.meta_batch, cfg.shots, cfg.shots)
        support, query = _to(support, device, share), _to(query, device, share)
        run.rank_stream(it)    # other DropGrad noise than rank 0's
        if cfg.surgery:  # per-task meta-gradients in one vmap(grad) pass
            losses, grads, _ = learner.meta_batch_grads(loss_fn, support, query, training=True)
            stats = learner.outer_step(losses, task_grads=grads)
        else:
            losses, _ = learner.meta_batch_losses(loss_fn, support, query, training=True)
            stats = learner.outer_step(losses)
        running = stats["loss"] if running is None else 0.98 * running + 0.02 * stats["loss"]
        if (it + 1) % 100:
            return Step(stats["loss"], stats["grad_norm"])
        return Step(stats["loss"], stats["grad_norm"], [it + 1, running], {"loss": f"{running:.3f}"})

    run.train(step, keep=lambda: {"running": running, "config": cfg.to_dict()})
    return learner, loss_fn, {"iterations": run.end, "history": run.history, "seconds": round(run.seconds, 2)}


def evaluate(learner: MetaLearner, loss_fn: Any, cfg: RegressionConfig, chunk: int = 200,
             world: World = SINGLE) -> Tuple[Dict[str, Dict[str, float]], Optional[Dict[str, float]]]:
    """MSE after each of ``cfg.eval_steps`` inner steps on the fixed held-out tasks (no DropGrad),
    mean and 95% CI; and the mean gamma per tensor with L2F.  Runs on the learner's device; the
    chunks of ``chunk`` tasks are shared round-robin over ``world`` and gathered in order (every
    chunk computed as one process computes it, so the numbers do not depend on the world size)."""
    from torch.func import vmap

    gen = torch.Generator().manual_seed(EVAL_SEED + cfg.shots)
    support, query, _, _ = sample_tasks(cfg.eval_tasks, cfg.shots, cfg.eval_query, gen)
    steps = max(cfg.eval_steps)
    start = detach_params(learner.start())
    device = next(iter(start.values())).device

    def one(s: Any, q: Any) -> Tuple[Tensor, Tensor]:
        _, info = learner.adapt(start, loss_fn, s, steps=steps, training=False, keep_path=True)
        errs = torch.stack([loss_fn(p, q) for p in info["path"]])
        g = info["gamma"] if info["gamma"] is not None else errs.new_zeros(())
        return errs.detach(), g.detach()

    done = []
    for i in world.stride(range(0, cfg.eval_tasks, chunk)):
        s = _to(support, device, (i, i + chunk))
        q = _to(query, device, (i, i + chunk))
        e, g = vmap(one, randomness="different")(s, q)
        done.append((i, (e.cpu(), g.cpu())))
    parts = world.gather_indexed(done)
    err = torch.cat([e for e, _ in parts])  # (tasks, steps + 1)
    gammas = [g for _, g in parts]
    out = {}
    for k in cfg.eval_steps:
        out[str(k)] = mean_ci95(err[:, k])
    gamma = None
    if learner.attenuator is not None:
        g = torch.cat(gammas).double().mean(0)
        gamma = {name: float(v) for name, v in zip(learner.inner_names, g)}
    return out, gamma


def plot_fits(learner: MetaLearner, loss_fn: Any, cfg: RegressionConfig, path: Path, n: int = 4) -> None:
    """PNG of a few held-out tasks: truth, support points, fits after 0, 1 and 10 steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch.func import functional_call

    gen = torch.Generator().manual_seed(EVAL_SEED + 1000 + cfg.shots)
    support, _, amp, phase = sample_tasks(n, cfg.shots, 1, gen)
    xs = torch.linspace(*X_RANGE, 200).unsqueeze(1)
    start = detach_params(learner.start())
    device = next(iter(start.values())).device
    steps = max(cfg.eval_steps)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
    for i in range(n):
        s = (support[0][i], support[1][i])
        _, info = learner.adapt(start, loss_fn, _to(s, device), steps=steps, training=False, keep_path=True)
        ax = axes[0][i]
        ax.plot(xs, amp[i, 0] * torch.sin(xs + phase[i, 0]), "k-", lw=2, label="truth")
        for k, style in zip(cfg.eval_steps, ("C0:", "C1--", "C2-")):
            with torch.no_grad():
                pred = functional_call(learner.model, info["path"][k], (xs.to(device),)).cpu()
            ax.plot(xs, pred, style, label=f"{k} step{'s' if k != 1 else ''}")
        ax.plot(s[0], s[1], "r^", ms=7, label=f"{cfg.shots} support")
        ax.set_xlim(*X_RANGE)
        if i == 0:
            ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(_method_name(cfg) + f", {cfg.shots}-shot, {cfg.iterations} iterations")
    fig.tight_layout()
    with atomic_path(str(path)) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def _method_name(cfg: RegressionConfig) -> str:
    parts = ["FOMAML" if cfg.first_order else "MAML"]
    if cfg.meta_sgd:
        parts.append("Meta-SGD")
    if cfg.l2f:
        parts.append("L2F")
    if cfg.dropgrad:
        parts.append(f"DropGrad({cfg.dropgrad}, {cfg.dropgrad_rate})")
    if cfg.surgery:
        parts.append({"pcgrad": "PCGrad", "graddrop": "GradDrop"}[cfg.surgery])
    if cfg.l2_meta_reg:
        parts.append(f"l2 meta-reg ({cfg.l2_meta_reg})")
    return "+".join(parts)


def load_gamma(path: Path) -> Dict[str, float]:
    """Gammas for Eq. C from a JSON file: an L2F run's ``results.json`` (key ``gamma``) or a plain
    name -> value mapping."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    gamma = data.get("gamma", data) if isinstance(data, dict) else None
    if not isinstance(gamma, dict) or not gamma or not all(isinstance(v, (int, float)) for v in gamma.values()):
        raise ValueError(f"{path} holds no gamma mapping (name -> number)")
    return {str(k): float(v) for k, v in gamma.items()}


def run(cfg: RegressionConfig, out_dir: Path, resume: bool = True, progress: bool = True,
        plot: bool = True, stop_after: Optional[int] = None, device: Optional[torch.device] = None,
        world: World = SINGLE) -> Dict[str, Any]:
    """Train, evaluate, and write ``results.json``, ``checkpoint.pt`` and ``fits.png`` (rank 0
    writes; every rank returns the results)."""
    out_dir = Path(out_dir)
    if world.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    learner, loss_fn, info = train(cfg, out_dir, resume, progress, stop_after, device, world)
    if stop_after is not None and info["iterations"] < cfg.iterations:
        return {"stopped_at": info["iterations"]}
    t0 = time.perf_counter()
    mse_, gamma = evaluate(learner, loss_fn, cfg, world=world)
    results: Dict[str, Any] = {"mse": mse_, "config": {**cfg.to_dict(), "method": _method_name(cfg)},
                               "train": {"iterations": info["iterations"], "seconds": info["seconds"],
                                         "loss_history": info["history"]},
                               "eval_seconds": round(time.perf_counter() - t0, 2)}
    if gamma is not None:
        results["gamma"] = gamma
    if learner.config.learn_lr:
        results["inner_lr_mean"] = {n: float(r.detach().mean()) for n, r in learner.inner_lr.rates().items()}
    results["run"] = run_info(learner, world)
    if world.is_main:
        atomic_write_text(str(out_dir / "results.json"), json.dumps(results, indent=1) + "\n")
        if plot:
            plot_fits(learner, loss_fn, cfg, out_dir / "fits.png")
    return results


def run_info(learner: MetaLearner, world: World) -> Dict[str, Any]:
    """Where a run ran: the device of its meta-parameters and the number of processes."""
    return {"device": str(next(learner.parameters()).device), "processes": world.size}
