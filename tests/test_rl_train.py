"""Meta-RL training: a short 2D-navigation run improves the post-adaptation return, resuming is
bit-identical (also after kill -9), and ``metalearn rl`` reports bad input in one line."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from foundation.checkpoint import load_checkpoint
from foundation.errors import UserError
from meta_learning.cli import main
from meta_learning.tasks.rl.train import config_for, run

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(meta_batch=3, trajectories=3, horizon=8, eval_tasks=4, checkpoint_every=2)


def test_a_short_2d_navigation_run_improves_the_post_adaptation_return(tmp_path):
    small = dict(meta_batch=8, trajectories=8, horizon=20, eval_tasks=20)
    before = run(config_for("2dnav", iterations=0, **small).validate(), tmp_path / "a", progress=False, plot=False)
    after = run(config_for("2dnav", iterations=12, **small).validate(), tmp_path / "b", progress=False, plot=False)
    b1, a1 = before["return"]["1"], after["return"]["1"]
    assert a1["mean"] > b1["mean"] + a1["ci95"] + b1["ci95"]
    assert after["return"]["1"]["mean"] > after["return"]["0"]["mean"]     # adaptation helps
    hist = after["train"]["history"]
    assert len(hist) == 12 and all(h[3] == 1.0 for h in hist[:3])          # TRPO steps accepted
    assert all(0 < h[4] <= 0.01 for h in hist if h[3] == 1.0)              # within max KL
    best = after["train"]["best_iteration"]
    assert after["train"]["best_return"] == max(h[2] for h in hist) == hist[best][2]


@pytest.mark.parametrize("method", [{}, {"l2f": True, "dropgrad": "binary", "meta_sgd": True}])
def test_resumed_run_is_bit_identical(tmp_path, method):
    cfg = config_for("2dnav", iterations=5, seed=3, **TINY, **method).validate()
    full = run(cfg, tmp_path / "full", progress=False, plot=False)
    assert run(cfg, tmp_path / "part", progress=False, plot=False, stop_after=3) == {"stopped_at": 3}
    part = run(cfg, tmp_path / "part", progress=False, plot=False)
    for r in (full, part):
        r.pop("eval_seconds")
        r["train"].pop("seconds")
    assert full == part
    a, _ = load_checkpoint(str(tmp_path / "full" / "checkpoint.pt"))
    b, _ = load_checkpoint(str(tmp_path / "part" / "checkpoint.pt"))
    for k, v in a["learner"]["learner"].items():
        assert torch.equal(v, b["learner"]["learner"][k]), k
    if method:
        assert set(full["gamma"]) == {"mean.0.weight", "mean.0.bias", "mean.2.weight", "mean.2.bias",
                                      "mean.4.weight", "mean.4.bias", "log_std"}


def test_other_settings_do_not_resume(tmp_path):
    run(config_for("2dnav", iterations=2, **TINY).validate(), tmp_path, progress=False, plot=False)
    with pytest.raises(UserError, match="other settings"):
        run(config_for("2dnav", iterations=2, l2f=True, **TINY).validate(), tmp_path, progress=False, plot=False)


ARGS = ["--iterations", "2", "--meta-batch", "2", "--trajectories", "2", "--horizon", "6", "--eval-tasks", "3",
        "--quiet"]


def test_cli_writes_results_keyed_by_adaptation_steps_and_a_plot(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["rl", "--env", "2dnav", "--l2f", "--dropgrad", "gaussian", "--seed", "4", "--out", str(out)] + ARGS) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["return"]) == {"0", "1", "2", "3", "4"}
    for v in res["return"].values():
        assert v["mean"] < 0 and v["ci95"] > 0
    c = res["config"]
    assert (c["env"], c["iterations"], c["meta_batch"], c["trajectories"], c["horizon"], c["seed"]) == \
        ("2dnav", 2, 2, 2, 6, 4)
    assert c["l2f"] and c["dropgrad"] == "gaussian" and c["method"] == "MAML+L2F+DropGrad(gaussian, 0.1)"
    assert (out / "returns.png").stat().st_size > 1000 and (out / "checkpoint.pt").exists()
    assert "4 steps" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["rl", "--env", "cartpole", "--out", "X"], "--env"),
    (["rl", "--env", "2dnav", "--horizon", "0", "--out", "X"], "--horizon"),
    (["rl", "--env", "2dnav", "--trajectories", "1", "--out", "X"], "--trajectories"),
    (["rl", "--env", "2dnav", "--meta-batch", "x", "--out", "X"], "--meta-batch"),
    (["rl", "--env", "2dnav", "--dropgrad", "uniform", "--out", "X"], "--dropgrad"),
    (["rl", "--env", "2dnav", "--inner-lr", "-1", "--out", "X"], "--inner-lr"),
    (["rl", "--env", "2dnav", "--hvp-stride", "500", "--out", "X"], "--hvp-stride"),
    (["rl", "--env", "2dnav", "--resume", "--out", "X"], "no checkpoint"),
    (["rl", "--env", "2dnav"], "--out"),
])
def test_bad_rl_arguments_give_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    argv = [str(tmp_path / "o") if a == "X" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


def test_unwritable_out_dir_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["rl", "--env", "2dnav", "--out", str(blocker / "sub")] + ARGS) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_result(tmp_path):
    argv = ["rl", "--env", "2dnav", "--iterations", "40", "--meta-batch", "2", "--trajectories", "2",
            "--horizon", "6", "--eval-tasks", "3", "--checkpoint-every", "1", "--quiet", "--no-plot"]
    cmd = [sys.executable, "-m", "meta_learning.cli"] + argv
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(cmd + ["--out", str(tmp_path / "full")], check=True, env=env, capture_output=True, timeout=300)
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "cut")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "cut" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut" / "results.json").exists(), "the run ended before it was killed"
    subprocess.run(cmd + ["--out", str(tmp_path / "cut")], check=True, env=env, capture_output=True, timeout=300)
    a = json.loads((tmp_path / "full" / "results.json").read_text())
    b = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert a["return"] == b["return"] and a["train"]["history"] == b["train"]["history"]
