"""MAML for RL on the engine: per-task VPG adaptation through ``MetaLearner.adapt`` (vmapped over
the meta-batch) and the TRPO outer objective on the post-adaptation trajectories."""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from ...learner import MetaLearner
from .policy import gaussian_kl, gaussian_log_prob, policy_forward
from .sampler import TaskBatch

__all__ = ["adapt_tasks", "adapt_from", "outer_objective", "HVP_MODES"]

HVP_MODES = ("first_order", "exact")


def adapt_tasks(learner: MetaLearner, loss_fn: Callable, batch: TaskBatch,
                params: Optional[Mapping[str, Tensor]] = None, steps: int = 1, training: bool = True,
                attenuate: bool = True, first_order: Optional[bool] = None,
                ) -> Tuple[Dict[str, Tensor], Optional[Tensor]]:
    """One ``learner.adapt`` per task under ``vmap``: params (T, ...) after ``steps`` VPG steps and
    gamma (T, n) with L2F.  ``params=None`` starts every task from the meta-learned start; else
    ``params`` holds one (already adapted) set per task and L2F is skipped unless ``attenuate``."""
    from torch.func import vmap

    def one(p: Optional[Mapping[str, Tensor]], b: Any) -> Tuple[Dict[str, Tensor], Tensor]:
        fast, info = learner.adapt(p, loss_fn, b, steps=steps, training=training, attenuate=attenuate,
                                   first_order=first_order)
        g = info["gamma"]
        return fast, (g if g is not None else b[2].new_zeros(()))

    in_dims = (None if params is None else 0, 0)
    fast, gamma = vmap(one, in_dims=in_dims, randomness="different")(
        None if params is None else dict(params), batch.as_tuple())
    return fast, (gamma if learner.attenuator is not None and (params is None or attenuate) else None)


def adapt_from(learner: MetaLearner, meta_params: Mapping[str, Tensor], loss_fn: Callable,
               batch: TaskBatch, seed: int, first_order: Optional[bool] = None) -> Dict[str, Tensor]:
    """:func:`adapt_tasks` (training mode) with the learner's meta-parameters replaced by
    ``meta_params`` (differentiable w.r.t. them), the global RNG reseeded with ``seed`` first so
    DropGrad draws the same masks at every call."""
    from torch.func import functional_call

    def inner() -> Dict[str, Tensor]:
        torch.manual_seed(seed)
        return adapt_tasks(learner, loss_fn, batch, steps=learner.config.inner_steps, training=True,
                           first_order=first_order)[0]

    return functional_call(learner, dict(meta_params), (inner,), strict=False)


def _subsample(batch: TaskBatch, stride: int) -> TaskBatch:
    return TaskBatch(batch.obs[:, :, ::stride], batch.actions[:, :, ::stride], batch.advantages[:, :, ::stride])


def outer_objective(learner: MetaLearner, policy: nn.Module, loss_fn: Callable, train: TaskBatch,
                    valid: TaskBatch, seed: int, fast0: Optional[Dict[str, Tensor]] = None,
                    hvp: str = "first_order", hvp_stride: int = 1, weight: float = 1.0,
                    ) -> Tuple[Callable[[Mapping[str, Tensor]], Tuple[Tensor, Tensor]],
                               Callable[[Mapping[str, Tensor]], Tensor]]:
    """TRPO's ``objective(meta_params) -> (surrogate loss, mean KL)`` and the KL for its Hessian.

    Surrogate: -mean(ratio * A) on the post-adaptation trajectories ``valid``, ratio = pi / pi_old,
    pi adapted from the candidate meta-parameters on ``train``.  The first call (at the current
    meta-parameters) fixes pi_old; ``fast0``, the adapted params already computed there with their
    graph, saves that call its inner loop.

    The KL for the Hessian uses every ``hvp_stride``-th post-adaptation time step and, with
    ``hvp="first_order"``, the first-order Jacobian of the adaptation (the inner gradient held
    constant, L2F's gamma and Meta-SGD's rates still differentiated): a much cheaper curvature,
    while the line search checks the exact KL and surrogate.  ``"exact"`` differentiates the inner
    gradient too.

    ``weight`` scales both (surrogate and KL): a torchrun rank passes its fraction of the
    meta-batch's tasks, so the ranks' objectives sum to the whole meta-batch's means."""
    from torch.func import vmap

    if hvp not in HVP_MODES:
        raise ValueError(f"hvp must be one of {HVP_MODES}, got {hvp!r}")
    old: Dict[str, Tensor] = {}

    def policy_on(fast: Mapping[str, Tensor], obs: Tensor) -> Tuple[Tensor, Tensor]:
        return vmap(lambda p, o: policy_forward(policy, p, o))(dict(fast), obs)

    def objective(mp: Mapping[str, Tensor]) -> Tuple[Tensor, Tensor]:
        first = not old
        fast = fast0 if (first and fast0 is not None) else adapt_from(learner, mp, loss_fn, train, seed)
        mean, log_std = policy_on(fast, valid.obs)
        logp = gaussian_log_prob(mean, log_std, valid.actions)
        if first:
            old.update(mean=mean.detach(), log_std=log_std.detach(), logp=logp.detach())
        surr = -(torch.exp(logp - old["logp"]) * valid.advantages).mean()
        kl = gaussian_kl(old["mean"], old["log_std"], mean, log_std).mean()
        return (surr, kl) if weight == 1.0 else (surr * weight, kl * weight)

    def kl_hessian_objective(mp: Mapping[str, Tensor]) -> Tensor:
        if not old:
            raise RuntimeError("call the objective at the current meta-parameters first")
        fast = adapt_from(learner, mp, loss_fn, train, seed, first_order=hvp == "first_order")
        sub = _subsample(valid, hvp_stride)
        mean, log_std = policy_on(fast, sub.obs)
        s = slice(None, None, hvp_stride)
        kl = gaussian_kl(old["mean"][:, :, s], old["log_std"][:, :, s], mean, log_std).mean()
        return kl if weight == 1.0 else kl * weight

    return objective, kl_hessian_objective
