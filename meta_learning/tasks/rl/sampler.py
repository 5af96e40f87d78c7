"""Trajectory sampling for a meta-batch: every task and trajectory stepped at once.

``params`` is one parameter set shared by all tasks (the meta-learned start) or, with
``batched=True``, one set per task stacked along dim 0 (adapted policies); the policy runs under
``torch.func.vmap`` over tasks then.  Action noise comes from ``generator`` and environment resets
from ``rng``, so a rollout is a pure function of (params, tasks, seeds).

The environments step on the CPU (MuJoCo is numpy); the policy runs on the device of ``params``:
observations go to it, actions come back with ``.cpu()``, and the episodes end up on it. Noise is
drawn on the CPU, so every device sees the same noise.  ``share=(start, stop)`` simulates only
those tasks of ``tasks`` while drawing the noise and reset seeds of all of them, so a torchrun
rank's share gets exactly the trajectories one process would sample for those tasks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .baseline import fit_linear_baseline
from .policy import policy_forward
from .returns import discounted_returns, gae, normalize

__all__ = ["Episodes", "rollout", "process", "TaskBatch"]


@dataclass
class Episodes:
    """Dense trajectories of a meta-batch: obs (T, N, H, d), actions (T, N, H, a), rewards (T, N, H)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor

    def task_returns(self) -> Tensor:
        """Undiscounted return per trajectory, averaged per task: (T,)."""
        return self.rewards.sum(-1).mean(-1)


@dataclass
class TaskBatch:
    """What the policy-gradient losses read, per task: obs, actions, normalised advantages."""

    obs: Tensor
    actions: Tensor
    advantages: Tensor

    def as_tuple(self) -> tuple:
        return (self.obs, self.actions, self.advantages)


def _act(policy: nn.Module, params: Mapping[str, Tensor], obs: Tensor, batched: bool) -> tuple:
    if not batched:
        return policy_forward(policy, params, obs)
    from torch.func import vmap

    return vmap(lambda p, o: policy_forward(policy, p, o))(dict(params), obs)


def rollout(env: Any, policy: nn.Module, params: Mapping[str, Tensor], tasks: Sequence[Any], n: int,
            horizon: int, generator: torch.Generator, rng: np.random.Generator,
            batched: bool = False, share: Optional[Tuple[int, int]] = None) -> Episodes:
    """Sample ``n`` trajectories of ``horizon`` steps for each task (of ``share`` only, if given)
    with the Gaussian policy; the episodes are on the device of ``params``."""
    params = {k: v.detach() for k, v in params.items()}
    device = next(iter(params.values())).device
    obs_l, act_l, rew_l = [], [], []
    with torch.no_grad():
        obs = env.reset(tasks, n, rng) if share is None else env.reset(tasks, n, rng, share=share)
        for _ in range(horizon):
            mean, log_std = _act(policy, params, obs.to(device), batched)
            shape = mean.shape if share is None else (len(tasks),) + tuple(mean.shape[1:])
            noise = torch.randn(shape, generator=generator, dtype=mean.dtype)
            if share is not None:
                noise = noise[share[0]:share[1]]
            action = (mean + torch.exp(log_std) * noise.to(device)).cpu()
            obs_l.append(obs)
            act_l.append(action)
            obs, reward = env.step(action)
            rew_l.append(reward)
    return Episodes(torch.stack(obs_l, 2).to(device), torch.stack(act_l, 2).to(device),
                    torch.stack(rew_l, 2).to(device))


def process(episodes: Episodes, gamma: float = 0.99, lam: float = 1.0) -> TaskBatch:
    """Fit the linear baseline per task on these episodes, GAE, advantages normalised per task."""
    returns = discounted_returns(episodes.rewards, gamma)
    values = fit_linear_baseline(episodes.obs, returns)
    adv = normalize(gae(episodes.rewards, values, gamma, lam), dims=(1, 2))
    return TaskBatch(episodes.obs, episodes.actions, adv)
