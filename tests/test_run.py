"""The resumable meta-training run: exact resume (also of files written before it), the one
settings rule and its error, per-iteration and per-rank seeds, non-finite skip with rollback, the
validation cadence and the history."""
from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from foundation.checkpoint import load_checkpoint
from foundation.errors import UserError
from meta_learning import MetaConfig, MetaLearner
from meta_learning.run import MetaRun, RunConfig, Step, iteration_seed
from meta_learning.tasks.regression import RegressionConfig, train as regression_train

pytestmark = pytest.mark.usefixtures("one_thread")


def _learner() -> MetaLearner:
    torch.manual_seed(0)
    return MetaLearner(nn.Linear(3, 1), MetaConfig(outer_lr=0.05))


def _run(path, iterations=6, seeding="once", stop_after=None, settings=None, nan_at=(), val_every=0,
         csv_log=None, resume=True):
    """A toy domain whose every step draws from torch's global stream (like DropGrad)."""
    learner = _learner()
    run = MetaRun(learner, settings or {"lr": 0.05}, RunConfig(iterations, 7, 2, val_every=val_every,
                                                               seeding=seeding),
                  str(path), resume=resume, stop_after=stop_after, progress=False, csv_log=csv_log)
    run.start()
    validated = []

    def step(it):
        x = torch.randn(8, 3)
        loss = ((learner.model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        if it + 1 in nan_at:
            loss = loss * float("nan")
        stats = learner.outer_step([loss])
        value = float(loss.detach())
        return Step(value, stats["grad_norm"], {"loss": f"{value:.6f}"} if csv_log else [it + 1])

    def validate(n):
        validated.append(n)
        return Step(row={"val": "v"} if csv_log else ["val", n])

    run.train(step, validate)
    return learner, run, validated


@pytest.mark.parametrize("seeding", ["once", "iteration"])
def test_a_stopped_run_resumes_to_the_same_weights(tmp_path, seeding):
    straight, _, _ = _run(tmp_path / "a.ckpt", seeding=seeding)
    _run(tmp_path / "b.ckpt", seeding=seeding, stop_after=3)      # checkpoint at 2 and at the stop, 3
    resumed, run, _ = _run(tmp_path / "b.ckpt", seeding=seeding)
    assert run.resumed and run.iteration == 6
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    a, b = load_checkpoint(str(tmp_path / "a.ckpt"))[0], load_checkpoint(str(tmp_path / "b.ckpt"))[0]
    assert a["history"] == b["history"] == [[1], [2], [3], [4], [5], [6], ["val", 6]]


def test_other_settings_are_one_user_error_naming_the_file_and_the_field(tmp_path):
    _run(tmp_path / "a.ckpt", iterations=2)
    with pytest.raises(UserError) as err:
        _run(tmp_path / "a.ckpt", iterations=4, settings={"lr": 0.1})
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "a.ckpt") in message and "(lr)" in message
    assert "another output" in message and "do not resume" in message
    _run(tmp_path / "a.ckpt", iterations=4, settings={"lr": 0.1}, resume=False)   # a fresh start is fine


def test_non_finite_step_is_skipped_and_rolled_back(tmp_path):
    clean, _, _ = _run(tmp_path / "a.ckpt", iterations=2)
    with pytest.warns(UserWarning, match="iteration 3 has a non-finite loss"):
        learner, run, _ = _run(tmp_path / "b.ckpt", iterations=3, nan_at=(3,))
    assert run.skipped == [3]
    for k, v in clean.state_dict().items():                 # iteration 3 left no trace
        assert torch.equal(v, learner.state_dict()[k]), k
    assert all(torch.isfinite(p).all() for p in learner.parameters())
    assert load_checkpoint(str(tmp_path / "b.ckpt"))[0]["skipped"] == [3]


def test_validation_cadence_checkpoints_and_csv_history(tmp_path):
    log = str(tmp_path / "log.csv")
    _, run, validated = _run(tmp_path / "a.ckpt", iterations=5, val_every=3, csv_log=(log, ["iteration", "loss",
                                                                                           "val", "skipped"]))
    assert validated == [3, 5]                                # every val_every and at the last one
    rows = list(csv.DictReader(open(log)))
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [r["val"] for r in rows] == ["", "", "v", "", "v"] and {r["skipped"] for r in rows} == {"0"}
    assert "history" not in load_checkpoint(str(tmp_path / "a.ckpt"))[0]   # the CSV is the history
    # zero iterations: the start is validated and checkpointed
    _, run, validated = _run(tmp_path / "z.ckpt", iterations=0)
    assert validated == [0] and load_checkpoint(str(tmp_path / "z.ckpt"))[0]["iteration"] == 0


def test_iteration_seed_is_one_streams_per_iteration_and_rank():
    assert iteration_seed(5, 3) == iteration_seed(5, 3, 0) == (5 * 1_000_003 + 3 * 7_919 + 17)
    seeds = {iteration_seed(5, i, r) for i in range(50) for r in range(4)}
    assert len(seeds) == 50 * 4


def test_a_regression_checkpoint_written_before_the_run_resumes(tmp_path):
    """The old regression format: a bare torch dict with ``training_key`` (no checkpoint format)."""
    cfg = RegressionConfig(shots=3, iterations=5, meta_batch=2, checkpoint_every=10, dropgrad="binary", seed=2)
    straight, _, _ = regression_train(cfg, tmp_path / "a", progress=False)
    part, _, _ = regression_train(cfg, None, progress=False, stop_after=2)
    (tmp_path / "b").mkdir()
    torch.save({"learner": part.checkpoint_state(), "iteration": 2, "history": [], "seconds": 0.0,
                "training_key": cfg.training_key(), "config": cfg.to_dict()}, tmp_path / "b" / "checkpoint.pt")
    resumed, _, info = regression_train(cfg, tmp_path / "b", progress=False)
    assert info["iterations"] == 5
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    other = RegressionConfig(**{**cfg.__dict__, "seed": 3})
    with pytest.raises(UserError, match="other settings"):
        regression_train(other, tmp_path / "b", progress=False)
