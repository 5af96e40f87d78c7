"""Task distributions of meta-RL: 2D navigation (no extra needed) and MuJoCo velocity/direction."""
from __future__ import annotations

from typing import Any

from .mujoco import EXTRA_HINT, MUJOCO_ENVS, MujocoBatch, make_mujoco_env, quiet_mujoco, require_mujoco
from .navigation import Navigation2D, navigation_step

__all__ = ["ENV_NAMES", "make_batch_env", "Navigation2D", "navigation_step", "MujocoBatch",
           "make_mujoco_env", "require_mujoco", "quiet_mujoco", "MUJOCO_ENVS", "EXTRA_HINT"]

ENV_NAMES = ("2dnav",) + MUJOCO_ENVS


def make_batch_env(name: str) -> Any:
    """The batch form the sampler steps: every task and trajectory at once."""
    if name == "2dnav":
        return Navigation2D()
    if name in MUJOCO_ENVS:
        return MujocoBatch(name)
    raise ValueError(f"unknown environment {name!r}; choose from {', '.join(ENV_NAMES)}")
