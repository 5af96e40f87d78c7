"""Meta-RL experiment: MAML (+ L2F / DropGrad / Meta-SGD) with a VPG inner loop and TRPO outer loop.

Protocol (seed, L2F appendix C.3 after MAML): TRPO for 500 outer iterations; the start with the
highest training average return (mean return of the post-adaptation trajectories of the
iteration) is the one evaluated; evaluation on fixed held-out tasks after 0..4 VPG steps, each
step on fresh trajectories sampled with the current adapted policy.

Determinism and resume: iteration ``i`` draws its tasks, resets and action noise from
``(seed, i)`` and reseeds torch's global RNG (DropGrad) from it too (streams of its own, named by
``_seed``, which evaluation shares), so a run resumed from its checkpoint is bit-identical to an
uninterrupted one. This module samples, adapts and takes the TRPO step and keeps the best start;
resume, checkpoints, the history and the skip of non-finite steps are
:class:`meta_learning.run.MetaRun`'s.

Devices and processes: the environments step on the CPU, the policy, baselines, adaptation and
TRPO run on the chosen device. Under torchrun every rank draws the iteration's tasks and the
randomness of all of them and samples and adapts its ``world.split`` share; TRPO sums its gradient,
Hessian-vector products and line-search values over the ranks, the training returns (model
selection) are the means over all ranks' tasks, and evaluation chunks are shared round-robin and
gathered. Rank 0 alone reads the checkpoint to resume (and gives it to the others) and writes files.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from foundation.distributed import SINGLE, World
from foundation.fileio import atomic_path, atomic_write_text

from ...functional import detach_params
from ...l2f import SEED_PAPER_L2F
from ...learner import MetaConfig, MetaLearner
from ...run import MetaRun, RunConfig, Step
from ...stats import mean_ci95
from ..regression import run_info
from .envs import ENV_NAMES, MUJOCO_ENVS, make_batch_env, require_mujoco
from .losses import vpg_loss
from .maml import HVP_MODES, adapt_from, adapt_tasks, outer_objective
from .policy import GaussianMLPPolicy
from .sampler import Episodes, process, rollout
from .trpo import TRPOConfig, trpo_step

__all__ = ["RLConfig", "PROTOCOLS", "config_for", "build", "train", "evaluate", "run", "EVAL_SEED"]

EVAL_SEED = 20_261_213  # held-out evaluation tasks and noise: the same for every run

# (horizon, meta-batch, trajectories per task, eval tasks)
PROTOCOLS: Dict[str, Dict[str, Tuple[int, int, int, int]]] = {
    "seed": {"2dnav": (100, 20, 20, 40), "mujoco": (200, 40, 40, 40)},
    "reduced": {"2dnav": (100, 20, 20, 40), "mujoco": (100, 20, 10, 20)},
}


@dataclass
class RLConfig:
    """One meta-RL run.  Defaults: the seed's 2D-navigation protocol."""

    env: str = "2dnav"
    iterations: int = 500
    meta_batch: int = 20
    trajectories: int = 20
    horizon: int = 100
    eval_tasks: int = 40
    eval_steps: int = 4
    inner_lr: float = 0.1
    inner_steps: int = 1
    first_order: bool = False
    meta_sgd: bool = False
    l2f: bool = False                # the paper's L2F (SEED_PAPER_L2F)
    dropgrad: Optional[str] = None
    dropgrad_rate: float = 0.1
    gamma: float = 0.99
    gae_lambda: float = 1.0
    hidden: Tuple[int, ...] = (100, 100)
    activation: str = "relu"
    trpo: TRPOConfig = field(default_factory=TRPOConfig)
    hvp: str = "first_order"         # KL Hessian through the adaptation: first_order | exact
    hvp_stride: int = 5              # every k-th post-adaptation time step in the KL Hessian
    seed: int = 0
    checkpoint_every: int = 10

    def validate(self) -> "RLConfig":
        def check(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)
        check(self.env in ENV_NAMES, f"--env must be one of {', '.join(ENV_NAMES)}, got {self.env!r}")
        for name in ("meta_batch", "trajectories", "horizon", "eval_tasks", "inner_steps", "checkpoint_every"):
            check(getattr(self, name) >= 1, f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        check(self.trajectories >= 2, f"--trajectories must be >= 2 (advantages are normalised), got {self.trajectories}")
        check(self.iterations >= 0, f"--iterations must be >= 0, got {self.iterations}")
        check(self.eval_steps >= 0, f"--eval-steps must be >= 0, got {self.eval_steps}")
        check(self.inner_lr > 0, f"--inner-lr must be positive, got {self.inner_lr}")
        check(0.0 <= self.dropgrad_rate < 1.0, f"--dropgrad-rate must be in [0, 1), got {self.dropgrad_rate}")
        check(0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1, "gamma must be in (0, 1], lambda in [0, 1]")
        check(self.trpo.max_kl > 0, "max KL must be positive")
        check(self.hvp in HVP_MODES, f"--hvp must be one of {', '.join(HVP_MODES)}, got {self.hvp!r}")
        check(1 <= self.hvp_stride <= self.horizon, f"--hvp-stride must be in [1, horizon], got {self.hvp_stride}")
        self.meta_config()
        return self

    def meta_config(self) -> MetaConfig:
        return MetaConfig(inner_steps=self.inner_steps, inner_lr=self.inner_lr, first_order=self.first_order,
                          lr_mode="elementwise" if self.meta_sgd else "scalar", learn_lr=self.meta_sgd,
                          l2f=SEED_PAPER_L2F if self.l2f else None, dropgrad=self.dropgrad, dropgrad_rate=self.dropgrad_rate).validate()

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def training_key(self) -> Dict[str, Any]:
        """Fields a checkpoint must share to be resumed."""
        d = self.to_dict()
        for k in ("iterations", "eval_tasks", "eval_steps", "checkpoint_every"):
            d.pop(k)
        return d

    def method(self) -> str:
        parts = ["FOMAML" if self.first_order else "MAML"]
        if self.meta_sgd:
            parts.append("Meta-SGD")
        if self.l2f:
            parts.append("L2F")
        if self.dropgrad:
            parts.append(f"DropGrad({self.dropgrad}, {self.dropgrad_rate})")
        return "+".join(parts)


def config_for(env: str, protocol: str = "seed", **overrides: Any) -> RLConfig:
    """The protocol's horizon / meta-batch / trajectories / eval tasks for ``env``, then overrides
    (None values are ignored)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    h, b, n, e = PROTOCOLS[protocol]["2dnav" if env == "2dnav" else "mujoco"]
    cfg = RLConfig(env=env, horizon=h, meta_batch=b, trajectories=n, eval_tasks=e)
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def _seed(*parts: int) -> int:
    h = 17
    for p in parts:
        h = (h * 1_000_003 + int(p) * 7_919 + 1) % (2 ** 62)
    return h


def build(cfg: RLConfig, device: Optional[torch.device] = None) -> Tuple[Any, GaussianMLPPolicy, MetaLearner]:
    """The batch environment, the policy (initialised from ``cfg.seed`` on the CPU, then moved to
    ``device``) and its learner."""
    if cfg.env in MUJOCO_ENVS:
        require_mujoco(cfg.env)
    env = make_batch_env(cfg.env)
    torch.manual_seed(cfg.seed)
    policy = GaussianMLPPolicy(env.obs_dim, env.act_dim, cfg.hidden, cfg.activation)
    if device is not None:
        policy = policy.to(device)
    return env, policy, MetaLearner(policy, cfg.meta_config())


def _mean_return(episodes: Episodes, world: World) -> float:
    """The mean over ALL ranks' tasks of the per-task average return (the ranks' shares are
    contiguous, so gathering in rank order gives one process's task order)."""
    local = episodes.task_returns().cpu()
    return float(torch.cat(world.gather_indexed([(world.rank, local)])).mean()) if world.distributed \
        else float(local.mean())


def train(cfg: RLConfig, out_dir: Optional[Path] = None, resume: bool = True, progress: bool = True,
          stop_after: Optional[int] = None, device: Optional[torch.device] = None, world: World = SINGLE,
          ) -> Tuple[Any, GaussianMLPPolicy, MetaLearner, Dict[str, Any]]:
    """Meta-train with TRPO on ``device`` (default CPU), this rank sampling and adapting its share
    of each meta-batch; returns env, policy, learner (holding the BEST start) and info."""
    env, policy, learner = build(cfg, device)
    loss_fn = vpg_loss(policy)
    run = MetaRun(learner, cfg.training_key(),
                  RunConfig(cfg.iterations, cfg.seed, cfg.checkpoint_every, seeding="domain",
                            desc=f"{cfg.env} {cfg.method()}"),
                  str(Path(out_dir) / "checkpoint.pt") if out_dir is not None else None, resume=resume,
                  stop_after=stop_after, metadata={"config": json.dumps(cfg.to_dict())}, progress=progress,
                  world=world)
    best: Dict[str, Any] = run.start().get("best", {"return": -math.inf, "iteration": -1, "state": None})
    share = world.split(cfg.meta_batch) if world.distributed else None
    weight = (share[1] - share[0]) / cfg.meta_batch if share is not None else 1.0

    def step(it: int) -> Step:
        nonlocal best
        # the iteration's own streams (tasks, resets, action noise, DropGrad), the same on every rank
        rng = np.random.default_rng([cfg.seed, it])
        gen = torch.Generator().manual_seed(_seed(cfg.seed, it, 1))
        torch_seed = _seed(cfg.seed, it, 2)
        tasks = env.sample_tasks(cfg.meta_batch, rng)
        start = detach_params(learner.start())
        train_eps = rollout(env, policy, start, tasks, cfg.trajectories, cfg.horizon, gen, rng, share=share)
        train_batch = process(train_eps, cfg.gamma, cfg.gae_lambda)
        leaves = {n: p.detach().requires_grad_(True) for n, p in learner.trainable().items()}
        fast0 = adapt_from(learner, leaves, loss_fn, train_batch, torch_seed)
        valid_eps = rollout(env, policy, fast0, tasks, cfg.trajectories, cfg.horizon, gen, rng, batched=True,
                            share=share)
        valid_batch = process(valid_eps, cfg.gamma, cfg.gae_lambda)
        ret_before = _mean_return(train_eps, world)
        ret_after = _mean_return(valid_eps, world)
        if ret_after > best["return"]:
            best = {"return": ret_after, "iteration": it,
                    "state": {k: v.detach().clone() for k, v in learner.state_dict().items()}}
        objective, kl_hessian = outer_objective(learner, policy, loss_fn, train_batch, valid_batch, torch_seed,
                                                fast0, cfg.hvp, cfg.hvp_stride, weight)
        exact_kl = cfg.hvp == "exact" and cfg.hvp_stride == 1
        deltas, stats = trpo_step(leaves, objective, cfg.trpo, kl_objective=None if exact_kl else kl_hessian,
                                  world=world)
        del fast0
        learner.apply_update(deltas)
        return Step(stats["loss_before"], stats["grad_norm"], [it, ret_before, ret_after, stats["accepted"],
                                                               stats["kl"]],
                    {"before": f"{ret_before:.1f}", "after": f"{ret_after:.1f}", "best": f"{best['return']:.1f}"})

    run.train(step, keep=lambda: {"best": best})
    info = {"iterations": run.end, "seconds": round(run.seconds, 2), "history": run.history,
            "best_iteration": best["iteration"], "best_return": best["return"]}
    if best["state"] is not None:
        learner.load_state_dict(best["state"])
    return env, policy, learner, info


def evaluate(env: Any, policy: GaussianMLPPolicy, learner: MetaLearner, cfg: RLConfig, chunk: int = 20,
             world: World = SINGLE) -> Tuple[Dict[str, Dict[str, float]], Optional[List[float]]]:
    """Mean return (and 95% CI over tasks) after 0..eval_steps VPG steps on the fixed held-out tasks,
    no DropGrad; and the mean L2F gamma per adapted tensor.  Every chunk of ``chunk`` tasks has its
    own seeds; the chunks are shared round-robin over ``world`` and gathered in order, so the
    numbers are one process's."""
    loss_fn = vpg_loss(policy)
    rng = np.random.default_rng(EVAL_SEED)
    tasks = env.sample_tasks(cfg.eval_tasks, rng)
    done = []
    start = detach_params(learner.start())
    for c in world.stride(range(0, len(tasks), chunk)):
        gammas = []
        sub = tasks[c:c + chunk]
        gen = torch.Generator().manual_seed(_seed(EVAL_SEED, c))
        crng = np.random.default_rng([EVAL_SEED, c])
        params, batched, cols = start, False, []
        for k in range(cfg.eval_steps + 1):
            eps = rollout(env, policy, params, sub, cfg.trajectories, cfg.horizon, gen, crng, batched=batched)
            cols.append(eps.task_returns())
            if k == cfg.eval_steps:
                break
            batch = process(eps, cfg.gamma, cfg.gae_lambda)
            fast, gamma = adapt_tasks(learner, loss_fn, batch, params=params if batched else None,
                                      steps=1, training=False, attenuate=not batched)
            if gamma is not None:
                gammas.append(gamma.detach().cpu())
            params, batched = {n: v.detach() for n, v in fast.items()}, True
        done.append((c, (torch.stack(cols, 1).cpu(), gammas)))
    parts = world.gather_indexed(done)
    gammas = [g for _, chunk_gammas in parts for g in chunk_gammas]
    r = torch.cat([ret for ret, _ in parts]).double()  # (tasks, steps + 1)
    out = {}
    for k in range(cfg.eval_steps + 1):
        out[str(k)] = mean_ci95(r[:, k])
    gamma_mean = [float(v) for v in torch.cat(gammas).double().mean(0)] if gammas else None
    return out, gamma_mean


def plot_returns(results: Dict[str, Any], path: Path) -> None:
    """Return against the number of adaptation steps, with the 95% CI (as in MAML's figures)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(int(k) for k in results["return"])
    mean = [results["return"][str(k)]["mean"] for k in steps]
    ci = [results["return"][str(k)]["ci95"] for k in steps]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.errorbar(steps, mean, yerr=ci, marker="o", capsize=3, label=results["config"]["method"])
    ax.set_xlabel("number of gradient steps")
    ax.set_ylabel("average return")
    ax.set_xticks(steps)
    ax.set_title(results["config"]["env"])
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(str(path)) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def run(cfg: RLConfig, out_dir: Path, resume: bool = True, progress: bool = True, plot: bool = True,
        stop_after: Optional[int] = None, device: Optional[torch.device] = None,
        world: World = SINGLE) -> Dict[str, Any]:
    """Train, evaluate the best start, write ``results.json``, ``checkpoint.pt`` and ``returns.png``
    (rank 0 writes; every rank returns the results)."""
    out_dir = Path(out_dir)
    if world.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    env, policy, learner, info = train(cfg, out_dir, resume, progress, stop_after, device, world)
    try:
        if stop_after is not None and info["iterations"] < cfg.iterations:
            return {"stopped_at": info["iterations"]}
        t0 = time.perf_counter()
        ret, gamma = evaluate(env, policy, learner, cfg, world=world)
    finally:
        env.close()
    results: Dict[str, Any] = {
        "return": ret, "config": {**cfg.to_dict(), "method": cfg.method()},
        "train": {"iterations": info["iterations"], "seconds": info["seconds"],
                  "best_iteration": info["best_iteration"], "best_return": info["best_return"],
                  "history_columns": ["iteration", "return_before", "return_after", "accepted", "kl"],
                  "history": info["history"]},
        "eval_seconds": round(time.perf_counter() - t0, 2)}
    if gamma is not None:
        results["gamma"] = dict(zip(learner.inner_names, gamma))
    results["run"] = run_info(learner, world)
    if world.is_main:
        atomic_write_text(str(out_dir / "results.json"), json.dumps(results, indent=1) + "\n")
        if plot:
            plot_returns(results, out_dir / "returns.png")
    return results
