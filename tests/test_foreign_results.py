"""Result folders written by other toolkits are read, aligned and scored like ours."""

import numpy as np
import pytest
from scipy.io import savemat

from otb_eval.datasets import OTBDataset
from otb_eval.report import evaluate
from otb_eval.testing import make_sequence, write_random_results
from tracker.cli import main


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "data"
    make_sequence(str(root), "Jogging", 12, targets=2, delimiter="\t", seed=1)
    make_sequence(str(root), "David", 770, rows=471, seed=2)
    make_sequence(str(root), "Human4", 10, targets=2, empty_first=True, seed=3)
    return root


def _matlab_result(path, boxes, kind="rect"):
    results = np.empty((1, 1), dtype=object)
    results[0, 0] = {"res": boxes, "type": kind, "len": len(boxes), "startFrame": 1, "annoBegin": 1}
    savemat(path, {"results": results})


def test_every_layout_scores_like_ours(tree, tmp_path):
    ds = OTBDataset(str(tree))
    ours = tmp_path / "ours"
    write_random_results(str(ours), "trk", ds, seed=5)
    reference = evaluate(ds, str(ours), ["trk"])["trk"]["seq_wise"]
    loaded = {n: np.loadtxt(ours / "trk" / f"{n}.txt", delimiter=",") for n in ds.seq_names}

    other = tmp_path / "other"
    styles = {
        "pysot": lambda n: n.replace(".", "-"),                        # Jogging-1.txt, comma
        "pytracking": lambda n: n.replace(".", "_"),                   # Jogging_1.txt, tab
    }
    for layout, style in styles.items():
        folder = other / layout
        folder.mkdir(parents=True)
        delim = "\t" if layout == "pytracking" else ","
        for n, boxes in loaded.items():
            np.savetxt(folder / f"{style(n)}.txt", boxes, fmt="%.3f", delimiter=delim)
    matlab = other / "MEEM"
    matlab.mkdir()
    for n, boxes in loaded.items():
        stem = {"Human4": "human4-2"}.get(n, n.lower().replace(".", "-"))
        _matlab_result(str(matlab / f"{stem}_MEEM.mat"), boxes)

    scored = evaluate(ds, str(other))
    assert set(scored) == {"pysot", "pytracking", "MEEM"}
    for name, perf in scored.items():
        for seq, ref in reference.items():
            assert perf["seq_wise"][seq]["success_score"] == pytest.approx(ref["success_score"], abs=1e-9), (name, seq)
            assert perf["seq_wise"][seq]["precision_score"] == pytest.approx(ref["precision_score"], abs=1e-9)


def test_full_folder_results_are_cut_to_the_annotated_frames(tree, tmp_path):
    ds = OTBDataset(str(tree))
    folder = tmp_path / "r" / "full"
    folder.mkdir(parents=True)
    for seq in ds:
        np.savetxt(folder / f"{seq.name}.txt", seq.anno, delimiter=",")
    david = np.zeros((770, 4))
    david[299:] = ds["David"].anno                      # a result for every image of David
    np.savetxt(folder / "David.txt", david, delimiter=",")
    perf = evaluate(ds, str(tmp_path / "r"))["full"]
    assert perf["seq_wise"]["David"]["success_score"] == pytest.approx(20 / 21)


def test_unsupported_matlab_type_is_named(tree, tmp_path, capsys):
    folder = tmp_path / "r" / "L1"
    folder.mkdir(parents=True)
    ds = OTBDataset(str(tree))
    for seq in ds:
        _matlab_result(str(folder / f"{seq.name.lower().replace('.', '-')}_L1.mat"), seq.anno,
                       kind="L1Aff")
    assert main(["report", "--dataset", str(tree), "--results", str(tmp_path / "r"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "result type 'L1Aff' is not supported" in err and "_L1.mat" in err
