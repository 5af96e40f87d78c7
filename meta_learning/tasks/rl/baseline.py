"""Linear feature baseline (Duan et al. 2016): ridge regression of the returns on
[o, o^2, t, t^2, t^3, 1] (t = step / 100), fitted per task with ``torch.linalg.lstsq``."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["baseline_features", "fit_linear_baseline"]


def baseline_features(obs: Tensor, clip: float = 10.0) -> Tensor:
    """obs (..., N, H, d) -> features (..., N, H, 2d + 4); observations clipped to +-clip."""
    o = obs.clamp(-clip, clip)
    horizon = obs.shape[-2]
    t = (torch.arange(horizon, dtype=obs.dtype, device=obs.device) / 100.0)
    t = t.reshape((1,) * (obs.dim() - 2) + (horizon, 1)).expand(obs.shape[:-1] + (1,))
    return torch.cat([o, o * o, t, t ** 2, t ** 3, torch.ones_like(t)], dim=-1)


def fit_linear_baseline(obs: Tensor, returns: Tensor, reg: float = 1e-5) -> Tensor:
    """Fit one ridge regression per leading index (task) and return its predictions.

    ``obs`` (T, N, H, d), ``returns`` (T, N, H) -> values (T, N, H).  Solved as the least-squares
    problem [X; sqrt(reg) I] w = [R; 0] in float64 (exact for data a linear model explains), on
    the device of ``obs`` (CUDA's lstsq uses the QR driver ``gels``: the ridge rows make the
    system full rank, which it needs)."""
    x = baseline_features(obs).double()
    t = x.shape[0]
    x = x.reshape(t, -1, x.shape[-1])
    y = returns.double().reshape(t, -1, 1)
    k = x.shape[-1]
    ridge = (reg ** 0.5) * torch.eye(k, dtype=x.dtype, device=x.device).expand(t, k, k)
    a = torch.cat([x, ridge], dim=1)
    b = torch.cat([y, torch.zeros(t, k, 1, dtype=y.dtype, device=y.device)], dim=1)
    w = torch.linalg.lstsq(a, b).solution
    return (x @ w).reshape(returns.shape).to(returns.dtype)
