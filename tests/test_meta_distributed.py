"""Many processes (real torchrun, gloo on the CPU): each rank adapts its share of the meta-batch and
the engine all-reduces, so 2 processes give one process's weights; rank 0 alone writes, prints and
shows progress; resuming under torchrun continues from rank 0's checkpoint."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchrun_retry import run_torchrun

from foundation.checkpoint import load_checkpoint
from meta_learning.cli import main

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", METALEARN_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _torchrun(args, cwd, procs: int = 2, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--standalone"] + list(args)
    return run_torchrun(cmd, cwd=cwd, env=_env(), timeout=timeout)


def _per_rank(tmp: Path) -> Path:
    """A wrapper for ``torchrun --no-python``: each rank runs ``metalearn`` in its own folder
    ``r<RANK>`` (so a relative ``--out`` shows what each rank wrote) with its own stdout/stderr."""
    for r in (0, 1):
        (tmp / f"r{r}").mkdir(exist_ok=True)
    script = tmp / "per_rank.sh"
    script.write_text('#!/bin/sh\ncd "r$RANK" || exit 9\n'
                      f'exec "{sys.executable}" -m meta_learning.cli "$@" >stdout.txt 2>stderr.txt\n')
    script.chmod(0o755)
    return script


def _learner_state(path: Path) -> dict:
    try:
        state, _ = load_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - regression writes a plain torch file
        state = torch.load(path, map_location="cpu", weights_only=False)
    return state["learner"]["learner"]


def _max_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def _written(folder: Path) -> set:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.name not in ("stdout.txt", "stderr.txt")}


def test_engine_cases_match_one_process(tmp_path):
    """Mean/sum reductions, vmap/loop/backward_task/task_grads, surgery, L2F + Meta-SGD + clamp + l2,
    frozen tensors and TRPO's all-reduced step, over 5 tasks split 2 + 3: the same meta-parameters."""
    script = str(ROOT / "tests" / "distributed_cases.py")
    one = subprocess.run([sys.executable, script, str(tmp_path / "one")], env=_env(), capture_output=True,
                         text=True, timeout=240)
    assert one.returncode == 0, one.stderr
    two = _torchrun([script, str(tmp_path / "two")], cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len(names) == 11 and names == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in names:
        a, b = torch.load(tmp_path / "one" / name), torch.load(tmp_path / "two" / name)
        if name == "gather_indexed.pt":
            assert a["ranks"].tolist() == [0] and b["ranks"].tolist() == [0, 1]
        elif name == "on_main_raises_everywhere.pt":
            assert bool(a["ok"]) and bool(b["ok"])
        else:
            assert _max_diff(a, b) < 1e-6, name


REG = ["regression", "--shots", "5", "--meta-batch", "5", "--eval-tasks", "30", "--checkpoint-every", "2",
       "--no-plot", "--device", "cpu", "--seed", "3"]


@pytest.fixture(scope="module")
def reg_runs(tmp_path_factory):
    """A 2-process regression run of 4 iterations (one folder per rank), a copy of its outputs,
    then the same command with --iterations 8, which resumes from rank 0's checkpoint."""
    tmp = tmp_path_factory.mktemp("reg2")
    wrapper = _per_rank(tmp)
    first = _torchrun(["--no-python", str(wrapper)] + REG + ["--iterations", "4", "--out", "out"], cwd=tmp)
    logs4 = {r: ((tmp / f"r{r}" / "stdout.txt").read_text(), (tmp / f"r{r}" / "stderr.txt").read_text())
             for r in (0, 1)}
    assert first.returncode == 0, (first.stderr, logs4)
    written4 = {r: _written(tmp / f"r{r}") for r in (0, 1)}
    state4 = _learner_state(tmp / "r0" / "out" / "checkpoint.pt")
    results4 = json.loads((tmp / "r0" / "out" / "results.json").read_text())
    second = _torchrun(["--no-python", str(wrapper)] + REG + ["--iterations", "8", "--quiet", "--out", "out"],
                       cwd=tmp)
    assert second.returncode == 0, second.stderr
    return {"tmp": tmp, "logs4": logs4, "written4": written4, "state4": state4, "results4": results4,
            "state8": _learner_state(tmp / "r0" / "out" / "checkpoint.pt"),
            "results8": json.loads((tmp / "r0" / "out" / "results.json").read_text()),
            "written8": {r: _written(tmp / f"r{r}") for r in (0, 1)}}


def test_two_process_regression_gives_one_process_weights(reg_runs, tmp_path):
    assert main(REG + ["--iterations", "4", "--quiet", "--out", str(tmp_path / "one")]) == 0
    one = _learner_state(tmp_path / "one" / "checkpoint.pt")
    assert _max_diff(one, reg_runs["state4"]) < 1e-5
    res = json.loads((tmp_path / "one" / "results.json").read_text())
    for k, v in res["mse"].items():
        assert reg_runs["results4"]["mse"][k]["mean"] == pytest.approx(v["mean"], rel=1e-5)
    assert reg_runs["results4"]["run"] == {"device": "cpu", "processes": 2}


def test_only_rank_0_writes_prints_and_shows_progress(reg_runs):
    assert reg_runs["written4"][0] == {"out", "out/checkpoint.pt", "out/results.json"}
    assert reg_runs["written4"][1] == set() and reg_runs["written8"][1] == set()
    (out0, err0), (out1, err1) = reg_runs["logs4"][0], reg_runs["logs4"][1]
    assert "MAML 5-shot" in out0 and "meta-train 5-shot" in err0    # the result line and the bar
    assert out1 == "" and err1 == ""


def test_resume_under_torchrun_continues_from_rank_0s_checkpoint(reg_runs, tmp_path):
    """Rank 1's folder never held a checkpoint: rank 0 read it and gave it to rank 1."""
    assert main(REG + ["--iterations", "8", "--quiet", "--out", str(tmp_path / "one")]) == 0
    one = _learner_state(tmp_path / "one" / "checkpoint.pt")
    assert _max_diff(one, reg_runs["state8"]) < 1e-5
    assert reg_runs["results8"]["train"]["iterations"] == 8


def test_meta_batch_below_the_world_size_is_one_line(tmp_path):
    wrapper = _per_rank(tmp_path)
    run = _torchrun(["--no-python", str(wrapper)] + REG + ["--meta-batch", "1", "--iterations", "1",
                                                           "--out", "out"], cwd=tmp_path)
    assert run.returncode != 0
    err0 = (tmp_path / "r0" / "stderr.txt").read_text()
    assert err0.count("\n") == 1 and "--meta-batch 1" in err0 and "2 processes" in err0, err0
    assert (tmp_path / "r1" / "stderr.txt").read_text() == ""
    assert not (tmp_path / "r0" / "out").exists()


CLS = ["classification", "--ways", "3", "--shots", "1", "--queries", "2", "--iterations", "3", "--meta-batch", "3",
       "--inner-steps", "1", "--val-every", "2", "--val-tasks", "5", "--eval-tasks", "5", "--top-k", "2",
       "--quiet", "--device", "cpu", "--l2f"]


def test_two_process_classification_gives_one_process_weights_and_accuracy(tmp_path):
    run = _torchrun(["--no-python", "metalearn"] + CLS + ["--out", str(tmp_path / "two")], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert main(CLS + ["--out", str(tmp_path / "one")]) == 0
    a = _learner_state(tmp_path / "one" / "checkpoint.pt")
    b = _learner_state(tmp_path / "two" / "checkpoint.pt")
    # the all-reduce sums in another order; Adam carries that round-off forward and divides it by
    # sqrt(v), large for parameters whose gradients are tiny (2e-5 seen after 3 iterations)
    assert _max_diff(a, b) < 5e-5
    ra = json.loads((tmp_path / "one" / "results.json").read_text())
    rb = json.loads((tmp_path / "two" / "results.json").read_text())
    assert ra["accuracy"] == pytest.approx(rb["accuracy"]) and ra["members"] == rb["members"]
    assert [h[2] for h in ra["train"]["history"]] == [h[2] for h in rb["train"]["history"]]   # validation
    assert sorted(p.name for p in (tmp_path / "two" / "top").iterdir()) == ["iter2.pt", "iter3.pt"]


RL = ["rl", "--env", "2dnav", "--iterations", "2", "--meta-batch", "3", "--trajectories", "3", "--horizon", "8",
      "--eval-tasks", "4", "--quiet", "--no-plot", "--device", "cpu", "--seed", "1"]


def test_two_process_rl_samples_one_process_trajectories_and_takes_a_common_step(tmp_path):
    """The first iteration's returns (before and after adaptation, over all ranks' tasks) are one
    process's: same tasks, noise and resets per task, same adaptation.  The TRPO steps then agree
    only approximately: conjugate gradient on the nearly singular KL Hessian amplifies float
    rounding (tests/distributed_cases.py checks the all-reduced step itself on a toy problem)."""
    run = _torchrun(["--no-python", "metalearn"] + RL + ["--out", str(tmp_path / "two")], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert main(RL + ["--out", str(tmp_path / "one")]) == 0
    ra = json.loads((tmp_path / "one" / "results.json").read_text())
    rb = json.loads((tmp_path / "two" / "results.json").read_text())
    first_a, first_b = ra["train"]["history"][0], rb["train"]["history"][0]
    assert first_a[1:3] == pytest.approx(first_b[1:3], rel=1e-6, abs=1e-6)
    assert [h[3] for h in ra["train"]["history"]] == [h[3] for h in rb["train"]["history"]]
    assert all(0 < h[4] <= 0.01 for h in rb["train"]["history"] if h[3])
    assert set(rb["return"]) == {"0", "1", "2", "3", "4"} and rb["run"]["processes"] == 2


@pytest.mark.parametrize("argv, key", [
    (["regression", "--shots", "3", "--iterations", "0", "--eval-tasks", "450", "--meta-batch", "2",
      "--l2f", "--no-plot"], "mse"),                       # 3 chunks of 200 tasks over 2 ranks
    (["rl", "--env", "2dnav", "--iterations", "0", "--eval-tasks", "45", "--meta-batch", "2", "--trajectories", "3",
      "--horizon", "6", "--l2f", "--no-plot"], "return"),  # 3 chunks of 20 tasks
], ids=["regression", "rl"])
def test_shared_evaluation_gives_one_process_numbers_exactly(argv, key, tmp_path):
    argv = argv + ["--quiet", "--device", "cpu"]
    run = _torchrun(["--no-python", "metalearn"] + argv + ["--out", str(tmp_path / "two")], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert main(argv + ["--out", str(tmp_path / "one")]) == 0
    a = json.loads((tmp_path / "one" / "results.json").read_text())
    b = json.loads((tmp_path / "two" / "results.json").read_text())
    assert a[key] == b[key] and a["gamma"] == b["gamma"]


def test_the_torchrun_helper_retries_only_gloos_exit_abort(tmp_path):
    from torchrun_retry import GLOO_EXIT_ABORT

    marker = tmp_path / "tried"
    flaky = ("import pathlib, sys; m = pathlib.Path(sys.argv[1])\n"
             "print('first' if not m.exists() else 'second')\n"
             "if not m.exists():\n    m.touch(); sys.stderr.write(sys.argv[2]); sys.exit(134)\n")
    done = run_torchrun([sys.executable, "-c", flaky, str(marker), GLOO_EXIT_ABORT])
    assert done.returncode == 0 and marker.exists()                    # aborted once, then passed
    assert done.stdout.split() == ["first", "second"]                  # what the first attempt printed is kept
    marker.unlink()
    other = run_torchrun([sys.executable, "-c", flaky, str(marker), "another error"])
    assert other.returncode == 134 and "another error" in other.stderr  # not retried
    always = run_torchrun([sys.executable, "-c", f"import sys; sys.stderr.write({GLOO_EXIT_ABORT!r}); sys.exit(134)"])
    assert always.returncode == 134                                     # the same abort twice: a failure

