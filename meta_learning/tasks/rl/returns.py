"""Discounted returns, generalised advantage estimation and per-task advantage normalisation.

Trajectories are dense (..., H) tensors over time: every one lasts the horizon, and the step after
the last is treated as terminal (value 0), as in MAML's code.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["discount_matrix", "discounted_returns", "gae", "normalize"]


def discount_matrix(horizon: int, factor: float, dtype: torch.dtype = torch.float32,
                    device: Optional[torch.device] = None) -> Tensor:
    """(H, H) matrix M with M[t, s] = factor^(s - t) for s >= t, else 0 (built in float64 on the
    CPU, then cast and moved to ``device``)."""
    t = torch.arange(horizon, dtype=torch.float64)
    power = t.unsqueeze(0) - t.unsqueeze(1)
    m = torch.where(power >= 0, torch.as_tensor(factor, dtype=torch.float64) ** power.clamp(min=0),
                    torch.zeros((), dtype=torch.float64))
    return m.to(dtype=dtype, device=device)


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """R_t = sum_{s >= t} gamma^(s - t) r_s along the last dimension."""
    return rewards @ discount_matrix(rewards.shape[-1], gamma, rewards.dtype, rewards.device).T


def gae(rewards: Tensor, values: Tensor, gamma: float, lam: float) -> Tensor:
    """A_t = sum_{s >= t} (gamma lam)^(s - t) delta_s, delta_t = r_t + gamma V_{t+1} - V_t
    (V_H = 0)."""
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    deltas = rewards + gamma * next_values - values
    return deltas @ discount_matrix(rewards.shape[-1], gamma * lam, rewards.dtype, rewards.device).T


def normalize(x: Tensor, dims: tuple, eps: float = 1e-8) -> Tensor:
    """(x - mean) / (std + eps) over ``dims`` (per task when dims are the trajectory and time)."""
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)
