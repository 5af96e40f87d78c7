"""L2F: task-and-layer-wise attenuation of the meta-learned start (Baik et al., CVPR 2020).

Once per task, before the inner loop, the attenuator ``g_phi`` maps a task embedding (for each
adapted parameter tensor, the mean of its support-loss gradient at the UN-attenuated start) to
one factor per tensor; the inner loop then starts from ``gamma_j * theta_j``.

Embedding default: detached (the authors' first code).  The embedding is itself a gradient, so
letting the meta-gradient flow through it adds one more Hessian-vector product of the support loss
per task (and, with first-order MAML, would be the only second-order term left), while phi still
learns fully through gamma either way; ``differentiable=True`` (their later code) switches it on.

Input ``"mean"`` (the paper's) feeds those means as they are. Their scales differ by orders of
magnitude between tensors (measured on MetaCREST: 1e-5 for the 1x1 reduction, 0.1-0.3 for the
filter's bias), so g_phi's first layer sees a nearly constant vector and gamma comes out the same
for every task. ``"normalized"`` feeds two scale-free numbers per tensor instead: the mean over
the mean absolute value (in [-1, 1]: how consistently the loss pushes the tensor one way) and the
log of the mean absolute value (the gradient's size, with the per-tensor offset left to the bias).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from .functional import LossFn, Params, inner_grads

__all__ = ["Attenuator", "INPUTS", "task_embedding", "attenuate"]

INPUTS = {"mean": 1, "normalized": 2}   # embedding kind -> numbers per adapted tensor


def task_embedding(loss_fn: LossFn, params: Mapping[str, Tensor], batch: Any, names: Sequence[str],
                   differentiable: bool = False, kind: str = "mean") -> Tensor:
    """The support-loss gradient at ``params`` summarised per tensor: its mean (``"mean"``, a
    vector of len(names)) or its mean over mean absolute value and log mean absolute value
    (``"normalized"``, 2 x len(names): all ratios, then all logs)."""
    if kind not in INPUTS:
        raise ValueError(f"L2F input must be one of {', '.join(INPUTS)}, got {kind!r}")
    _, grads = inner_grads(loss_fn, params, batch, names, create_graph=differentiable)
    mean = torch.stack([grads[n].mean() for n in names])
    if kind == "normalized":
        size = torch.stack([grads[n].abs().mean() for n in names])
        tiny = torch.finfo(size.dtype).tiny
        emb = torch.cat([mean / (size + tiny), torch.log(size + tiny)])
    else:
        emb = mean
    return emb if differentiable else emb.detach()


def attenuate(params: Mapping[str, Tensor], gamma: Tensor, names: Sequence[str]) -> Params:
    """Multiply each named tensor by its own factor; other tensors pass unchanged."""
    out = dict(params)
    for i, n in enumerate(names):
        out[n] = gamma[i] * params[n]
    return out


class Attenuator(nn.Module):
    """``g_phi``: MLP n -> n -> n (ReLU between, sigmoid at the end), n = number of tensors.

    ``mode="sigmoid"``: gamma = sigmoid(MLP(e)) as in the paper (about 0.5 at initialisation).
    ``mode="identity"``: gamma = clamp(1 - |s| * sigmoid(MLP(e)), 0, 1) with a learnable scalar s
    initialised to 0, so a pretrained start (trackers) is left untouched at the beginning and
    attenuation is learned from there (|s| is written so that its gradient at 0 is that of s). The absolute value matters: with ``1 - s * ...`` a first
    meta-gradient asking for gamma > 1 made s negative, the clamp then held gamma at exactly 1 and
    passed no gradient, and L2F stopped learning for good (seen on MetaCREST); with ``|s|`` a
    negative s attenuates like a positive one, so s only hovers about 0 while no attenuation pays.
    ``layers`` sets the number of linear layers (2 = n->n->n); ``inputs`` the embedding's
    numbers per tensor (:data:`INPUTS`: 1 for ``"mean"``, 2 for ``"normalized"``).
    """

    def __init__(self, n: int, mode: str = "sigmoid", layers: int = 2, inputs: int = 1) -> None:
        super().__init__()
        if mode not in ("sigmoid", "identity"):
            raise ValueError(f"attenuator mode must be 'sigmoid' or 'identity', got {mode!r}")
        if n < 1 or layers < 1:
            raise ValueError("attenuator needs at least one tensor and one layer")
        self.n = n
        self.mode = mode
        mods: list = []
        for i in range(layers):
            mods.append(nn.Linear(n * inputs if i == 0 else n, n))
            if i < layers - 1:
                mods.append(nn.ReLU())
        self.mlp = nn.Sequential(*mods)
        if mode == "identity":
            self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, embedding: Tensor) -> Tensor:
        """Task embedding (n,) -> gamma (n,)."""
        g = torch.sigmoid(self.mlp(embedding))
        if self.mode == "identity":
            # clamp's gradient passes at the bounds (inclusive), so s still learns from gamma = 1.
            size = torch.where(self.scale >= 0, self.scale, -self.scale)
            return torch.clamp(1.0 - size * g, 0.0, 1.0)
        return g
