"""metalearn CLI: bad input in one line with exit 2, outputs, and exact resume."""
import json
import os
import stat

import pytest
import torch

from foundation.checkpoint import load_checkpoint
from foundation.errors import UserError
from meta_learning.cli import main
from meta_learning.tasks.regression import RegressionConfig, run, sample_tasks

TINY = ["--iterations", "6", "--meta-batch", "3", "--eval-tasks", "20", "--checkpoint-every", "2",
        "--quiet", "--no-plot"]


@pytest.mark.parametrize("argv, needle", [
    (["regression", "--shots", "-1", "--out", "X"], "--shots"),
    (["regression", "--shots", "0", "--out", "X"], "--shots"),
    (["regression", "--shots", "five", "--out", "X"], "--shots"),
    (["regression", "--shots", "5", "--dropgrad-rate", "1.5", "--out", "X"], "--dropgrad-rate"),
    (["regression", "--shots", "5", "--dropgrad", "uniform", "--out", "X"], "--dropgrad"),
    (["regression", "--shots", "5", "--iterations", "-3", "--out", "X"], "--iterations"),
    (["regression", "--shots", "5"], "--out"),
    (["nonsense"], "invalid choice"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    argv = [str(tmp_path / "o") if a == "X" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_unwritable_out_dir_and_bad_gamma_file(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["regression", "--shots", "5", "--out", str(blocker / "sub")] + TINY) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        assert main(["regression", "--shots", "5", "--out", str(ro / "o")] + TINY) == 2
        assert "cannot write" in capsys.readouterr().err
    bad = tmp_path / "gamma.json"
    bad.write_text(json.dumps({"gamma": "nope"}))
    assert main(["regression", "--shots", "5", "--l2-meta-reg", "eqc", "--l2-gamma", str(bad),
                 "--out", str(tmp_path / "o2")] + TINY) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gamma" in err
    assert main(["regression", "--shots", "5", "--resume", "--out", str(tmp_path / "o3")] + TINY) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_tiny_run_writes_results_checkpoint_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["regression", "--shots", "3", "--l2f", "--dropgrad", "gaussian", "--out", str(out)]
    assert main(argv + [a for a in TINY if a != "--no-plot"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["mse"]) == {"0", "1", "10"}
    for v in res["mse"].values():
        assert v["mean"] > 0 and v["ci95"] > 0
    assert res["config"]["shots"] == 3 and res["config"]["l2f"] and res["config"]["dropgrad"] == "gaussian"
    assert set(res["gamma"]) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}
    assert (out / "checkpoint.pt").exists() and (out / "fits.png").stat().st_size > 1000
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
    # Eq. C from that run's gammas
    out2 = tmp_path / "run2"
    assert main(["regression", "--shots", "3", "--l2-meta-reg", "eqc", "--l2-gamma", str(out / "results.json"),
                 "--out", str(out2)] + TINY) == 0
    cfg = json.loads((out2 / "results.json").read_text())["config"]
    assert cfg["l2_gamma"] == res["gamma"]


def test_resumed_run_gives_the_same_result_as_an_uninterrupted_one(tmp_path):
    cfg = RegressionConfig(shots=4, iterations=8, meta_batch=3, eval_tasks=30, checkpoint_every=3,
                           dropgrad="binary", surgery="graddrop", seed=5)
    full = run(cfg, tmp_path / "full", progress=False, plot=False)
    part = run(cfg, tmp_path / "part", progress=False, plot=False, stop_after=4)
    assert part == {"stopped_at": 4}
    ck = load_checkpoint(str(tmp_path / "part" / "checkpoint.pt"))[0]
    assert ck["iteration"] == 4
    resumed = run(cfg, tmp_path / "part", progress=False, plot=False)
    assert resumed["mse"] == full["mse"]
    a = load_checkpoint(str(tmp_path / "full" / "checkpoint.pt"))[0]["learner"]["learner"]
    b = load_checkpoint(str(tmp_path / "part" / "checkpoint.pt"))[0]["learner"]["learner"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a different seed must not silently resume this checkpoint
    other = RegressionConfig(**{**cfg.__dict__, "seed": 6})
    with pytest.raises(UserError, match="other settings"):
        run(other, tmp_path / "part", progress=False, plot=False)


def test_evaluation_tasks_are_fixed_and_distinct_from_training():
    from meta_learning.run import iteration_seed
    from meta_learning.tasks.regression import EVAL_SEED
    a = sample_tasks(5, 5, 5, torch.Generator().manual_seed(EVAL_SEED + 5))
    b = sample_tasks(5, 5, 5, torch.Generator().manual_seed(EVAL_SEED + 5))
    assert torch.equal(a[0][0], b[0][0])
    assert all(iteration_seed(s, i) != EVAL_SEED + 5 for s in range(3) for i in range(1000))
    amp, ph = a[2], a[3]
    assert (amp >= 0.1).all() and (amp <= 5).all() and (ph >= 0).all() and (ph <= torch.pi).all()


@pytest.mark.slow
def test_documented_maml_run_reaches_published_5_shot_mse(tmp_path):
    """The documented run (docs/meta_learning.md): MAML, 5 shots, 3000 iterations, 600 tasks.
    Published 1-step MSE: 1.13.  About a minute of one CPU core."""
    out = tmp_path / "maml5"
    assert main(["regression", "--shots", "5", "--iterations", "3000", "--meta-batch", "25", "--seed", "0",
                 "--quiet", "--no-plot", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["mse"]["1"]["mean"] <= 1.13
    assert res["mse"]["10"]["mean"] < res["mse"]["1"]["mean"] < res["mse"]["0"]["mean"]
