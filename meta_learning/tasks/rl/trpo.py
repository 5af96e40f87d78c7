"""TRPO step (Schulman et al. 2015) over a dict of tensors, for any differentiable objective.

Written here rather than taken from a library: a MAML outer step needs the objective as a closure
that re-runs the engine's inner loop for every candidate of the line search, which library TRPO
updaters built around one policy module do not take; and the candidates are old (cherry-rl's last
release, 0.2.0, is from 2023-06 with learn2learn's; garage's, 2021.3.0, from 2021-03).

Step: g = grad of the surrogate loss; solve (H + damping I) x = -g with conjugate gradient, H the
Hessian of the mean KL (Hessian-vector products by double backward); scale x to the max-KL
boundary; backtrack (ratio 0.8, up to 15 times) until the surrogate improves and KL <= max KL.
If no step is accepted the parameters stay as they are.

Many processes: each torchrun rank's objective is its share of the global mean (its tasks' mean
times its fraction of the meta-batch); the gradient, every Hessian-vector product and the line
search's surrogate and KL values are summed over the ranks (``world.all_reduce_sum_``), so every
rank solves the same system, takes the same accept/reject decisions and the same step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

from foundation.distributed import SINGLE, World

__all__ = ["TRPOConfig", "conjugate_gradient", "trpo_step"]

Objective = Callable[[Mapping[str, Tensor]], Tuple[Tensor, Tensor]]


@dataclass
class TRPOConfig:
    """The reference settings of MAML's TRPO outer loop."""

    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    ls_ratio: float = 0.8
    ls_steps: int = 15


def conjugate_gradient(avp: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10,
                       tol: float = 1e-10) -> Tensor:
    """Approximately solve A x = b for a symmetric positive definite A given as x -> A x."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if float(rr) < tol:
            break
        ap = avp(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _flat(tensors) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _unflat(vec: Tensor, like: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    out, i = {}, 0
    for n, t in like.items():
        out[n] = vec[i:i + t.numel()].view_as(t)
        i += t.numel()
    return out


def _summed(world: World, *values: Tensor) -> Tuple[float, ...]:
    """Scalars summed over the ranks (as they are for one process)."""
    if not world.distributed:
        return tuple(float(v.detach()) for v in values)
    total = world.all_reduce_sum_(torch.stack([v.detach().to(torch.float64).reshape(()) for v in values]))
    return tuple(float(v) for v in total)


def trpo_step(params: Mapping[str, Tensor], objective: Objective, config: Optional[TRPOConfig] = None,
              kl_objective: Optional[Callable[[Mapping[str, Tensor]], Tensor]] = None,
              world: World = SINGLE) -> Tuple[Dict[str, Tensor], Dict[str, float]]:
    """One TRPO step from ``params`` (used as they are if they are leaves that require grad, so
    ``objective`` may reuse a graph already built from them).

    ``objective(p)`` returns (surrogate loss to minimise, mean KL(pi_old || pi_p)), pi_old being
    the policy at ``params`` (so the KL is 0 there).  ``kl_objective(p)``, if given, is the KL used
    for the Hessian (e.g. on a subsample of the data, to make it cheaper); the line search always
    checks ``objective``'s KL.  Under torchrun both are this rank's share of the global objective
    and the step is computed from their sums over ``world`` (the same step on every rank).
    Returns the accepted step (name -> tensor, zeros if none) and statistics."""
    cfg = config or TRPOConfig()
    base = {n: p if (p.is_leaf and p.requires_grad) else p.detach().requires_grad_(True)
            for n, p in params.items()}
    names = list(base)
    leaves = [base[n] for n in names]
    loss, kl = objective(base)
    grads = torch.autograd.grad(loss, leaves, retain_graph=kl_objective is None, allow_unused=True)
    g = world.all_reduce_sum_(_flat([gi if gi is not None else torch.zeros_like(p)
                                     for gi, p in zip(grads, leaves)]).detach())
    if kl_objective is not None:
        kl = kl_objective(base)
    kl_grads = torch.autograd.grad(kl, leaves, create_graph=True, allow_unused=True)
    used = [(gi, p) for gi, p in zip(kl_grads, leaves)]
    flat_kl_grad = _flat([gi if gi is not None else torch.zeros_like(p) for gi, p in used])
    needs = [gi is not None and gi.requires_grad for gi, _ in used]

    graph = {"kl_grad": flat_kl_grad}   # dropped after the last product, freeing the graph

    def fvp(v: Tensor) -> Tensor:
        if not any(needs):   # the same on every rank: the graphs have one structure
            return cfg.cg_damping * v
        hv = torch.autograd.grad(graph["kl_grad"] @ v, leaves, retain_graph=True, allow_unused=True)
        hv = _flat([h if h is not None else torch.zeros_like(p) for h, p in zip(hv, leaves)]).detach()
        return world.all_reduce_sum_(hv) + cfg.cg_damping * v

    direction = conjugate_gradient(fvp, -g, cfg.cg_iters)
    shs = 0.5 * float(direction @ fvp(direction))
    loss0, = _summed(world, loss)
    stats = {"loss_before": loss0, "grad_norm": float(g.norm()), "accepted": 0.0,
             "step_fraction": 0.0, "kl": 0.0, "loss_after": loss0}
    graph.clear()
    del flat_kl_grad, kl_grads
    if not (shs > 0 and math.isfinite(shs)):   # shs is all-reduced: every rank returns here alike
        return {n: torch.zeros_like(base[n]) for n in names}, stats
    full = direction * math.sqrt(cfg.max_kl / shs)
    full_d = _unflat(full, base)
    frac = 1.0
    for _ in range(cfg.ls_steps):
        cand = {n: base[n].detach() + frac * full_d[n] for n in names}
        with torch.no_grad():
            new_loss, new_kl = objective(cand)
        new_loss, new_kl = _summed(world, new_loss, new_kl)
        if math.isfinite(new_loss) and new_loss < loss0 and new_kl <= cfg.max_kl:
            stats.update(accepted=1.0, step_fraction=frac, kl=new_kl, loss_after=new_loss)
            return {n: frac * full_d[n] for n in names}, stats
        frac *= cfg.ls_ratio
    return {n: torch.zeros_like(base[n]) for n in names}, stats
