"""``--device`` on every training subcommand of ``metalearn``: ``cpu`` is accepted and changes
nothing, a CUDA device that is not there is one line (exit 2) before any work, checkpoints hold CPU
tensors; on a CUDA machine (``-m cuda``) the GPU run matches the CPU run up to float tolerance."""
from __future__ import annotations

import json

import pytest
import torch

from foundation.checkpoint import load_checkpoint
from meta_learning.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

REG = ["regression", "--shots", "3", "--iterations", "4", "--meta-batch", "3", "--eval-tasks", "20", "--quiet",
       "--no-plot", "--l2f"]
RL = ["rl", "--env", "2dnav", "--iterations", "2", "--meta-batch", "2", "--trajectories", "3", "--horizon", "6",
      "--eval-tasks", "3", "--quiet", "--no-plot", "--l2f"]
CLS = ["classification", "--ways", "3", "--shots", "1", "--queries", "2", "--iterations", "2", "--meta-batch", "2",
       "--inner-steps", "1", "--val-every", "2", "--val-tasks", "3", "--eval-tasks", "3", "--top-k", "1", "--quiet"]
COMMANDS = {"regression": REG, "rl": RL, "classification": CLS}


def _strip(results: dict) -> dict:
    results = dict(results)
    results.pop("eval_seconds", None)
    results["train"] = {k: v for k, v in results["train"].items() if k != "seconds"}
    return results


def _weights(path) -> dict:
    try:
        state, _ = load_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - regression writes a plain torch file
        state = torch.load(path, map_location="cpu", weights_only=False)
    return state["learner"]["learner"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_device_cpu_is_accepted_and_is_the_default_on_this_machine(command, tmp_path, capsys):
    argv = COMMANDS[command]
    assert main(argv + ["--device", "cpu", "--out", str(tmp_path / "cpu")]) == 0
    res = json.loads((tmp_path / "cpu" / "results.json").read_text())
    assert res["run"] == {"device": "cpu", "processes": 1}
    if not torch.cuda.is_available():        # auto is the CPU here: the very same run
        assert main(argv + ["--out", str(tmp_path / "auto")]) == 0
        assert _strip(json.loads((tmp_path / "auto" / "results.json").read_text())) == _strip(res)


def test_classification_evaluate_takes_device_cpu(tmp_path, capsys):
    assert main(CLS + ["--device", "cpu", "--out", str(tmp_path / "run")]) == 0
    assert main(CLS + ["--evaluate", str(tmp_path / "run" / "model.pt"), "--device", "cpu",
                       "--out", str(tmp_path / "eval")]) == 0
    a = json.loads((tmp_path / "run" / "results.json").read_text())
    b = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert a["accuracy"] == b["accuracy"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is there")
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_absent_cuda_is_one_line_and_exit_2_before_any_work(command, device, tmp_path, capfd):
    out = tmp_path / "o"
    assert main(COMMANDS[command] + ["--device", device, "--out", str(out)]) == 2
    captured = capfd.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("metalearn: error: --device " + device), lines
    assert "Traceback" not in captured.err + captured.out and not out.exists()


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu0"])
def test_a_word_that_is_not_a_device_is_one_line(device, tmp_path, capsys):
    assert main(REG + ["--device", device, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a device" in err


# ---------------------------------------------------------------------------------- CUDA only
def _close(a: dict, b: dict, tol: float) -> None:
    assert set(a) == set(b)
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k].double(), b[k].double(), rtol=tol, atol=tol), k


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cuda_run_matches_the_cpu_run_and_saves_cpu_tensors(command, tmp_path, capsys, monkeypatch):
    # cuDNN convolutions default to TF32 on Ampere and later: float32 here, to compare with the CPU
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    argv = COMMANDS[command]
    assert main(argv + ["--device", "cpu", "--out", str(tmp_path / "cpu")]) == 0
    assert main(argv + ["--device", "cuda", "--out", str(tmp_path / "gpu")]) == 0
    a, b = _weights(tmp_path / "cpu" / "checkpoint.pt"), _weights(tmp_path / "gpu" / "checkpoint.pt")
    assert all(v.device.type == "cpu" for v in b.values())
    ra = json.loads((tmp_path / "cpu" / "results.json").read_text())
    rb = json.loads((tmp_path / "gpu" / "results.json").read_text())
    assert rb["run"]["device"].startswith("cuda")
    if command == "rl":
        # the same tasks and noise; TRPO's conjugate gradient then amplifies rounding (docs/rl.md)
        assert rb["train"]["history"][0][1] == pytest.approx(ra["train"]["history"][0][1], rel=1e-4)
        assert rb["train"]["history"][0][2] == pytest.approx(ra["train"]["history"][0][2], rel=1e-3)
    else:
        _close(a, b, 1e-4 if command == "regression" else 1e-3)
    # a GPU run's checkpoint resumes on the CPU (map_location): complete, so it is evaluated again
    assert main(argv + ["--device", "cpu", "--out", str(tmp_path / "gpu")]) == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_checkpoint_resumes_on_cuda(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(REG[:4] + ["2"] + REG[5:] + ["--device", "cpu", "--out", out]) == 0     # 2 iterations
    assert main(REG + ["--device", "cuda", "--out", out]) == 0                         # on to 4, on the GPU
    state, _ = load_checkpoint(str(tmp_path / "run" / "checkpoint.pt"))
    assert state["iteration"] == 4
