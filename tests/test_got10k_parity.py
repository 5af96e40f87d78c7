"""Our report must give got10k 0.1.3's numbers on a tree with every OTB quirk."""
import os

import numpy as np
import pytest

from otb_eval.datasets import OTBDataset
from otb_eval.report import evaluate
from otb_eval.testing import make_quirky_otb2015_tree, write_random_results


@pytest.fixture(scope="module")
def quirky(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("otb"))
    frames = make_quirky_otb2015_tree(root)
    return root, frames


def _got10k_report(root, results_root, report_root, trackers, monkeypatch):
    import got10k.experiments.otb as got10k_otb
    from got10k.datasets import OTB

    # ExperimentOTB always builds its dataset with download=True; build it offline instead.
    monkeypatch.setattr(got10k_otb, "OTB", lambda r, v, download=True: OTB(r, v, download=False))
    monkeypatch.setattr(got10k_otb.ExperimentOTB, "plot_curves", lambda self, names: None)
    exp = got10k_otb.ExperimentOTB(root, version=2015, result_dir=results_root,
                                   report_dir=report_root)
    return exp.report(trackers), exp


def test_every_score_equals_got10k(quirky, tmp_path, monkeypatch):
    root, frames = quirky
    ours_ds = OTBDataset(root, "auto")
    assert dict(zip(ours_ds.seq_names, map(len, ours_ds))) == frames
    results = os.path.join(tmp_path, "results", "OTB2015")
    for seed, name in enumerate(["trkA", "trkB"]):
        write_random_results(results, name, ours_ds, seed)

    theirs, exp = _got10k_report(root, os.path.join(tmp_path, "results"),
                                 os.path.join(tmp_path, "reports"), ["trkA", "trkB"], monkeypatch)
    assert sorted(exp.dataset.seq_names) == sorted(ours_ds.seq_names)

    ours = evaluate(ours_ds, results, ["trkA", "trkB"], policy="got10k")
    for name in ["trkA", "trkB"]:
        for seq, t in theirs[name]["seq_wise"].items():
            o = ours[name]["seq_wise"][seq]
            for key in ("success_score", "precision_score", "success_rate", "speed_fps"):
                assert o[key] == pytest.approx(t[key], abs=1e-9), (name, seq, key)
            np.testing.assert_allclose(o["success_curve"], t["success_curve"], atol=1e-12)
            np.testing.assert_allclose(o["precision_curve"], t["precision_curve"], atol=1e-12)
        for key in ("success_score", "precision_score", "success_rate", "speed_fps"):
            assert ours[name]["overall"][key] == pytest.approx(theirs[name]["overall"][key], abs=1e-9)
    # the quirks really were exercised: a NaN row and the zero ground-truth row score as got10k does
    assert theirs["trkA"]["overall"]["success_score"] != theirs["trkB"]["overall"]["success_score"]


def test_other_policies_differ_only_where_ground_truth_or_predictions_are_invalid(quirky, tmp_path):
    root, _ = quirky
    ds = OTBDataset(root, "auto")
    results = str(tmp_path)
    write_random_results(results, "trk", ds, 3)
    scores = {p: evaluate(ds, results, ["trk"], policy=p)["trk"]["seq_wise"]
              for p in ("got10k", "pytracking", "matlab")}
    # Board has valid ground truth but NaN predictions: pytracking equals got10k there
    assert scores["pytracking"]["Board"]["success_score"] == pytest.approx(
        scores["got10k"]["Board"]["success_score"])
    # the MATLAB toolkit carries the last box forward over NaN rows: never worse than a failure
    assert scores["matlab"]["Board"]["precision_score"] >= scores["got10k"]["Board"]["precision_score"]
    # Basketball has one all-zero ground-truth row: MATLAB counts it a precision success
    m, p = scores["matlab"]["Basketball"], scores["pytracking"]["Basketball"]
    assert m["precision_curve"][0] > p["precision_curve"][0]
