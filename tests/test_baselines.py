"""OpenCV baselines behind the got10k interface."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tracker
from foundation.errors import UserError
from tracker import baselines

NAMES = ["kcf", "csrt", "mil", "mosse", "medianflow", "tld"]


def test_all_registered_and_available_with_the_contrib_dependency():
    assert set(NAMES) <= set(tracker.names())
    # setup.py depends on opencv-contrib-python, which has all six
    assert baselines.available_baselines() == NAMES
    assert baselines.installed_opencv_wheels() == ["opencv-contrib-python"]
    for name in NAMES:
        t = tracker.make(name)
        assert isinstance(t, tracker.Tracker) and t.name == name


@pytest.mark.parametrize("name", ["csrt", "kcf", "medianflow", "mosse", "tld"])
def test_contrib_trackers_follow_an_easy_target(name):
    from foundation.boxes import iou
    from otb_eval import synthetic

    plan = synthetic.plan(1, "val", 1, frames=(10, 10), attributes=["IV"])
    frames, gt, _, _ = synthetic.render(plan)
    t = tracker.make(name)
    t.init(frames[0].image, gt[0])
    boxes = np.array([t.update(fr.image) for fr in frames[1:]])
    assert boxes.shape == (9, 4) and np.all(np.isfinite(boxes))
    assert iou(boxes, gt[1:]).mean() > 0.3, name


def test_importing_tracker_does_not_import_cv2():
    code = "import sys, tracker; tracker.names(); assert 'cv2' not in sys.modules, 'cv2 imported'"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_mil_tracks_a_synthetic_sequence(tmp_path):
    from otb_eval import synthetic

    names = synthetic.generate(str(tmp_path), 1, seed=0, split="test", frames=(10, 10), progress=False)
    folder = tmp_path / names[0]
    gt = np.loadtxt(folder / "groundtruth_rect.txt", delimiter=",")
    files = [str(folder / "img" / f) for f in sorted(os.listdir(folder / "img"))]
    boxes, times = tracker.make("mil").track(files, gt[0])
    assert boxes.shape == (10, 4) and np.all(np.isfinite(boxes)) and np.all(boxes[:, 2:] > 0)
    assert len(times) == 10


@pytest.mark.parametrize("name", ["mil", "tld"])
def test_randomised_baselines_repeat_whatever_ran_before(name, tmp_path):
    """MIL and TLD seed OpenCV's RNG and rand() at init, so a run repeats after other draws."""
    import ctypes
    import ctypes.util

    import cv2

    from otb_eval import synthetic

    names = synthetic.generate(str(tmp_path), 1, seed=3, split="test", frames=(12, 12), progress=False)
    folder = tmp_path / names[0]
    gt = np.loadtxt(folder / "groundtruth_rect.txt", delimiter=",")
    files = [str(folder / "img" / f) for f in sorted(os.listdir(folder / "img"))]
    first, _ = tracker.make(name).track(files, gt[0])
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    for _ in range(1000):   # both generators moved on, as other runs would move them
        libc.rand()
    cv2.randu(np.zeros((64, 64), np.uint8), 0, 255)
    again, _ = tracker.make(name).track(files, gt[0])
    assert np.array_equal(first, again)
    assert tracker.make(name).is_deterministic and not tracker.make(name, seed=None).is_deterministic


def test_mil_follows_an_easy_target():
    from foundation.boxes import iou
    from otb_eval import synthetic

    plan = synthetic.plan(1, "val", 1, frames=(10, 10), attributes=["IV", "MB"])
    frames, gt, _, _ = synthetic.render(plan)
    t = tracker.make("mil")
    t.init(frames[0].image, gt[0])
    boxes = np.array([t.update(fr.image) for fr in frames[1:]])
    assert boxes.dtype == float and boxes.shape == (9, 4)
    assert iou(boxes, gt[1:]).mean() > 0.4


class _FakeCV2Tracker:
    """Records what the wrapper hands OpenCV and answers from a script."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.init_args = None
        self.frames = []

    def init(self, image, box):
        self.init_args = (image, box)

    def update(self, image):
        self.frames.append(image)
        return self.answers.pop(0)


def test_wrapper_converts_images_boxes_and_keeps_last_box_on_failure(monkeypatch):
    from PIL import Image

    fake = _FakeCV2Tracker([(True, (12, 22, 30, 40)), (False, (0, 0, 0, 0)),
                            (True, (float("nan"), 1, 2, 3)), (True, (13.5, 23, 31, 41))])
    monkeypatch.setattr(baselines, "_constructor", lambda class_name, cv2_module=None: lambda: fake)
    t = tracker.make("kcf")
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50  # R, G, B
    t.init(Image.fromarray(rgb), (10.4, 20.6, 30.3, 15.5))
    image, box = fake.init_args
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (50, 100, 200)  # BGR
    assert box == (10, 21, 31, 15) and all(type(v) is int for v in box)
    out = [t.update(Image.fromarray(rgb)) for _ in range(4)]
    assert all(isinstance(b, np.ndarray) and b.dtype == float for b in out)
    assert out[0].tolist() == [12, 22, 30, 40]
    assert out[1].tolist() == [12, 22, 30, 40]  # failure: last box kept
    assert out[2].tolist() == [12, 22, 30, 40]  # non-finite answer: last box kept
    assert out[3].tolist() == [13.5, 23, 31, 41]
    assert tuple(fake.frames[0][5, 5]) == (50, 100, 200)


def test_wrapper_keeps_the_init_box_inside_the_image(monkeypatch):
    fake = _FakeCV2Tracker([])
    monkeypatch.setattr(baselines, "_constructor", lambda class_name, cv2_module=None: lambda: fake)
    t = tracker.make("csrt")
    t.init(np.zeros((50, 40, 3), np.uint8), (35.2, -4.0, 20, 10))
    x, y, w, h = fake.init_args[1]
    assert x >= 0 and y >= 0 and w >= 1 and h >= 1 and x + w <= 40 and y + h <= 50


def test_tiny_boxes_are_tracked_grown_and_reported_at_their_size(monkeypatch):
    fake = _FakeCV2Tracker([(True, (20, 30, 8, 8))])
    monkeypatch.setattr(baselines, "_constructor", lambda class_name, cv2_module=None: lambda: fake)
    t = tracker.make("mil")
    t.init(np.zeros((60, 80, 3), np.uint8), (50, 40, 2, 3))
    x, y, w, h = fake.init_args[1]
    assert w >= baselines.MIN_SIDE and h >= baselines.MIN_SIDE
    assert abs((x + w / 2) - 51) <= 0.5 and abs((y + h / 2) - 41.5) <= 0.5  # same centre
    out = t.update(np.zeros((60, 80, 3), np.uint8))
    assert out.tolist() == [23, 32.5, 2, 3]  # OpenCV's centre (24, 34), our size


def test_a_tracker_that_cannot_start_keeps_the_first_box(monkeypatch):
    class Refuses(_FakeCV2Tracker):
        def init(self, image, box):
            raise RuntimeError("assertion failed: !posSamples.empty()")

    fake = Refuses([(True, (1, 2, 3, 4))])
    monkeypatch.setattr(baselines, "_constructor", lambda class_name, cv2_module=None: lambda: fake)
    t = tracker.make("mil")
    with pytest.warns(RuntimeWarning, match="could not start"):
        t.init(np.zeros((40, 40, 3), np.uint8), (0, 0, 40, 40))
    assert t.update(np.zeros((40, 40, 3), np.uint8)).tolist() == [0, 0, 40, 40]
    assert fake.frames == []


def test_real_mil_survives_boxes_opencv_cannot_take():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
    t = tracker.make("mil")
    t.init(image, (30, 30, 3, 3))  # OpenCV 5's MIL alone never returns on a 4 x 4 box
    out = t.update(image)
    assert out[2:].tolist() == [3, 3] and np.all(np.isfinite(out))
    with pytest.warns(RuntimeWarning):
        t.init(image, (0, 0, 120, 90))  # MIL alone asserts on a box filling the image
    assert t.update(image).tolist() == [0, 0, 120, 90]


def test_missing_contrib_tracker_names_the_package(monkeypatch):
    monkeypatch.setattr(baselines, "_constructor", lambda class_name, cv2_module=None:
                        None if class_name != "TrackerMIL" else object)
    monkeypatch.setattr(baselines, "installed_opencv_wheels", lambda: ["opencv-python"])
    with pytest.raises(UserError, match="opencv-contrib-python") as err:
        tracker.make("kcf")
    assert "\n" not in str(err.value) and "kcf" in str(err.value)
    assert "fix: pip uninstall -y opencv-python && pip install opencv-contrib-python" in str(err.value)
    assert baselines.available_baselines() == ["mil"]


def test_clash_of_two_opencv_wheels_is_fixed_by_removing_both():
    fix = baselines.contrib_fix(["opencv-contrib-python", "opencv-python-headless"])
    assert fix == ("pip uninstall -y opencv-contrib-python opencv-python-headless "
                   "&& pip install opencv-contrib-python")
    assert baselines.contrib_fix([]) == "pip install opencv-contrib-python"


def test_constructor_lookup_finds_modern_and_legacy_factories():
    class Legacy:
        @staticmethod
        def TrackerMOSSE_create():
            return "mosse"

    class Modern:
        legacy = Legacy

        class TrackerKCF:
            @staticmethod
            def create():
                return "kcf"

        @staticmethod
        def TrackerMIL_create():
            return "mil"

    assert baselines._constructor("TrackerMIL", Modern)() == "mil"
    assert baselines._constructor("TrackerKCF", Modern)() == "kcf"
    assert baselines._constructor("TrackerMOSSE", Modern)() == "mosse"
    assert baselines._constructor("TrackerTLD", Modern) is None
