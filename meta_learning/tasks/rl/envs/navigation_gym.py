"""2D navigation as a gymnasium environment (one task at a time, ``sample_tasks``/``set_task``)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from .navigation import ACTION_LIMIT, navigation_step, sample_goals

__all__ = ["Navigation2DEnv"]


class Navigation2DEnv(gymnasium.Env):
    """Point mass from the origin to ``task["goal"]``; see :mod:`.navigation` for the definition.
    The horizon is the caller's (wrap in ``gymnasium.wrappers.TimeLimit`` for a fixed one)."""

    metadata: Dict[str, Any] = {"render_modes": []}

    def __init__(self, task: Optional[Dict[str, np.ndarray]] = None) -> None:
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-ACTION_LIMIT, ACTION_LIMIT, shape=(2,), dtype=np.float32)
        self._goal = np.zeros(2, dtype=np.float32)
        self._pos = np.zeros(2, dtype=np.float32)
        if task is not None:
            self.set_task(task)

    def sample_tasks(self, n: int, rng: Optional[np.random.Generator] = None) -> List[Dict[str, np.ndarray]]:
        return sample_goals(n, rng if rng is not None else self.np_random)

    def set_task(self, task: Dict[str, np.ndarray]) -> None:
        self._goal = np.asarray(task["goal"], dtype=np.float32).reshape(2)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> Tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._pos = np.zeros(2, dtype=np.float32)
        return self._pos.copy(), {"goal": self._goal.copy()}

    def step(self, action: np.ndarray) -> Tuple[np.ndarray, float, bool, bool, dict]:
        new, reward = navigation_step(torch.from_numpy(self._pos), torch.as_tensor(action, dtype=torch.float32),
                                      torch.from_numpy(self._goal))
        self._pos = new.numpy()
        return self._pos.copy(), float(reward), False, False, {"goal": self._goal.copy()}
