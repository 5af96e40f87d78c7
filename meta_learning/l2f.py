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

Settings: :class:`L2FSettings` is the one place L2F's options and their defaults are declared;
every config (the engine's, the trackers' meta-training, tracker weights) holds one, or None for
no L2F. Its defaults are the shipped trackers' recipe; :data:`SEED_PAPER_L2F` is the paper's
protocol, which the few-shot regression, classification and RL tasks reproduce.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Sequence

import torch
from torch import Tensor, nn

from .functional import LossFn, Params, inner_grads

__all__ = ["L2FSettings", "SEED_PAPER_L2F", "Attenuator", "INPUTS", "MODES", "EMBEDDINGS",
           "task_embedding", "attenuate"]

INPUTS = {"mean": 1, "normalized": 2}   # embedding kind -> numbers per adapted tensor
MODES = ("sigmoid", "identity")         # gamma's form (:class:`Attenuator`)
EMBEDDINGS = ("detached", "differentiable")


@dataclass(frozen=True)
class L2FSettings:
    """How L2F attenuates: gamma's form, g_phi's input, whether the meta-gradient flows through
    the embedding, and g_phi's depth.

    The defaults are the shipped trackers' recipe (``weights/train_*.sh``): the paper's sigmoid,
    fed the scale-free ``normalized`` input, because with the paper's ``mean`` input gamma came out
    the same for every task on the trackers (see the module docstring).
    """

    mode: str = "sigmoid"           # sigmoid (paper) | identity (gamma = 1 at the start)
    input: str = "normalized"       # normalized (scale-free) | mean (paper): INPUTS
    embedding: str = "detached"     # detached (authors' first code) | differentiable (their later)
    layers: int = 2                 # linear layers of g_phi (2 = n -> n -> n)

    def validate(self) -> "L2FSettings":
        """A wrong setting is a ValueError naming it and the choices."""
        for name, value, choices in (("mode", self.mode, MODES), ("input", self.input, tuple(INPUTS)),
                                     ("embedding", self.embedding, EMBEDDINGS)):
            if value not in choices:
                raise ValueError(f"L2F {name} must be one of {', '.join(choices)}, got {value!r}")
        if not isinstance(self.layers, int) or self.layers < 1:
            raise ValueError(f"L2F layers must be an integer >= 1, got {self.layers!r}")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "L2FSettings":
        """The settings a :meth:`to_dict` wrote (validated; unknown keys are an error)."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown L2F settings {', '.join(unknown)}")
        return cls(**dict(d)).validate()


# The L2F paper's protocol (sigmoid gamma fed the mean gradients): what the few-shot regression,
# classification and RL tasks reproduce, so their results stay comparable with the paper's.
SEED_PAPER_L2F = L2FSettings(input="mean")


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
        if mode not in MODES:
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
