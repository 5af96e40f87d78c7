"""Trajectory sampling for a meta-batch: every task and trajectory stepped at once.

``params`` is one parameter set shared by all tasks (the meta-learned start) or, with
``batched=True``, one set per task stacked along dim 0 (adapted policies); the policy runs under
``torch.func.vmap`` over tasks then.  Action noise comes from ``generator`` and environment resets
from ``rng``, so a rollout is a pure function of (params, tasks, seeds).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

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
            batched: bool = False) -> Episodes:
    """Sample ``n`` trajectories of ``horizon`` steps for each task with the Gaussian policy."""
    params = {k: v.detach() for k, v in params.items()}
    obs_l, act_l, rew_l = [], [], []
    with torch.no_grad():
        obs = env.reset(tasks, n, rng)
        for _ in range(horizon):
            mean, log_std = _act(policy, params, obs, batched)
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            action = mean + torch.exp(log_std) * noise
            obs_l.append(obs)
            act_l.append(action)
            obs, reward = env.step(action)
            rew_l.append(reward)
    return Episodes(torch.stack(obs_l, 2), torch.stack(act_l, 2), torch.stack(rew_l, 2))


def process(episodes: Episodes, gamma: float = 0.99, lam: float = 1.0) -> TaskBatch:
    """Fit the linear baseline per task on these episodes, GAE, advantages normalised per task."""
    returns = discounted_returns(episodes.rewards, gamma)
    values = fit_linear_baseline(episodes.obs, returns)
    adv = normalize(gae(episodes.rewards, values, gamma, lam), dims=(1, 2))
    return TaskBatch(episodes.obs, episodes.actions, adv)
