"""``metatrack track`` on a video file, a frame folder and an OTB folder; bad input in one line."""
import os

import cv2
import numpy as np
import pytest
import torch

from foundation.devices import resolve_device
from otb_eval.testing import patch_sequence, write_otb_sequence, write_video
from tracker.cli import main
from tracker.sdnet.model import ModelConfig
from tracker.sdnet.weights import save_weights, untrained_weights
from tracker.video import open_frames

N = 6


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("track")
    frames, gt = patch_sequence(n=N, seed=4)
    video = write_video(str(root / "clip.avi"), frames)
    folder = root / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i + 1:03d}.png"), f)
    otb = write_otb_sequence(str(root / "otb"), "Patch", frames, gt)
    weights = str(root / "tiny.pt")
    save_weights(weights, untrained_weights(ModelConfig.tiny()), {"note": "test weights"})
    return {"root": root, "video": video, "folder": str(folder), "otb": otb, "gt": gt,
            "weights": weights}


def _outputs(out, name):
    boxes = np.loadtxt(os.path.join(out, f"{name}.txt"), delimiter=",")
    times = np.loadtxt(os.path.join(out, f"{name}_time.txt"))
    cap = cv2.VideoCapture(os.path.join(out, f"{name}.mp4"))
    n_video = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return boxes, times, n_video


def test_track_video_file(data, tmp_path, capsys):
    box = ",".join(f"{v:g}" for v in data["gt"][0])
    out = str(tmp_path / "out")
    assert main(["track", data["video"], "--box", box, "--weights", data["weights"], "--out", out,
                 "--no-progress"]) == 0
    boxes, times, n_video = _outputs(out, "clip")
    assert boxes.shape == (N, 4) and times.shape == (N,) and n_video == N
    np.testing.assert_allclose(boxes[0], data["gt"][0])            # the given box, as given
    assert "6 frames tracked" in capsys.readouterr().out


def _spy_on_make(monkeypatch) -> dict:
    """The options the CLI passes to tracker.api.make, recorded as it builds the tracker."""
    import tracker.api

    made: dict = {}
    real = tracker.api.make

    def spy(name, **options):
        made.update(options)
        return real(name, **options)

    monkeypatch.setattr(tracker.api, "make", spy)
    return made


def test_track_frame_folder(data, tmp_path, monkeypatch):
    made = _spy_on_make(monkeypatch)
    out = str(tmp_path / "out")
    assert main(["track", data["folder"], "--box", "30 40 28 24", "--weights", data["weights"],
                 "--mode", "fast", "--out", out, "--no-progress"]) == 0
    assert made.pop("device") == resolve_device("auto")      # --device's default
    assert made == {"weights": data["weights"], "mode": "fast"}
    boxes, times, n_video = _outputs(out, "frames")
    assert boxes.shape == (N, 4) and n_video == N


def test_track_otb_folder_defaults_to_its_first_box(data, tmp_path):
    out = str(tmp_path / "out")
    assert main(["track", data["otb"], "--tracker", "mdnet", "--weights", data["weights"],
                 "--out", out, "--no-progress", "--no-video", "--name", "p"]) == 0
    boxes = np.loadtxt(os.path.join(out, "p.txt"), delimiter=",")
    np.testing.assert_allclose(boxes[0], data["gt"][0])
    assert not os.path.exists(os.path.join(out, "p.mp4"))


def test_open_frames_kinds(data):
    assert open_frames(data["video"]).kind == "video"
    assert len(list(open_frames(data["video"]))) == N
    src = open_frames(data["otb"])
    assert src.kind == "otb" and src.gt.shape == (N, 4) and src.name == "Patch"
    assert open_frames(data["folder"]).files[0].endswith("frame_001.png")


@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("empty", "no images"),
    ("notvideo", "cannot open video|cannot read a frame"),
    ("nobox", "no ground truth"),
    ("badbox", "4 numbers"),
    ("outside", "outside"),
    ("tiny", "smaller than 4"),
    ("weights", "does not exist"),
    ("tracker", "unknown tracker"),
    ("mode-for-mil", "takes no --mode"),
    ("option-for-mil", "takes no --weights/--option"),
    ("backbone-for-metasdnet", "takes no --backbone"),
    ("bad-option", "--option needs KEY=VALUE"),
    ("unknown-option", "unknown option"),
    ("mistyped-option", "update_lr must be a finite number"),
])
def test_bad_input_is_one_line(data, tmp_path, capsys, case, match):
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video")
    args = {
        "missing": [str(tmp_path / "nope.mp4"), "--box", "1,1,10,10"],
        "empty": [str(empty), "--box", "1,1,10,10"],
        "notvideo": [str(junk), "--box", "1,1,10,10"],
        "nobox": [data["video"]],
        "badbox": [data["video"], "--box", "1,2,3"],
        "outside": [data["video"], "--box", "900,900,20,20"],
        "tiny": [data["video"], "--box", "10,10,2,20"],
        "weights": [data["video"], "--box", "30,40,28,24", "--weights", str(tmp_path / "w.pt")],
        "tracker": [data["video"], "--box", "30,40,28,24", "--tracker", "nosuch"],
        "mode-for-mil": [data["video"], "--box", "30,40,28,24", "--tracker", "mil", "--mode", "exact"],
        "option-for-mil": [data["video"], "--box", "30,40,28,24", "--tracker", "mil", "--option", "a=1"],
        "backbone-for-metasdnet": [data["video"], "--box", "30,40,28,24", "--backbone", str(junk)],
        "bad-option": [data["video"], "--box", "30,40,28,24", "--option", "update_lr"],
        "unknown-option": [data["video"], "--box", "30,40,28,24", "--option", "nosuch=1"],
        "mistyped-option": [data["video"], "--box", "30,40,28,24", "--tracker", "crest", "--option",
                            "update_lr=abc"],
    }[case]
    weights = [] if case in ("weights", "mode-for-mil", "option-for-mil", "mistyped-option") else ["--weights", data["weights"]]
    code = main(["track", *args, *weights, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.startswith("metatrack track: error")]
    assert len(lines) == 1 and "Traceback" not in err
    import re

    assert re.search(match, lines[0]), lines[0]


def test_grayscale_and_16bit_frames(data, tmp_path):
    frames, gt = patch_sequence(n=3, seed=5)
    folder = tmp_path / "deep"
    folder.mkdir()
    for i, f in enumerate(frames):
        img = (f.mean(2) * 257).astype(np.uint16) if i % 2 else f.astype(np.uint16) * 257
        cv2.imwrite(str(folder / f"{i + 1:04d}.png"), img)
    out = str(tmp_path / "out")
    assert main(["track", str(folder), "--box", "30,40,28,24", "--weights", data["weights"],
                 "--out", out, "--no-progress"]) == 0
    assert np.loadtxt(os.path.join(out, "deep.txt"), delimiter=",").shape == (3, 4)


def test_track_with_metacrest_options(data, tmp_path, monkeypatch):
    """MetaCREST through the CLI: --option values reach the tracker (typed), results are written."""
    made = _spy_on_make(monkeypatch)
    out = str(tmp_path / "out")
    assert main(["track", data["folder"], "--box", "30 40 28 24", "--tracker", "crest",
                 "--option", "init_iters=5", "--option", "update_lr=1e-4", "--option", "subcell=false",
                 "--out", out, "--no-progress", "--no-video"]) == 0
    assert made.pop("device") == resolve_device("auto")
    assert made == {"init_iters": 5, "update_lr": 1e-4, "subcell": False}
    boxes = np.loadtxt(os.path.join(out, "frames.txt"), delimiter=",")
    assert boxes.shape == (N, 4) and np.all(boxes[:, 2:] > 0)
