"""Gradient surgery across the per-task meta-gradients of a meta-batch, and clamping.

PCGrad (Yu et al., 2020) and GradDrop (Chen et al., 2020) were proposed for multi-task learning:
PCGrad on per-task gradients of shared weights, GradDrop on the gradients at a shared activation.
Applying them to the per-task META-gradients of the meta-learned start (one "task" per episode of
the meta-batch) is OUR ADAPTATION, as in the L2F appendix comparison; nothing in those papers
prescribes it.  Both functions take a (T, D) matrix (one flattened meta-gradient per task) and
return the combined (D,) update; :func:`flatten_task_grads` / :func:`unflatten` convert from and to
name -> (T, ...) dicts.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

__all__ = ["flatten_task_grads", "unflatten", "pcgrad", "graddrop", "clamp_grads"]


def flatten_task_grads(grads: Mapping[str, Tensor]) -> Tuple[Tensor, List[Tuple[str, torch.Size]]]:
    """name -> (T, *shape) dict -> (T, D) matrix and the layout to undo it."""
    layout = [(n, g.shape[1:]) for n, g in grads.items()]
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1)
    return flat, layout


def unflatten(vec: Tensor, layout: List[Tuple[str, torch.Size]]) -> Dict[str, Tensor]:
    """(D,) vector -> name -> shape dict."""
    out, i = {}, 0
    for n, shape in layout:
        k = int(torch.Size(shape).numel())
        out[n] = vec[i:i + k].reshape(shape)
        i += k
    return out


def pcgrad(grads: Tensor, generator: Optional[torch.Generator] = None, reduction: str = "mean",
           return_projected: bool = False):
    """Projecting conflicting gradients.

    For each task i, visit the other tasks j in random order; if ``g_i . g_j < 0`` project g_i
    onto the normal plane of the ORIGINAL g_j.  Returns the mean (or sum) of the projected
    gradients, and the (T, D) projected matrix if ``return_projected``.
    """
    t = grads.shape[0]
    sq = (grads * grads).sum(dim=1).clamp_min(1e-20)
    # every task's own random order, processed for all tasks at once: round r projects task i
    # against task orders[i, r] (skipping itself) - the same sequence as the per-task loop.
    orders = torch.stack([torch.randperm(t, generator=generator) for _ in range(t)]).to(grads.device)
    rows = torch.arange(t, device=grads.device)
    projected = grads.clone()
    for r in range(t):
        j = orders[:, r]
        gj = grads[j]
        dot = (projected * gj).sum(dim=1)
        coef = torch.where((dot < 0) & (j != rows), dot / sq[j], torch.zeros_like(dot))
        projected = projected - coef.unsqueeze(1) * gj
    out = projected.mean(0) if reduction == "mean" else projected.sum(0)
    return (out, projected) if return_projected else out


def graddrop(grads: Tensor, generator: Optional[torch.Generator] = None, eps: float = 1e-12,
             reduction: str = "mean", return_masks: bool = False):
    """Gradient sign dropout.

    Sign purity ``P = 0.5 (1 + sum_i g_i / (sum_i |g_i| + eps))`` per element; with one
    ``U ~ U(0, 1)`` per element, keep g_i where ``(P > U and g_i > 0)`` or ``(P < U and g_i < 0)``,
    i.e. each element keeps only the positive or only the negative task gradients, choosing
    positive with probability P.  Returns the mean (over tasks, or sum) of the kept gradients.
    """
    purity = 0.5 * (1.0 + grads.sum(0) / (grads.abs().sum(0) + eps))
    u = torch.rand(purity.shape, generator=generator, dtype=grads.dtype, device=grads.device)
    masks = ((purity > u) & (grads > 0)) | ((purity < u) & (grads < 0))
    kept = grads * masks.to(grads.dtype)
    out = kept.mean(0) if reduction == "mean" else kept.sum(0)
    return (out, masks) if return_masks else out


def clamp_grads(grads: Mapping[str, Tensor], bound: float) -> Dict[str, Tensor]:
    """Element-wise clamp of meta-gradients to [-bound, bound] (the L2F code uses 10)."""
    return {n: g.clamp(-bound, bound) for n, g in grads.items()}
