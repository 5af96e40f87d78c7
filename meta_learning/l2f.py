"""L2F: task-and-layer-wise attenuation of the meta-learned start (Baik et al., CVPR 2020).

Once per task, before the inner loop, the attenuator ``g_phi`` maps a task embedding (for each
adapted parameter tensor, the mean of its support-loss gradient at the UN-attenuated start) to
one factor per tensor; the inner loop then starts from ``gamma_j * theta_j``.

Embedding default: detached (the authors' first code).  The embedding is itself a gradient, so
letting the meta-gradient flow through it adds one more Hessian-vector product of the support loss
per task (and, with first-order MAML, would be the only second-order term left), while phi still
learns fully through gamma either way; ``differentiable=True`` (their later code) switches it on.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from .functional import LossFn, Params, inner_grads

__all__ = ["Attenuator", "task_embedding", "attenuate"]


def task_embedding(loss_fn: LossFn, params: Mapping[str, Tensor], batch: Any, names: Sequence[str],
                   differentiable: bool = False) -> Tensor:
    """Per-tensor mean of the support-loss gradient at ``params`` -> vector of len(names)."""
    _, grads = inner_grads(loss_fn, params, batch, names, create_graph=differentiable)
    emb = torch.stack([grads[n].mean() for n in names])
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
    ``mode="identity"``: gamma = clamp(1 - s * sigmoid(MLP(e)), 0, 1) with a learnable scalar s
    initialised to 0, so a pretrained start (trackers) is left untouched at the beginning and
    attenuation is learned from there.  ``layers`` sets the number of linear layers (2 = n->n->n).
    """

    def __init__(self, n: int, mode: str = "sigmoid", layers: int = 2) -> None:
        super().__init__()
        if mode not in ("sigmoid", "identity"):
            raise ValueError(f"attenuator mode must be 'sigmoid' or 'identity', got {mode!r}")
        if n < 1 or layers < 1:
            raise ValueError("attenuator needs at least one tensor and one layer")
        self.n = n
        self.mode = mode
        mods: list = []
        for i in range(layers):
            mods.append(nn.Linear(n, n))
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
            return torch.clamp(1.0 - self.scale * g, 0.0, 1.0)
        return g
