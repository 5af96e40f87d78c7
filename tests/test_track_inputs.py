"""``metatrack track`` beyond one target in one file: several targets, scores, honest endings,
containers and frame kinds, start frames, the selection window's mapping, no display, cameras."""
import os
import re

import cv2
import numpy as np
import pytest

import tracker
from otb_eval.testing import patch_sequence, write_video
from tracker.cli import main
from tracker.display import display_scale, drag_to_box, has_display
from tracker.multitrack import iter_video
from tracker.sdnet.model import ModelConfig
from tracker.sdnet.weights import save_weights, untrained_weights
from tracker.select import SelectionState

N = 6
BOX_A, BOX_B = "30,40,28,24", "100,20,30,30"


@pytest.fixture(scope="module")
def data(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("inputs")
    frames, gt = patch_sequence(n=N, seed=4)
    weights = str(root / "tiny.pt")
    save_weights(weights, untrained_weights(ModelConfig.tiny()), {"note": "test weights"})
    return {"root": root, "frames": frames, "gt": gt, "video": write_video(str(root / "clip.avi"), frames),
            "weights": weights}


def _rows(path):
    return np.loadtxt(path, delimiter=",", ndmin=2)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("metatrack track: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_several_targets_are_each_tracked_as_alone(data, tmp_path, capsys):
    """Two --box (one more from a --boxes file saved with a BOM): one result file per target,
    each the same bytes as tracking that target on its own; one overlay video."""
    common = ["--weights", data["weights"], "--no-progress"]
    boxes_file = tmp_path / "boxes.txt"
    boxes_file.write_bytes(b"\xef\xbb\xbf" + BOX_B.encode() + b"\n")
    out = tmp_path / "both"
    assert main(["track", data["video"], "--box", BOX_A, "--boxes", str(boxes_file), "--out", str(out), *common]) == 0
    assert "2 targets" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["clip.1.txt", "clip.1_score.txt", "clip.1_time.txt", "clip.2.txt",
                                       "clip.2_score.txt", "clip.2_time.txt", "clip.mp4"]
    for i, box in enumerate((BOX_A, BOX_B), start=1):
        alone = tmp_path / f"alone{i}"
        assert main(["track", data["video"], "--box", box, "--out", str(alone), "--no-video", *common]) == 0
        assert (out / f"clip.{i}.txt").read_bytes() == (alone / "clip.txt").read_bytes()
        assert (out / f"clip.{i}_score.txt").read_bytes() == (alone / "clip_score.txt").read_bytes()
        assert _rows(out / f"clip.{i}.txt").shape == (N, 4)
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == N
    cap.release()


class ScoredTracker(tracker.Tracker):
    """Moves its box one pixel right per frame and reports a score (1/frame), as item 3's
    trackers will; a test double for reading ``score`` duck-typed."""

    def __init__(self, name: str = "scored-test", device=None):
        super().__init__(name, is_deterministic=True)

    def init(self, image, box):
        self._begin(image, box)
        self.box, self.frame, self.score = np.asarray(box, float), 1, None

    def update(self, image):
        self._next(image)
        self.frame += 1
        self.box = self.box + [1, 0, 0, 0]
        self.score = 1.0 / self.frame
        return self.box.copy()


class UnscoredTracker(ScoredTracker):
    """The same motion, but a tracker that cannot tell its confidence (``score`` stays None)."""

    def update(self, image):
        box = super().update(image)
        self.score = None
        return box


def test_python_api_yields_boxes_and_scores_per_frame(data):
    steps = list(iter_video(data["frames"], [[30, 40, 28, 24], [100, 20, 30, 30]], ScoredTracker))
    assert [s.index for s in steps] == list(range(N))
    index, boxes, scores = steps[2]
    assert index == 2 and boxes.shape == (2, 4) and scores == [1 / 3, 1 / 3]
    np.testing.assert_allclose(boxes[1], [102, 20, 30, 30])
    assert steps[0].scores == [None, None]

    seen = []
    result = tracker.track_video(data["video"], [[30, 40, 28, 24]], UnscoredTracker,
                                 on_frame=lambda i, b, s: seen.append(i) or i < 3)
    assert seen == [0, 1, 2, 3] and result.boxes.shape == (1, 4, 4) and not result.has_scores
    assert result.times.shape == (1, 4)


def test_each_step_says_which_targets_are_lost(data):
    class Fading(ScoredTracker):
        lost_threshold = 0.3                                     # 1/frame falls under it from frame 4

    steps = list(iter_video(data["frames"], [[30, 40, 28, 24], [100, 20, 30, 30]], Fading))
    assert [s.lost for s in steps[:5]] == [[False, False]] * 3 + [[True, True]] * 2
    unscored = list(iter_video(data["frames"], [[30, 40, 28, 24]], UnscoredTracker))
    assert all(s.lost == [False] for s in unscored)


def test_track_writes_score_files_when_the_tracker_has_scores(data, tmp_path):
    tracker.register("scored-test", ScoredTracker, "test double", overwrite=True)
    out = tmp_path / "o"
    assert main(["track", data["video"], "--box", BOX_A, "--box", BOX_B, "--tracker", "scored-test",
                 "--out", str(out), "--no-progress", "--no-video"]) == 0
    scores = (out / "clip.2_score.txt").read_text().split()
    assert scores[0] == "nan" and [float(s) for s in scores[1:]] == pytest.approx([1 / f for f in range(2, N + 1)], abs=1e-6)
    assert not (tmp_path / "id").exists()
    tracker.register("unscored-test", UnscoredTracker, "test double", overwrite=True)
    assert main(["track", data["video"], "--box", BOX_A, "--tracker", "unscored-test", "--out", str(tmp_path / "id"),
                 "--no-progress", "--no-video"]) == 0
    assert sorted(os.listdir(tmp_path / "id")) == ["clip.txt", "clip_time.txt"]   # no scores, no file


def test_a_cut_video_warns_with_both_counts(data, tmp_path):
    """Exit 0 with the frames read, and a warning (one ``metatrack track: warning:`` line on the
    command line) naming both counts."""
    frames, _ = patch_sequence(n=40, seed=2)
    path = write_video(str(tmp_path / "cut.avi"), frames)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size * 2 // 5)
    out = tmp_path / "o"
    with pytest.warns(UserWarning) as caught:
        assert main(["track", path, "--box", BOX_A, "--tracker", "identity", "--out", str(out), "--no-progress"]) == 0
    rows = len(_rows(out / "cut.txt"))
    assert 0 < rows < 40
    (message,) = [str(w.message) for w in caught]
    assert re.search(rf"video .*cut.avi ended after {rows} frames but its header announces 40", message)


@pytest.mark.parametrize("ext, fourcc, grey", [(".avi", "MJPG", False), (".mov", "mp4v", False),
                                               (".mkv", "XVID", False), (".webm", "VP80", False),
                                               (".avi", "MJPG", True)])
def test_video_containers_and_grey_video(data, tmp_path, ext, fourcc, grey):
    path = str(tmp_path / f"clip{ext}")
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 10, (160, 120), isColor=not grey)
    assert vw.isOpened()
    for f in data["frames"]:
        vw.write(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if grey else f)
    vw.release()
    out = tmp_path / "o"
    assert main(["track", path, "--box", BOX_A, "--tracker", "mil", "--out", str(out), "--no-progress"]) == 0
    assert _rows(out / "clip.txt").shape == (N, 4)


def test_folders_with_mixed_extensions_and_16bit_grey(data, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, f in enumerate(data["frames"]):
        img = (cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257) if i == 3 else f
        cv2.imwrite(str(folder / f"{i + 1:04d}{('.png', '.jpg', '.bmp')[i % 3]}"), img)
    out = tmp_path / "o"
    assert main(["track", str(folder), "--box", BOX_A, "--tracker", "identity", "--out", str(out),
                 "--no-progress", "--no-video"]) == 0
    assert _rows(out / "mixed.txt").shape == (N, 4)
    cv2.imwrite(str(folder / "0002.png"), data["frames"][1])     # two frames numbered 2
    assert main(["track", str(folder), "--box", BOX_A, "--tracker", "identity", "--out", str(tmp_path / "x"),
                 "--no-progress"]) == 2
    assert "two frames numbered 2" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


def test_start_frame(data, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["track", data["video"], "--start-frame", "3", "--box", BOX_A, "--tracker", "identity",
                 "--out", str(out), "--no-progress", "--no-video"]) == 0
    assert _rows(out / "clip.txt").shape == (N - 2, 4)
    assert main(["track", data["video"], "--start-frame", "99", "--box", BOX_A, "--tracker", "identity",
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "no frame 99" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("display", [None, ":97"])
def test_without_a_display_the_error_names_box(data, tmp_path, capsys, monkeypatch, display):
    """No DISPLAY, or one no X server answers (Qt would abort the process): the one line of old."""
    if display:
        monkeypatch.setenv("DISPLAY", display)
    assert not has_display()
    assert main(["track", data["video"], "--tracker", "identity", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no display" in line and "--box x,y,w,h" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, match", [
    (["--camera", "63"], "camera 63 does not exist"),
    (["--camera", "-1"], "--camera must be an index >= 0"),
    (["{video}", "--camera", "0"], "not both"),
    ([], "give INPUT"),
    (["{video}", "--start-frame", "0"], "--start-frame must be >= 1"),
    (["{video}", "--boxes", "{missing}"], "cannot read"),
    (["{video}", "--box", BOX_A, "--box", "1,2,3"], "4 numbers"),
    (["{video}", "--box", BOX_A, "--box", "900,900,20,20"], "outside"),
])
def test_bad_inputs_are_one_line(data, tmp_path, capsys, args, match):
    args = [a.format(video=data["video"], missing=tmp_path / "none.txt") for a in args]
    extra = [] if "--box" in args else ["--box", BOX_A]
    assert main(["track", *args, *extra, "--tracker", "identity", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert re.search(re.escape(match), _one_error_line(capsys.readouterr().err))
    assert not (tmp_path / "o").exists()


def test_display_scale_enlarges_small_frames_by_whole_factors_and_fits_large_ones():
    assert display_scale(160, 120) == 4.0          # 640 x 480
    assert display_scale(64, 48) == 10.0
    assert display_scale(640, 480) == 1.0
    assert display_scale(600, 100) == 2.0          # 1200 wide fits 1280
    assert display_scale(1000, 200) == 1.0
    assert display_scale(2560, 1440) == pytest.approx(0.5)
    assert display_scale(100, 1000) == pytest.approx(0.9)


def test_a_drag_maps_back_to_the_source_pixels_it_covers():
    # at 4x, screen pixels 120..231 cover source pixels 30..57 (both ends included): 28 wide
    np.testing.assert_allclose(drag_to_box((120, 160), (231, 255), 4.0, (160, 120)), [30, 40, 28, 24])
    np.testing.assert_allclose(drag_to_box((231, 255), (120, 160), 4.0, (160, 120)), [30, 40, 28, 24])
    np.testing.assert_allclose(drag_to_box((600, 460), (700, 600), 4.0, (160, 120)), [150, 115, 10, 5])  # clipped
    np.testing.assert_allclose(drag_to_box((10, 10), (109, 59), 0.5, (400, 300)), [20, 20, 200, 100])


def test_selection_state_keeps_drags_and_undoes():
    s = SelectionState((160, 120), 4.0)
    for (x0, y0), (x1, y1) in (((120, 160), (231, 255)), ((400, 80), (519, 199)), ((5, 5), (7, 7))):
        s.mouse(cv2.EVENT_LBUTTONDOWN, x0, y0)
        s.mouse(cv2.EVENT_MOUSEMOVE, (x0 + x1) // 2, (y0 + y1) // 2)
        s.mouse(cv2.EVENT_LBUTTONUP, x1, y1)
    boxes = s.boxes()                   # the 3 x 3 screen-pixel click is not a box
    assert len(boxes) == 2
    np.testing.assert_allclose(boxes[0], [30, 40, 28, 24])
    np.testing.assert_allclose(boxes[1], [100, 20, 30, 30])
    s.mouse(cv2.EVENT_LBUTTONDOWN, 900, 900)           # clamped to the frame's last pixel
    assert s.drag == ((639, 479), (639, 479))
    s.undo()
    s.undo()
    assert s.drag is None and len(s.boxes()) == 1
    assert s.draw(np.zeros((480, 640, 3), np.uint8)).shape == (480 + 28, 640, 3)
