import json
import os

import numpy as np
import pytest

from otb_eval.testing import make_sequence, write_random_results
from tracker.cli import main


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "data"
    for i, name in enumerate(["Basketball", "Jogging", "SynTest001"]):
        make_sequence(str(root), name, 10, seed=i, targets=2 if name == "Jogging" else 1)
    (root / "SynTest001" / "attributes.json").write_text('{"attributes": ["FM", "OCC"]}')
    return root


def _is_png(path):
    with open(path, "rb") as f:
        return os.path.getsize(path) > 1000 and f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_eval_then_report_writes_everything(tree, tmp_path, capsys):
    results, out = tmp_path / "results", tmp_path / "report"
    assert main(["eval", "--dataset", str(tree), "--trackers", "identity", "--results",
                 str(results), "--no-progress"]) == 0
    assert sorted(os.listdir(results / "identity")) == [
        "Basketball.txt", "Jogging.1.txt", "Jogging.2.txt", "SynTest001.txt", "scores", "times"]
    rows = np.loadtxt(results / "identity" / "Jogging.2.txt", delimiter=",")
    assert rows.shape == (10, 4) and np.all(rows == rows[0])
    from otb_eval.datasets import OTBDataset
    write_random_results(str(results), "noisy", OTBDataset(str(tree)), seed=1)

    assert main(["report", "--dataset", str(tree), "--results", str(results), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| identity |" in printed and "| noisy |" in printed
    perf = json.loads((out / "performance.json").read_text())
    assert set(perf) == {"identity", "noisy"}
    for name in perf:
        overall = perf[name]["overall"]
        assert len(overall["success_curve"]) == 21 and len(overall["precision_curve"]) == 51
        assert set(perf[name]["seq_wise"]) == {"Basketball", "Jogging.1", "Jogging.2", "SynTest001"}
        assert overall["fps"] > 0 and overall["speed_fps"] > 0
    assert set(perf["noisy"]["attributes"]) >= {"FM", "OCC", "IV"}   # synthetic + OTB-100 table
    for f in ["success_plots.png", "precision_plots.png", "attributes/success_plots_FM.png",
              "attributes/precision_plots_OCC.png"]:
        assert _is_png(out / f), f
    assert (out / "table.csv").read_text().count("\n") == 2 * 5 + 1
    assert "AUC per attribute" in (out / "table.md").read_text()


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def test_bad_inputs_give_one_line_and_exit_2(tree, tmp_path, capsys):
    r = str(tmp_path / "r")
    assert main(["eval", "--dataset", str(tmp_path / "missing"), "--trackers", "identity",
                 "--results", r]) == 2
    assert "does not exist" in _error_line(capsys)
    assert main(["eval", "--dataset", str(tree), "--trackers", "identity,nosuch", "--results", r]) == 2
    assert "unknown tracker 'nosuch'" in _error_line(capsys)
    assert not os.path.exists(r)     # nothing ran before the name was checked
    assert main(["eval", "--dataset", str(tree), "--version", "otb2015", "--trackers", "identity",
                 "--results", r]) == 2
    assert "not a complete otb2015" in _error_line(capsys)
    assert main(["report", "--dataset", str(tree), "--results", str(tmp_path / "nores"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in _error_line(capsys)
    assert main(["eval", "--dataset", str(tree), "--version", "otb2099", "--trackers", "identity",
                 "--results", r]) == 2      # a usage error is a return value, in one line
    assert "invalid choice: 'otb2099'" in _error_line(capsys)


def test_report_names_missing_and_unknown_layouts(tree, tmp_path, capsys):
    results = tmp_path / "results"
    (results / "partial").mkdir(parents=True)
    np.savetxt(results / "partial" / "Basketball.txt", np.ones((10, 4)), delimiter=",")
    assert main(["report", "--dataset", str(tree), "--results", str(results), "--out",
                 str(tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert "tracker partial: no results for 3 of 4 sequences" in line and "Jogging.1" in line
    (results / "weird").mkdir()
    (results / "weird" / "boxes.json").write_text("{}")
    assert main(["report", "--dataset", str(tree), "--results", str(results), "--trackers", "weird",
                 "--out", str(tmp_path / "o")]) == 2
    assert "unknown result layout (e.g. boxes.json)" in _error_line(capsys)


def test_malformed_result_row_named(tree, tmp_path, capsys):
    results = tmp_path / "results"
    from otb_eval.datasets import OTBDataset
    write_random_results(str(results), "t", OTBDataset(str(tree)), seed=0)
    (results / "t" / "Basketball.txt").write_text("1,2,3,4\n" * 4 + "1,2,oops,4\n" + "1,2,3,4\n" * 5)
    assert main(["report", "--dataset", str(tree), "--results", str(results), "--out",
                 str(tmp_path / "o")]) == 2
    assert "Basketball.txt:5: malformed row" in _error_line(capsys)
