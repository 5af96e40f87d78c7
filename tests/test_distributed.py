"""torchrun for the tracker: meta-training split over two gloo processes equals one process, resume
works under torchrun, and a sharded evaluation writes each sequence once with the results of one
process. The commands run as a user types them (``torchrun ... --no-python metatrack ...``)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torchrun_retry import run_torchrun

from otb_eval.experiment import run_experiment
from otb_eval.synthetic import generate

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--no-python"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = run_torchrun(cmd, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _learner_state(path: str) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)["state"]
    return state["learner"]["learner"]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


@pytest.fixture(scope="module")
def train_set(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("train"))
    generate(root, 3, seed=0, split="train", frames=(12, 16), size=(160, 120), progress=False)
    return root


def _meta_train(dataset: str, out: str, iterations: int, *extra: str) -> list[str]:
    return ["metatrack", "meta-train", "--tracker", "metasdnet", "--model", "tiny", "--dataset", dataset,
            "--iterations", str(iterations), "--meta-batch", "3", "--checkpoint-every", "2",
            "--no-progress", "--device", "cpu", "--seed", "4", "--out", out, *extra]


def test_meta_train_two_processes_equal_one_and_resume(train_set, tmp_path):
    one, two = str(tmp_path / "one.pt"), str(tmp_path / "two.pt")
    _run(_meta_train(train_set, one, 4))
    _run(TORCHRUN + _meta_train(train_set, two, 4))
    # meta-batch 3 over 2 ranks: shares of 1 and 2 episodes, gradients weighted by share
    assert _max_diff(_learner_state(one + ".ckpt"), _learner_state(two + ".ckpt")) < 1e-5
    assert os.path.isfile(two) and os.path.isfile(two + ".csv")
    rows = open(two + ".csv").read().splitlines()
    assert len(rows) == 1 + 4                      # one header, one row per iteration: rank 0 alone logs
    saved = torch.load(two + ".ckpt", map_location="cpu", weights_only=False)["state"]
    assert len(saved["torch_rng_ranks"]) == 2      # each rank's DropGrad stream, to resume exactly
    # with DropGrad (each rank its own noise, saved per rank): killed (-9, every process) after a
    # checkpoint and resumed under torchrun, the run ends exactly as the uninterrupted one
    noisy, resumed = str(tmp_path / "noisy.pt"), str(tmp_path / "resumed.pt")
    _run(TORCHRUN + _meta_train(train_set, noisy, 16, "--dropgrad", "binary"))
    proc = subprocess.Popen(TORCHRUN + _meta_train(train_set, resumed, 16, "--dropgrad", "binary"), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while not os.path.exists(resumed + ".ckpt") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stopped_at = int(torch.load(resumed + ".ckpt", map_location="cpu", weights_only=False)["state"]["iteration"])
    assert stopped_at < 16                          # it was interrupted
    _run(TORCHRUN + _meta_train(train_set, resumed, 16, "--dropgrad", "binary", "--resume"))
    assert _max_diff(_learner_state(noisy + ".ckpt"), _learner_state(resumed + ".ckpt")) == 0.0

    def losses(path: str) -> list:   # iteration, phase, query and support loss, grad norm: no times
        return [row.split(",")[:5] for row in open(path + ".csv").read().splitlines()]
    assert losses(resumed) == losses(noisy) and len(losses(noisy)) == 17


class _Still:
    """The cheapest tracker: it repeats the first box."""

    def __init__(self) -> None:
        self.name = "counting"

    def init(self, image, box) -> None:
        self._box = np.asarray(box, float)

    def update(self, image) -> np.ndarray:
        return self._box


def test_shards_cover_every_run_once(tmp_path):
    from otb_eval.datasets import OTBDataset
    from otb_eval.experiment import ope_runs

    root = str(tmp_path / "seqs")
    generate(root, 5, seed=1, split="test", frames=(5, 6), size=(64, 64), progress=False)
    runs = ope_runs(OTBDataset(root))
    done = []
    for rank in range(2):
        summary = run_experiment(_Still(), runs, str(tmp_path / "res"), "counting", progress=False,
                                 shard=(rank, 2))
        done += summary.tracked
    assert sorted(done) == sorted(r.key for r in runs)      # each sequence once, none left out
    again = run_experiment(_Still(), runs, str(tmp_path / "res"), "counting", progress=False, shard=(1, 2))
    assert again.tracked == [] and len(again.skipped) == 2  # a rank's finished share is skipped on resume
    with pytest.raises(Exception, match="shard 2 of 2"):
        run_experiment(_Still(), runs, str(tmp_path / "res"), "counting", shard=(2, 2))


def test_sharded_eval_matches_one_process(tmp_path):
    root = str(tmp_path / "test")
    generate(root, 3, seed=2, split="test", frames=(10, 14), size=(160, 120), progress=False)
    base = ["metatrack", "eval", "--trackers", "metasdnet,identity", "--dataset", root, "--no-progress",
            "--device", "cpu", "--results"]
    _run(base + [str(tmp_path / "one")])
    out = _run(TORCHRUN + base + [str(tmp_path / "two")]).stdout
    for name in ("metasdnet", "identity"):
        a, b = tmp_path / "one" / name, tmp_path / "two" / name
        files = sorted(f for f in os.listdir(a) if f.endswith(".txt"))
        assert len(files) == 3 and files == sorted(f for f in os.listdir(b) if f.endswith(".txt"))
        for f in files:
            assert (a / f).read_bytes() == (b / f).read_bytes()
        assert sorted(os.listdir(a / "times")) == sorted(os.listdir(b / "times"))
        assert not [f for f in os.listdir(b) if f.startswith(".tmp-")]
    # rank 0 reports the whole evaluation once: 3 runs tracked per tracker (a retried attempt after
    # gloo's exit abort adds its own "0 runs tracked, 3 already done" lines)
    assert out.count("3 runs tracked") == 2, out


def test_output_folder_made_by_many_processes_at_once(tmp_path):
    """torchrun's ranks check the same new output folder together: none may fail for the other."""
    from concurrent.futures import ThreadPoolExecutor

    from foundation.fileio import ensure_writable_dir

    for k in range(20):
        target = str(tmp_path / f"run{k}" / "a" / "b")
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: ensure_writable_dir(target, "--results"), range(4)))
        assert os.path.isdir(target)
