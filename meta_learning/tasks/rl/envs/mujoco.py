"""HalfCheetah and Ant velocity/direction tasks (MAML) on gymnasium's v5 MuJoCo environments.

Rewards (``a`` = the action after clipping to the action space, ``v`` = forward velocity):

- ``halfcheetah-vel``: target v* ~ U[0, 2], reward -|v - v*| - 0.05 |a|^2
- ``halfcheetah-dir``: direction d = +-1, reward d * v - 0.05 |a|^2
- ``ant-vel``: target v* ~ U[0, 3], reward -|v - v*| - 0.05 |a|^2
- ``ant-dir``: direction d = +-1, reward d * v - 0.05 |a|^2

Ant runs without termination (``terminate_when_unhealthy=False``, so no survival bonus either) and
without contact forces in the observation (27-d), so every trajectory lasts the horizon.  These
classes need the optional extra (``pip install -e ".[rl]"``); :func:`require_mujoco` says so in
one line.  mujoco 4 reports a deprecated XML attribute on every construction: :func:`quiet_mujoco`
drops MuJoCo's deprecation messages (others become Python warnings).
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Type

import numpy as np
import torch
from torch import Tensor

from foundation.errors import UserError

__all__ = ["EXTRA_HINT", "require_mujoco", "quiet_mujoco", "MUJOCO_ENVS", "make_mujoco_env", "MujocoBatch"]

EXTRA_HINT = 'pip install -e ".[rl]"  (or pip install "gymnasium[mujoco]>=1.0")'


def require_mujoco(name: str) -> None:
    """Raise a one-line :class:`UserError` if gymnasium's MuJoCo environments cannot be imported."""
    try:
        import gymnasium  # noqa: F401
        import mujoco  # noqa: F401
        from gymnasium.envs.mujoco import half_cheetah_v5  # noqa: F401
    except ImportError as exc:
        raise UserError(f"--env {name} needs the optional RL extra ({exc.name or exc} is missing): "
                        f"{EXTRA_HINT}") from None


@contextlib.contextmanager
def quiet_mujoco() -> Iterator[None]:
    """Inside the block MuJoCo's deprecation messages are dropped and its other warnings are
    issued as Python ``RuntimeWarning``\\ s instead of being printed on stderr."""
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def handler(message: str) -> None:
        if "deprecated" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def _classes() -> Dict[str, Type[Any]]:
    from gymnasium.envs.mujoco.ant_v5 import AntEnv
    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

    class _TaskMixin:
        """``sample_tasks(n, rng)`` / ``set_task(task)`` over one task parameter."""

        key = ""
        ctrl_weight = 0.05

        def _init_task(self, task: Optional[Dict[str, float]]) -> None:
            self._task = task if task is not None else self.sample_tasks(1, np.random.default_rng(0))[0]

        def set_task(self, task: Dict[str, float]) -> None:
            self._task = {self.key: float(task[self.key])}

        def get_task(self) -> Dict[str, float]:
            return dict(self._task)

        def _task_reward(self, x_velocity: float, action: np.ndarray) -> Tuple[float, Dict[str, float]]:
            a = np.clip(action, self.action_space.low, self.action_space.high)
            ctrl = self.ctrl_weight * float(np.square(a).sum())
            if self.key == "velocity":
                forward = -abs(float(x_velocity) - self._task["velocity"])
            else:
                forward = self._task["direction"] * float(x_velocity)
            return forward - ctrl, {"reward_forward": forward, "reward_ctrl": -ctrl}

    class _Velocity(_TaskMixin):
        key = "velocity"
        high = 2.0

        def sample_tasks(self, n: int, rng: Optional[np.random.Generator] = None) -> List[Dict[str, float]]:
            rng = rng if rng is not None else self.np_random
            return [{"velocity": float(v)} for v in rng.uniform(0.0, self.high, size=n)]

    class _Direction(_TaskMixin):
        key = "direction"

        def sample_tasks(self, n: int, rng: Optional[np.random.Generator] = None) -> List[Dict[str, float]]:
            rng = rng if rng is not None else self.np_random
            return [{"direction": float(d)} for d in 2 * rng.integers(0, 2, size=n) - 1]

    def cheetah(mixin: type, name: str) -> type:
        def __init__(self, task: Optional[Dict[str, float]] = None, **kwargs: Any) -> None:
            HalfCheetahEnv.__init__(self, **kwargs)
            self._init_task(task)

        def _get_rew(self, x_velocity: float, action: np.ndarray):
            return self._task_reward(x_velocity, action)

        return type(name, (mixin, HalfCheetahEnv), {"__init__": __init__, "_get_rew": _get_rew,
                                                    "__doc__": f"HalfCheetah-v5, {mixin.key} task."})

    def ant(mixin: type, name: str) -> type:
        def __init__(self, task: Optional[Dict[str, float]] = None, **kwargs: Any) -> None:
            kwargs.setdefault("include_cfrc_ext_in_observation", False)
            kwargs.setdefault("terminate_when_unhealthy", False)
            AntEnv.__init__(self, **kwargs)
            self._init_task(task)

        def _get_rew(self, x_velocity: float, action: np.ndarray):
            return self._task_reward(x_velocity, action)

        attrs = {"__init__": __init__, "_get_rew": _get_rew, "__doc__": f"Ant-v5, {mixin.key} task."}
        if mixin is _Velocity:
            attrs["high"] = 3.0
        return type(name, (mixin, AntEnv), attrs)

    return {"halfcheetah-vel": cheetah(_Velocity, "HalfCheetahVelEnv"),
            "halfcheetah-dir": cheetah(_Direction, "HalfCheetahDirEnv"),
            "ant-vel": ant(_Velocity, "AntVelEnv"),
            "ant-dir": ant(_Direction, "AntDirEnv")}


MUJOCO_ENVS = ("halfcheetah-vel", "halfcheetah-dir", "ant-vel", "ant-dir")
_CACHE: Dict[str, Type[Any]] = {}


def env_class(name: str) -> Type[Any]:
    """The gymnasium environment class of a MuJoCo task distribution (needs the extra)."""
    require_mujoco(name)
    if not _CACHE:
        _CACHE.update(_classes())
    return _CACHE[name]


def make_mujoco_env(name: str, task: Optional[Dict[str, float]] = None, **kwargs: Any) -> Any:
    """One environment of the named task distribution, constructed without MuJoCo's chatter."""
    cls = env_class(name)
    with quiet_mujoco():
        return cls(task=task, **kwargs)


class MujocoBatch:
    """Batch interface of the sampler over a ``gymnasium.vector.SyncVectorEnv`` holding one
    environment per (task, trajectory); pools are built once per size and reused."""

    def __init__(self, name: str) -> None:
        self.name = name
        probe = make_mujoco_env(name)
        self.obs_dim = int(probe.observation_space.shape[0])
        self.act_dim = int(probe.action_space.shape[0])
        self._low = torch.as_tensor(probe.action_space.low, dtype=torch.float32)
        self._high = torch.as_tensor(probe.action_space.high, dtype=torch.float32)
        self._probe = probe
        self._pools: Dict[int, Any] = {}
        self._shape = (0, 0)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> List[Dict[str, float]]:
        return self._probe.sample_tasks(n, rng)

    def _pool(self, size: int) -> Any:
        if size not in self._pools:
            from gymnasium.vector import SyncVectorEnv

            with quiet_mujoco():
                self._pools[size] = SyncVectorEnv([lambda: type(self._probe)() for _ in range(size)])
        return self._pools[size]

    def reset(self, tasks: Sequence[Dict[str, float]], n: int, rng: np.random.Generator,
              share: Optional[Tuple[int, int]] = None) -> Tensor:
        """``n`` trajectories per task (of the tasks ``share`` selects, if given; the reset seeds
        of all tasks are drawn either way) -> observations (T, n, d)."""
        seeds = [int(s) for s in rng.integers(0, 2 ** 31 - 1, size=len(tasks) * n)]
        if share is not None:
            tasks, seeds = tasks[share[0]:share[1]], seeds[share[0] * n:share[1] * n]
        pool = self._pool(len(tasks) * n)
        for i, env in enumerate(pool.envs):
            env.unwrapped.set_task(tasks[i // n])
        obs, _ = pool.reset(seed=seeds)
        self._shape = (len(tasks), n)
        self._active = pool
        return torch.as_tensor(obs, dtype=torch.float32).reshape(len(tasks), n, -1)

    def step(self, actions: Tensor) -> Tuple[Tensor, Tensor]:
        t, n = self._shape
        a = torch.maximum(torch.minimum(actions.reshape(t * n, -1), self._high), self._low)
        obs, reward, _, _, _ = self._active.step(a.numpy().astype(np.float64))
        return (torch.as_tensor(obs, dtype=torch.float32).reshape(t, n, -1),
                torch.as_tensor(reward, dtype=torch.float32).reshape(t, n))

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
