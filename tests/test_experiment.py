import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from otb_eval.datasets import OTBDataset
from otb_eval.experiment import run_ope
from otb_eval.testing import make_sequence
from tracker.api import Tracker, factory, register


class DriftTracker(Tracker):
    """Deterministic and image-dependent, so results differ per sequence and frame."""

    def __init__(self, name="drift", delay=0.0):
        super().__init__(name)
        self.delay = delay

    def init(self, image, box):
        self.box = np.asarray(box, float)

    def update(self, image):
        time.sleep(self.delay)
        self.box = self.box + [float(np.asarray(image).mean()) % 3 - 1, 0.5, 0, 0]
        return self.box


register("test-drift", DriftTracker, overwrite=True)

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_experiment import DriftTracker
    from tracker.api import factory, register
    from otb_eval.datasets import OTBDataset
    from otb_eval.experiment import run_ope
    register("test-drift", DriftTracker, overwrite=True, delay=0.05)
    run_ope(factory("test-drift"), OTBDataset({root!r}), {results!r}, progress=False)
""")


@pytest.fixture()
def small_tree(tmp_path):
    root = tmp_path / "data"
    for i in range(4):
        make_sequence(str(root), f"Seq{i}", 12, seed=i, ext=".png" if i % 2 else ".jpg")
    return str(root)


def _files(folder):
    out = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), folder)
            out[rel] = open(os.path.join(dirpath, n), "rb").read()
    return out


def test_killed_run_resumes_to_the_same_files(small_tree, tmp_path):
    full = str(tmp_path / "full")
    run_ope(factory("test-drift"), OTBDataset(small_tree), full, progress=False)

    resumed = str(tmp_path / "resumed")
    script = SCRIPT.format(tests=os.path.dirname(__file__), root=small_tree, results=resumed)
    proc = subprocess.Popen([sys.executable, "-c", script])
    first = os.path.join(resumed, "test-drift", "Seq0.txt")
    deadline = time.time() + 60
    while not os.path.exists(first) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = sorted(f for f in os.listdir(os.path.join(resumed, "test-drift")) if f.endswith(".txt"))
    assert 1 <= len(done_before) < 4, "the run was not interrupted midway"

    summary = run_ope(factory("test-drift"), OTBDataset(small_tree), resumed, progress=False)
    assert sorted(summary.skipped) == [f[:-4] for f in done_before]
    a, b = _files(full), _files(resumed)
    assert sorted(a) == sorted(b)
    for rel in a:
        if "times" in rel:
            assert len(a[rel].split()) == len(b[rel].split()) == 12
        else:
            assert a[rel] == b[rel], rel


def test_workers_give_the_same_boxes(small_tree, tmp_path):
    run_ope(factory("test-drift"), OTBDataset(small_tree), str(tmp_path / "one"), progress=False)
    summary = run_ope(factory("test-drift"), OTBDataset(small_tree), str(tmp_path / "two"), workers=2,
                      progress=False)
    assert sorted(summary.tracked) == ["Seq0", "Seq1", "Seq2", "Seq3"]
    assert summary.frames == 48
    for i in range(4):
        a = open(tmp_path / "one" / "test-drift" / f"Seq{i}.txt").read()
        assert a == open(tmp_path / "two" / "test-drift" / f"Seq{i}.txt").read()


class ThreadsTracker(Tracker):
    """Reports torch's thread count during tracking as its box width (what float order depends on)."""

    def __init__(self, name="threads"):
        super().__init__(name)

    def init(self, image, box):
        import torch

        self.box = np.asarray(box, float)
        self.box[2] = torch.get_num_threads()

    def update(self, image):
        return self.init(image, self.box) or self.box


register("test-threads", ThreadsTracker, overwrite=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_run_tracks_on_the_fixed_thread_count(small_tree, tmp_path, workers):
    import torch

    from otb_eval.experiment import RUN_THREADS

    before = torch.get_num_threads()
    torch.set_num_threads(RUN_THREADS + 1)   # a process with more threads than a run uses
    try:
        run_ope(factory("test-threads"), OTBDataset(small_tree), str(tmp_path), workers=workers, progress=False)
        assert torch.get_num_threads() == RUN_THREADS + 1   # restored after the runs
    finally:
        torch.set_num_threads(before)
    for i in range(4):
        widths = np.loadtxt(tmp_path / "test-threads" / f"Seq{i}.txt", delimiter=",")[1:, 2]   # row 1: given box
        assert np.all(widths == RUN_THREADS), (workers, widths)


def test_unreadable_image_keeps_finished_sequences(small_tree, tmp_path):
    (tmp_path / "data" / "Seq2" / "img" / "0005.jpg").write_bytes(b"not a jpeg")
    from foundation.errors import UserError

    results = str(tmp_path / "r")
    with pytest.raises(UserError, match=r"cannot read image .*Seq2.*0005\.jpg"):
        run_ope(factory("test-drift"), OTBDataset(small_tree), results, progress=False)
    kept = sorted(os.listdir(os.path.join(results, "test-drift")))
    assert "Seq0.txt" in kept and "Seq1.txt" in kept and "Seq2.txt" not in kept
