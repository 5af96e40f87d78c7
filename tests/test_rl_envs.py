"""Meta-RL environments: dynamics and rewards against their definitions, set_task, the MuJoCo
extra (its absence is one line), and no MuJoCo chatter on the screen."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from meta_learning.tasks.rl.envs import Navigation2D, make_batch_env, make_mujoco_env
from meta_learning.tasks.rl.envs.navigation import sample_goals


def test_navigation_dynamics_and_reward_follow_the_definition():
    rng = np.random.default_rng(3)
    tasks = sample_goals(50, rng)
    goals = np.stack([t["goal"] for t in tasks])
    assert goals.min() >= -0.5 and goals.max() <= 0.5 and goals.std() > 0.2
    env = Navigation2D()
    obs = env.reset(tasks[:3], 4, rng)
    assert obs.shape == (3, 4, 2) and torch.all(obs == 0)
    pos = np.zeros((3, 4, 2))
    for _ in range(5):
        a = torch.from_numpy(rng.normal(0, 0.2, size=(3, 4, 2)).astype(np.float32))
        obs, reward = env.step(a)
        pos = pos + np.clip(a.numpy(), -0.1, 0.1)
        want = -np.linalg.norm(pos - goals[:3, None, :], axis=-1)
        np.testing.assert_allclose(obs.numpy(), pos, atol=1e-6)
        np.testing.assert_allclose(reward.numpy(), want, atol=1e-6)


def test_navigation_gym_env_matches_the_batch_env_and_set_task_changes_the_reward():
    from meta_learning.tasks.rl.envs.navigation_gym import Navigation2DEnv

    env = Navigation2DEnv()
    tasks = env.sample_tasks(2, np.random.default_rng(0))
    env.set_task(tasks[0])
    obs, _ = env.reset(seed=0)
    batch = Navigation2D()
    batch.reset(tasks[:1], 1, np.random.default_rng(0))
    action = np.array([0.3, -0.05], dtype=np.float32)   # first coordinate is clipped to 0.1
    obs, r0, term, trunc, _ = env.step(action)
    bobs, br = batch.step(torch.from_numpy(action).view(1, 1, 2))
    assert not term and not trunc
    np.testing.assert_allclose(obs, [0.1, -0.05], atol=1e-7)
    np.testing.assert_allclose(obs, bobs.view(2).numpy(), atol=1e-7)
    assert r0 == pytest.approx(float(br), abs=1e-6)
    assert r0 == pytest.approx(-np.linalg.norm(obs - tasks[0]["goal"]), abs=1e-6)
    env.set_task(tasks[1])
    env.reset(seed=0)
    _, r1, _, _, _ = env.step(action)
    assert r1 == pytest.approx(-np.linalg.norm(obs - tasks[1]["goal"]), abs=1e-6) and abs(r1 - r0) > 1e-3


@pytest.mark.parametrize("name, stock, key", [
    ("halfcheetah-vel", "HalfCheetahEnv", "velocity"), ("halfcheetah-dir", "HalfCheetahEnv", "direction"),
    ("ant-vel", "AntEnv", "velocity"), ("ant-dir", "AntEnv", "direction"),
])
def test_mujoco_rewards_follow_the_definition_and_dynamics_are_gymnasiums(name, stock, key, capfd):
    import gymnasium.envs.mujoco.ant_v5 as ant_v5
    import gymnasium.envs.mujoco.half_cheetah_v5 as hc_v5

    from meta_learning.tasks.rl.envs import quiet_mujoco

    env = make_mujoco_env(name)
    tasks = env.sample_tasks(200, np.random.default_rng(1))
    values = np.array([t[key] for t in tasks])
    if key == "velocity":
        assert values.min() >= 0 and values.max() <= (2.0 if "cheetah" in name else 3.0) and values.std() > 0.4
    else:
        assert set(values) == {-1.0, 1.0}
    extra = {} if stock == "HalfCheetahEnv" else {"include_cfrc_ext_in_observation": False,
                                                  "terminate_when_unhealthy": False}
    with quiet_mujoco():
        ref = (hc_v5.HalfCheetahEnv if stock == "HalfCheetahEnv" else ant_v5.AntEnv)(**extra)
    assert env.observation_space.shape == ref.observation_space.shape
    if stock == "AntEnv":
        assert env.observation_space.shape == (27,)
    rng = np.random.default_rng(2)
    actions = [rng.uniform(-1.5, 1.5, size=env.action_space.shape) for _ in range(6)]
    rewards = {}
    for target in ((0.5, 1.7) if key == "velocity" else (1.0, -1.0)):
        env.set_task({key: target})
        obs, _ = env.reset(seed=7)
        ref_obs, _ = ref.reset(seed=7)
        np.testing.assert_array_equal(obs, ref_obs)
        rewards[target] = []
        for a in actions:
            obs, r, term, _, info = env.step(a)
            ref_obs, *_ = ref.step(np.clip(a, -1, 1))
            np.testing.assert_allclose(obs, ref_obs, atol=1e-9)   # only the reward differs
            assert not term
            v = info["x_velocity"]
            ctrl = 0.05 * float(np.square(np.clip(a, -1, 1)).sum())
            want = -abs(v - target) - ctrl if key == "velocity" else target * v - ctrl
            assert r == pytest.approx(want, abs=1e-9)
            rewards[target].append(r)
    a, b = rewards.values()
    assert max(abs(x - y) for x, y in zip(a, b)) > 1e-3   # set_task changed the reward
    out, err = capfd.readouterr()
    assert "deprecated" not in out + err and "WARNING" not in out + err


def test_half_cheetah_velocity_is_the_forward_velocity():
    env = make_mujoco_env("halfcheetah-vel", task={"velocity": 1.0})
    env.reset(seed=0)
    x0 = float(env.unwrapped.data.qpos[0])
    _, _, _, _, info = env.step(np.full(6, 0.5))
    x1 = float(env.unwrapped.data.qpos[0])
    assert info["x_velocity"] == pytest.approx((x1 - x0) / env.unwrapped.dt, abs=1e-12)


def test_mujoco_batch_env_steps_every_task_and_trajectory():
    env = make_batch_env("halfcheetah-dir")
    tasks = [{"direction": 1.0}, {"direction": -1.0}]
    obs = env.reset(tasks, 3, np.random.default_rng(0))
    assert obs.shape == (2, 3, 17)
    subs = [e.unwrapped for e in env._active.envs]
    before = [float(e.data.qpos[0]) for e in subs]
    obs, reward = env.step(torch.full((2, 3, 6), 1.7))   # clipped to 1 before the control cost
    assert obs.shape == (2, 3, 17) and reward.shape == (2, 3)
    for i, e in enumerate(subs):
        v = (float(e.data.qpos[0]) - before[i]) / e.dt
        want = tasks[i // 3]["direction"] * v - 0.05 * 6
        assert float(reward[i // 3, i % 3]) == pytest.approx(want, abs=1e-5)
        np.testing.assert_allclose(obs[i // 3, i % 3].numpy(), e._get_obs(), atol=1e-6)
    env.close()


_BLOCK = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('gymnasium', 'mujoco'):
                raise ImportError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Block())
""")


def test_without_the_extra_mujoco_envs_fail_in_one_line_and_2d_navigation_still_runs(tmp_path):
    code = _BLOCK + textwrap.dedent(f"""
        from meta_learning.cli import main
        rc = main(["rl", "--env", "halfcheetah-vel", "--out", {str(tmp_path / 'hc')!r}])
        assert rc == 2, rc
        rc = main(["rl", "--env", "2dnav", "--iterations", "1", "--meta-batch", "2", "--trajectories", "2",
                   "--horizon", "5", "--eval-tasks", "2", "--quiet", "--no-plot", "--out", {str(tmp_path / 'nav')!r}])
        assert rc == 0, rc
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in proc.stderr
    assert err[0].startswith("metalearn: error: --env halfcheetah-vel needs the optional RL extra")
    assert 'pip install -e ".[rl]"' in err[0]
    assert (tmp_path / "nav" / "results.json").exists()
