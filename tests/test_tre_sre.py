import json
import os

import numpy as np
import pytest

from otb_eval.datasets import OTBDataset
from otb_eval.experiment import SRE_PERTURBATIONS, run_plan, sre_box, tre_starts
from otb_eval.metrics import frame_errors, pooled_scores
from otb_eval.testing import make_sequence
from tracker.cli import main


def test_tre_starts_by_hand():
    anno = np.tile([10.0, 10, 20, 20], (58, 1))
    assert tre_starts(anno) == list(range(0, 39, 2))          # linspace(0, 58 - 20, 20) = 0, 2, ..., 38
    anno[4] = 0                                               # invalid ground truth: next valid frame
    assert tre_starts(anno)[:4] == [0, 2, 5, 6]
    long = np.tile([10.0, 10, 20, 20], (100, 1))
    assert tre_starts(long) == [0, 4, 8, 12, 16, 21, 25, 29, 33, 37, 42, 46, 50, 54, 58, 63, 67,
                                71, 75, 80]
    assert tre_starts(long[:30]) == list(range(11))           # short: duplicates dropped
    assert all(len(long) - s >= 20 for s in tre_starts(long))
    assert tre_starts(long[:12]) == [0]


def test_sre_perturbations_by_hand():
    box = np.array([10.0, 20, 40, 30])
    got = {p: sre_box(box, p) for p in SRE_PERTURBATIONS}
    assert len(got) == 12
    np.testing.assert_allclose(got["left"], [6, 20, 40, 30])
    np.testing.assert_allclose(got["right"], [14, 20, 40, 30])
    np.testing.assert_allclose(got["up"], [10, 17, 40, 30])
    np.testing.assert_allclose(got["down-right"], [14, 23, 40, 30])
    np.testing.assert_allclose(got["scale-0.8"], [14, 23, 32, 24])    # centre (30, 35) kept
    np.testing.assert_allclose(got["scale-1.2"], [6, 17, 48, 36])
    np.testing.assert_allclose(sre_box([0, 0, 40, 30], "up-left", (100, 100)), [0, 0, 36, 27])


def test_pooled_tre_score_sums_successes_over_all_runs():
    anno = np.tile([10.0, 10, 20, 20], (10, 1))
    perfect = frame_errors(anno, anno)
    lost = frame_errors(np.tile([200.0, 200, 20, 20], (5, 1)), anno[:5])   # frame 1 is replaced
    assert pooled_scores([perfect, lost]).success_rate == pytest.approx(11 / 15)


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "data"
    make_sequence(str(root), "Walk", 45, seed=1)
    make_sequence(str(root), "Run", 25, seed=2)
    return root


def test_tre_and_sre_resume_and_report_beside_ope(tree, tmp_path, capsys):
    results, out = tmp_path / "results", tmp_path / "report"
    for protocol in ("ope", "tre", "sre"):
        assert main(["eval", "--dataset", str(tree), "--trackers", "identity", "--results",
                     str(results), "--protocol", protocol, "--no-progress"]) == 0
    ds = OTBDataset(str(tree))
    tre_files = sorted(os.listdir(results / "identity" / "tre"))
    assert len([f for f in tre_files if f.endswith(".txt")]) == sum(len(run_plan("tre", s)) for s in ds)
    assert len(os.listdir(results / "identity" / "sre")) == 2 * 12 + 2   # + times/, scores/
    first_walk = np.loadtxt(results / "identity" / "tre" / "Walk_02.txt", delimiter=",")
    start = run_plan("tre", ds["Walk"])[1][1]
    assert len(first_walk) == 45 - start
    np.testing.assert_allclose(first_walk[0], ds["Walk"].anno[start], atol=1e-4)
    sre_left = np.loadtxt(results / "identity" / "sre" / "Walk_left.txt", delimiter=",")
    np.testing.assert_allclose(sre_left[-1], sre_box(ds["Walk"].anno[0], "left", (320, 240)), atol=1e-4)

    # a rerun does nothing: every run is found done
    capsys.readouterr()
    assert main(["eval", "--dataset", str(tree), "--trackers", "identity", "--results",
                 str(results), "--protocol", "tre", "--no-progress"]) == 0
    assert "0 runs tracked" in capsys.readouterr().out

    assert main(["report", "--dataset", str(tree), "--results", str(results), "--out", str(out)]) == 0
    for f in ["success_plots.png", "success_plots_tre.png", "precision_plots_sre.png",
              "performance_tre.json", "performance_sre.json", "table_sre.md"]:
        assert (out / f).stat().st_size > 0, f
    ope = json.loads((out / "performance.json").read_text())["identity"]["overall"]
    tre = json.loads((out / "performance_tre.json").read_text())["identity"]["overall"]
    assert ope["success_score"] != tre["success_score"]
