"""Result files do not depend on how many processes track: ``metatrack eval --workers 1`` and
``--workers 2`` write byte-identical boxes for every shipped tracker and OpenCV's baselines (MIL
and TLD seeded at each init; each run uses one torch thread, :data:`otb_eval.experiment.RUN_THREADS`; before that,
one worker ran with torch's default thread count and its float sums came out in another order).

Runs as subprocesses so that the main process has torch's default thread count, as a user's has."""
import filecmp
import subprocess

from tracker.api import families, variants

OPENCV = ["kcf", "csrt", "mosse", "medianflow", "mil", "tld"]


def test_workers_1_and_2_write_identical_result_files(tmp_path):
    trackers = [v for f in families() for v in variants(f.name)] + [f.plain for f in families()]
    trackers += OPENCV + ["identity"]
    data = tmp_path / "data"
    subprocess.run(["metatrack", "synth", str(data), "--sequences", "2", "--split", "val",
                    "--frames", "14:14", "--no-progress"], check=True, capture_output=True)
    for workers in ("1", "2"):
        subprocess.run(["metatrack", "eval", "--dataset", str(data), "--trackers", ",".join(trackers),
                        "--results", str(tmp_path / f"w{workers}"), "--workers", workers, "--no-progress"],
                       check=True, capture_output=True)
    compared = 0
    for name in trackers:
        for seq in ("SynVal001", "SynVal002"):
            a, b = tmp_path / "w1" / name / f"{seq}.txt", tmp_path / "w2" / name / f"{seq}.txt"
            assert filecmp.cmp(a, b, shallow=False), f"{name}/{seq}: --workers 1 and 2 differ"
            compared += 1
    assert compared == 2 * len(trackers) and len(trackers) >= 15
