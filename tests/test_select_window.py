"""The selection window and the live view, for real: ``metatrack track`` runs under a virtual X
display (Xvfb) that the test starts, and xdotool drags boxes and presses keys in its windows.

Needs the ``xvfb`` and ``xdotool`` packages (``.ci/run`` installs them with apt-get); without them
these tests fail with the command that installs them: they are not hardware, so they never skip.
"""
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from otb_eval.testing import patch_sequence, write_video
from tracker.display import display_scale
from tracker.select import WINDOW
from tracker.view import WINDOW as LIVE_WINDOW

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE = display_scale(160, 120)          # 4: the 160 x 120 clip is shown at 640 x 480


@pytest.fixture(scope="module")
def xvfb():
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed: apt-get install -y xvfb xdotool "
                    "(.ci/run does this before the tests)")
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    assert number, "Xvfb did not start"
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("gui")
    frames, _ = patch_sequence(n=6, seed=4)
    long_frames, _ = patch_sequence(n=30, seed=5)
    return {"short": write_video(str(root / "clip.avi"), frames),
            "long": write_video(str(root / "long.avi"), long_frames * 100)}


def _metatrack(display, *args):
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.Popen([sys.executable, "-c", "import sys; from tracker.cli import main; sys.exit(main())",
                             "track", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _xdo(display, *args) -> str:
    return subprocess.run(["xdotool", *args], env=dict(os.environ, DISPLAY=display), check=True,
                          capture_output=True, text=True, timeout=60).stdout.strip()


def _window(display, title, proc) -> str:
    """The X window titled ``title``, waited for while ``proc`` runs."""
    deadline = time.time() + 90
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        found = subprocess.run(["xdotool", "search", "--name", f"^{re.escape(title)}$"], env=dict(os.environ, DISPLAY=display),
                               capture_output=True, text=True).stdout.split()
        if found:
            time.sleep(0.5)           # let it draw its first frame
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no window {title!r}")


def _drag(display, win, box):
    """Drag over the screen pixels that show source box ``(x, y, w, h)``."""
    x0, y0 = int(box[0] * SCALE), int(box[1] * SCALE)
    x1, y1 = int((box[0] + box[2]) * SCALE) - 1, int((box[1] + box[3]) * SCALE) - 1
    _xdo(display, "mousemove", "--window", win, str(x0), str(y0), "mousedown", "1",
         "mousemove", "--window", win, str((x0 + x1) // 2), str((y0 + y1) // 2),
         "mousemove", "--window", win, str(x1), str(y1), "mouseup", "1")
    time.sleep(0.2)


def _key(display, win, key):
    _xdo(display, "windowfocus", "--sync", win, "key", key)


def test_draw_a_box_and_track(xvfb, clip, tmp_path):
    out = tmp_path / "o"
    p = _metatrack(xvfb, clip["short"], "--tracker", "identity", "--out", str(out), "--no-progress")
    win = _window(xvfb, WINDOW, p)
    _drag(xvfb, win, (30, 40, 28, 24))
    _key(xvfb, win, "Return")
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    boxes = np.loadtxt(out / "clip.txt", delimiter=",")
    assert boxes.shape == (6, 4)
    np.testing.assert_allclose(boxes[0], [30, 40, 28, 24])     # back in source pixels, exactly


def test_several_boxes_with_undo_then_space(xvfb, clip, tmp_path):
    out = tmp_path / "o"
    p = _metatrack(xvfb, clip["short"], "--tracker", "identity", "--out", str(out), "--no-progress", "--no-video")
    win = _window(xvfb, WINDOW, p)
    for box in ((30, 40, 28, 24), (100, 20, 30, 30), (10, 80, 20, 20)):
        _drag(xvfb, win, box)
    _key(xvfb, win, "BackSpace")                                # the third box goes
    _key(xvfb, win, "space")
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert sorted(os.listdir(out)) == ["clip.1.txt", "clip.1_score.txt", "clip.1_time.txt", "clip.2.txt",
                                       "clip.2_score.txt", "clip.2_time.txt"]   # identity's score: 1
    np.testing.assert_allclose(np.loadtxt(out / "clip.1.txt", delimiter=",")[0], [30, 40, 28, 24])
    np.testing.assert_allclose(np.loadtxt(out / "clip.2.txt", delimiter=",")[0], [100, 20, 30, 30])


@pytest.mark.parametrize("key", ["Escape", "c"])
def test_cancel_writes_nothing(xvfb, clip, tmp_path, key):
    out = tmp_path / "o"
    p = _metatrack(xvfb, clip["short"], "--tracker", "identity", "--out", str(out), "--no-progress")
    win = _window(xvfb, WINDOW, p)
    _drag(xvfb, win, (30, 40, 28, 24))
    _key(xvfb, win, key)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1
    assert stderr.strip().splitlines() == ["metatrack track: box selection cancelled; nothing tracked, nothing written"]
    assert not out.exists()


def test_live_view_q_stops_and_keeps_what_was_tracked(xvfb, clip, tmp_path):
    out = tmp_path / "o"
    p = _metatrack(xvfb, clip["long"], "--box", "30,40,28,24", "--tracker", "identity", "--show",
                   "--out", str(out), "--no-progress")
    win = _window(xvfb, LIVE_WINDOW, p)
    _key(xvfb, win, "q")
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert stdout.startswith("stopped (q); ")
    n = len(np.loadtxt(out / "long.txt", delimiter=","))
    assert 1 <= n < 3000
