"""weights/train_metacrest.sh and weights/train_metasdnet.sh, the scripts that reproduce the shipped
weights: their steps resume (a rerun skips nothing it should redo and redoes nothing it finished)
and a run split in two gives the same weights as one run."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "weights", "train_metacrest.sh")
SDNET_SCRIPT = os.path.join(ROOT, "weights", "train_metasdnet.sh")


def _run(tmp_path, out: str, variants: str, script: str = SCRIPT, **extra: str) -> None:
    env = {**os.environ, "DATA": str(tmp_path / "data"), "OUT": str(tmp_path / out), "ITER": "2",
           "VARIANTS": variants, "TRAIN_SEQUENCES": "2", "VAL_SEQUENCES": "1", "CHECKPOINT_EVERY": "1",
           "SYNTH_ARGS": "--frames 8:8 --size 96x72",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""), **extra}
    done = subprocess.run(["bash", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def _tensors(path):
    state = torch.load(path, map_location="cpu", weights_only=False)["state"]
    return {k: v for part in ("model", "alpha") for k, v in state[part].items()}, state["backbone"]


@pytest.mark.usefixtures("one_thread")
def test_train_metacrest_steps_resume_to_the_same_weights(tmp_path):
    _run(tmp_path, "once", "base l2f")
    _run(tmp_path, "split", "base")
    first = os.path.getmtime(tmp_path / "split" / "metacrest.pt.csv")
    _run(tmp_path, "split", "base l2f")            # base is finished: resumed, not retrained
    rows = (tmp_path / "split" / "metacrest.pt.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 and os.path.getmtime(tmp_path / "split" / "metacrest.pt.csv") >= first
    for name in ("metacrest", "metacrest-l2f"):
        a, bb_a = _tensors(tmp_path / "once" / f"{name}.pt")
        b, bb_b = _tensors(tmp_path / "split" / f"{name}.pt")
        assert bb_a["kind"] == "efficientnet" and bb_a["config"] == {"blocks": 5, "dilate_from": 3}
        assert bb_a["feature_scale"] == bb_b["feature_scale"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.usefixtures("one_thread")
def test_train_metasdnet_steps_resume_to_the_same_weights(tmp_path):
    _run(tmp_path, "once", "base l2f", SDNET_SCRIPT, PRETRAIN_ITER="2")
    _run(tmp_path, "split", "base", SDNET_SCRIPT, PRETRAIN_ITER="2")
    start = tmp_path / "split" / "mdnet.pt"
    first = os.path.getmtime(start)
    _run(tmp_path, "split", "base l2f", SDNET_SCRIPT, PRETRAIN_ITER="2")   # pretraining and base done
    assert os.path.getmtime(start) == first
    assert len((tmp_path / "split" / "metasdnet.pt.csv").read_text().splitlines()) == 1 + 2
    for name in ("mdnet", "metasdnet", "metasdnet-l2f"):
        state = torch.load(tmp_path / "once" / f"{name}.pt", map_location="cpu", weights_only=False)["state"]
        again = torch.load(tmp_path / "split" / f"{name}.pt", map_location="cpu", weights_only=False)["state"]
        assert state["model_config"]["backbone"] == "efficientnet-lite0"
        assert all(k.startswith("fc.") for k in state["model"])
        assert all(torch.equal(state["model"][k], again["model"][k]) for k in state["model"]), name
