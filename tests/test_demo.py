"""`metatrack demo`, the README's first command, end to end on a tiny synthetic set."""
import json
import os

from tracker.cli import main
from tracker.weights import find_weights


def test_demo_writes_results_plots_table_and_video(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--sequences", "1", "--frames", "12:14",
                 "--workers", "1", "--device", "cpu"]) == 0      # --device is accepted (tests/test_devices.py)
    printed = capsys.readouterr().out
    perf = json.loads((out / "report" / "performance.json").read_text())
    shipped = [f"meta{family}{variant}" for family in ("sdnet", "crest")
               for variant in ("", "-l2f", "-dropgrad", "-l2f-dropgrad") if find_weights(f"meta{family}{variant}")]
    assert set(shipped) <= set(perf) and {"csrt", "kcf", "medianflow"} <= set(perf)
    for name in perf:
        assert f"| {name} |" in printed
        assert 0.0 <= perf[name]["overall"]["success_score"] <= 1.0
    assert (out / "report" / "success_plots.png").stat().st_size > 1000
    videos = [f for f in os.listdir(out) if f.endswith(".mp4")]
    assert len(videos) == 1 and (out / videos[0]).stat().st_size > 1000
    assert (out / "figure.png").stat().st_size > 1000        # the qualitative figure
    # a rerun resumes: nothing is tracked again and the results are untouched
    before = {f: (out / "results" / "csrt" / f).read_bytes() for f in os.listdir(out / "results" / "csrt")
              if f.endswith(".txt")}
    assert main(["demo", "--out", str(out), "--sequences", "1", "--frames", "12:14"]) == 0
    after = {f: (out / "results" / "csrt" / f).read_bytes() for f in before}
    assert before == after
