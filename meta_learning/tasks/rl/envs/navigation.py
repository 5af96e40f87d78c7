"""2D navigation (MAML): a point mass moves from the origin towards a goal ~ U[-0.5, 0.5]^2.

State = position, action clipped to [-0.1, 0.1]^2, next position = position + clipped action,
reward = -distance of the new position to the goal.  No termination: every trajectory runs the
full horizon (100 in the seed's protocol), so trajectories stack into dense tensors.

:class:`Navigation2D` is the batch form the sampler uses (torch, every task and trajectory at
once, no gymnasium needed); :class:`~meta_learning.tasks.rl.envs.navigation_gym.Navigation2DEnv`
is the same task distribution as a gymnasium environment.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["GOAL_RANGE", "ACTION_LIMIT", "navigation_step", "sample_goals", "Navigation2D"]

GOAL_RANGE = (-0.5, 0.5)
ACTION_LIMIT = 0.1

Task = Dict[str, np.ndarray]


def navigation_step(position: Tensor, action: Tensor, goal: Tensor) -> Tuple[Tensor, Tensor]:
    """One step for any batch shape (..., 2): (new position, reward = -|new position - goal|)."""
    new = position + action.clamp(-ACTION_LIMIT, ACTION_LIMIT)
    return new, -torch.linalg.vector_norm(new - goal, dim=-1)


def sample_goals(n: int, rng: np.random.Generator) -> List[Task]:
    """n tasks {"goal": (2,) float array} with goals uniform in [-0.5, 0.5]^2."""
    goals = rng.uniform(GOAL_RANGE[0], GOAL_RANGE[1], size=(n, 2))
    return [{"goal": g} for g in goals]


class Navigation2D:
    """Batch 2D navigation: ``reset(tasks, n)`` gives (T, n, 2) observations, ``step(actions)``
    moves every trajectory of every task at once."""

    name = "2dnav"
    obs_dim = 2
    act_dim = 2

    def __init__(self) -> None:
        self._goal = torch.zeros(0, 1, 2)
        self._pos = torch.zeros(0, 1, 2)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> List[Task]:
        return sample_goals(n, rng)

    def reset(self, tasks: Sequence[Task], n: int, rng: np.random.Generator,
              share: Optional[Tuple[int, int]] = None) -> Tensor:
        """Start every trajectory (of the tasks ``share`` selects, if given) at the origin; ``rng``
        is unused (the start is deterministic)."""
        if share is not None:
            tasks = tasks[share[0]:share[1]]
        goals = np.stack([t["goal"] for t in tasks]).astype(np.float32)
        self._goal = torch.from_numpy(goals).unsqueeze(1)            # (T, 1, 2)
        self._pos = torch.zeros(len(tasks), n, 2)
        return self._pos.clone()

    def step(self, actions: Tensor) -> Tuple[Tensor, Tensor]:
        """actions (T, n, 2) -> (observations (T, n, 2), rewards (T, n))."""
        self._pos, reward = navigation_step(self._pos, actions, self._goal)
        return self._pos.clone(), reward

    def close(self) -> None:
        pass
