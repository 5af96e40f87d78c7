"""Gaussian MLP policy with a state-independent log-std, and the Gaussian formulas around it."""
from __future__ import annotations

import math
from typing import Mapping, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = ["GaussianMLPPolicy", "gaussian_log_prob", "gaussian_kl", "policy_forward"]

_LOG_2PI = math.log(2 * math.pi)


class GaussianMLPPolicy(nn.Module):
    """obs -> (mean, log_std): MLP with ``hidden`` layers (ReLU or tanh) for the mean and one
    learned log-std per action dimension (MAML: 2 x 100 ReLU)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (100, 100),
                 activation: str = "relu", init_std: float = 1.0) -> None:
        super().__init__()
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be relu or tanh, got {activation!r}")
        act = nn.ReLU if activation == "relu" else nn.Tanh
        layers: list = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), act()]
            width = h
        layers.append(nn.Linear(width, act_dim))
        self.mean = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))

    def forward(self, obs: Tensor) -> Tuple[Tensor, Tensor]:
        return self.mean(obs), self.log_std.expand(obs.shape[:-1] + self.log_std.shape)


def policy_forward(policy: nn.Module, params: Mapping[str, Tensor], obs: Tensor) -> Tuple[Tensor, Tensor]:
    """The policy at ``params`` (one parameter set, any batch shape of ``obs``)."""
    from torch.func import functional_call

    return functional_call(policy, dict(params), (obs,))


def gaussian_log_prob(mean: Tensor, log_std: Tensor, action: Tensor) -> Tensor:
    """log N(action; mean, exp(log_std)^2), summed over the last (action) dimension."""
    z = (action - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)


def gaussian_kl(mean0: Tensor, log_std0: Tensor, mean1: Tensor, log_std1: Tensor) -> Tensor:
    """KL(N0 || N1) of diagonal Gaussians, summed over the last dimension."""
    var0, var1 = torch.exp(2 * log_std0), torch.exp(2 * log_std1)
    return (log_std1 - log_std0 + (var0 + (mean0 - mean1).pow(2)) / (2 * var1) - 0.5).sum(-1)
