"""Overlays: colours, dashed ground truth, legend, mp4/gif/png; ``metatrack overlay``."""
import os

import cv2
import numpy as np
import pytest

from foundation.errors import UserError
from otb_eval.results import write_result
from otb_eval.testing import patch_sequence, write_otb_sequence
from tracker.cli import main
from tracker.overlay import LOST_COLOR, NAMED_COLORS, colors_for, draw_box, draw_frame, parse_colors, write_frames


def test_family_colours_and_overrides():
    c = colors_for(["metasdnet", "metasdnet-l2f", "metasdnet-dropgrad", "metasdnet-l2f-dropgrad",
                    "mdnet", "kcf"])
    assert c["metasdnet"] == NAMED_COLORS["red"]
    assert c["metasdnet-l2f"] == NAMED_COLORS["green"]
    assert c["metasdnet-dropgrad"] == NAMED_COLORS["blue"]
    assert c["metasdnet-l2f-dropgrad"] == NAMED_COLORS["cyan"]
    assert c["mdnet"] != c["kcf"] and c["mdnet"] not in (NAMED_COLORS["red"], NAMED_COLORS["green"])
    sdnet = ["metasdnet", "metasdnet-l2f", "metasdnet-dropgrad", "metasdnet-l2f-dropgrad"]
    crest = [n.replace("metasdnet", "metacrest") for n in sdnet]
    both = colors_for(sdnet + crest)
    assert len(set(both.values())) == 8                       # the two families are told apart
    for a, b in zip(sdnet, crest):                            # a shade of the same hue
        assert int(np.argmax(both[b])) == int(np.argmax(both[a])), (a, b, both[a], both[b])
    o = colors_for(["metasdnet", "x"], parse_colors("metasdnet=#00ff00,x=yellow"))
    assert o == {"metasdnet": (0, 255, 0), "x": NAMED_COLORS["yellow"]}
    assert parse_colors("a=1,2,3;b=red") == {"a": (1, 2, 3), "b": NAMED_COLORS["red"]}
    with pytest.raises(UserError, match="unknown colour"):
        parse_colors("a=blurple")
    with pytest.raises(UserError, match="name=colour"):
        parse_colors("red")


def test_dashed_box_has_gaps_and_solid_has_none():
    solid = np.zeros((100, 100, 3), np.uint8)
    dashed = solid.copy()
    draw_box(solid, [10, 10, 80, 60], (255, 255, 255), 1)
    draw_box(dashed, [10, 10, 80, 60], (255, 255, 255), 1, dashed=True)
    top_solid = (solid[10, 12:88] > 0).any(axis=1).mean()
    top_dashed = (dashed[10, 12:88] > 0).any(axis=1).mean()
    assert top_solid == 1.0 and 0.3 < top_dashed < 0.8
    # colour is RGB in, BGR on the frame
    red = np.zeros((50, 50, 3), np.uint8)
    draw_box(red, [5, 5, 30, 30], (255, 0, 0), 1)
    assert red[5, 20, 2] > 200 and red[5, 20, 0] < 50


def test_draw_frame_legend_and_number_change_pixels():
    img = np.full((120, 160, 3), 90, np.uint8)
    plain = draw_frame(img, {"a": [20, 20, 40, 30]}, {"a": (255, 0, 0)}, legend=False)
    full = draw_frame(img, {"a": [20, 20, 40, 30]}, {"a": (255, 0, 0)}, gt=[60, 50, 40, 30], frame=7)
    assert (img == 90).all()                                      # input untouched
    assert (full[-30:, :60] != plain[-30:, :60]).any()            # legend bottom left
    assert (full[:20, :40] != plain[:20, :40]).any()              # frame number top left


def test_video_gif_and_sheet(tmp_path):
    frames, _ = patch_sequence(n=5)
    assert write_frames(str(tmp_path / "a.mp4"), frames) == 5
    cap = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()
    write_frames(str(tmp_path / "a.gif"), frames)
    from PIL import Image

    with Image.open(tmp_path / "a.gif") as g:
        assert g.n_frames == 5
    with pytest.raises(UserError):
        write_frames(str(tmp_path / "a.mov"), frames)


@pytest.fixture()
def results(tmp_path):
    frames, gt = patch_sequence(n=8, seed=1)
    write_otb_sequence(str(tmp_path / "data"), "Patch", frames, gt)
    res = str(tmp_path / "results")
    for k, name in enumerate(["metasdnet", "metasdnet-l2f"]):
        write_result(res, name, "Patch", gt + k * 3, np.full(8, 0.01))
    return tmp_path


@pytest.mark.parametrize("ext", [".mp4", ".gif", ".png"])
def test_overlay_command(results, ext):
    out = str(results / f"ov{ext}")
    args = ["overlay", "--dataset", str(results / "data"), "--sequence", "patch", "--results",
            str(results / "results"), "--trackers", "metasdnet,metasdnet-l2f", "--out", out,
            "--colors", "metasdnet-l2f=orange"]
    if ext == ".png":
        args += ["--frames", "1,4,8"]
    assert main(args) == 0
    assert os.path.getsize(out) > 0
    if ext == ".png":
        sheet = cv2.imread(out)
        assert sheet.shape[1] == 3 * 360 + 4 * 8        # 160-px frames upscaled to 360-px tiles
        # the baseline's red is on the sheet (BGR (25, 25, 230))
        assert ((sheet[:, :, 2] > 200) & (sheet[:, :, 0] < 60) & (sheet[:, :, 1] < 60)).any()


def _red(img):
    return (img[:, :, 2] > 200) & (img[:, :, 0] < 60) & (img[:, :, 1] < 60)


def _lost_grey(img):
    return np.all(img == LOST_COLOR[::-1], axis=2)


def test_a_lost_tracker_is_drawn_dashed_grey():
    img = np.zeros((120, 160, 3), np.uint8)
    box, colors = [30, 30, 60, 50], {"a": NAMED_COLORS["red"]}
    confident = draw_frame(img, {"a": box}, colors, legend=False)
    lost = draw_frame(img, {"a": box}, colors, legend=False, lost=["a"])
    assert _red(confident).any() and not _lost_grey(confident).any()
    assert _lost_grey(lost).any() and not _red(lost).any()
    assert _lost_grey(lost).sum() < 0.8 * _red(confident).sum()     # dashed: gaps along the edges
    scored = draw_frame(img, {"a": box}, colors, legend=False, scores={"a": 0.87})
    above = np.s_[:29, 25:100]                                      # the score is written above the box
    assert np.any(scored[above] != confident[above]) and np.array_equal(scored[31:], confident[31:])
    assert np.array_equal(draw_frame(img, {"a": box}, colors, legend=False, scores={"a": None}), confident)


def test_overlay_draws_frames_under_the_lost_threshold_as_lost(results):
    from otb_eval.results import score_path
    from tracker.api import default_lost_threshold

    threshold = default_lost_threshold("metasdnet")
    assert threshold is not None and default_lost_threshold("identity") is None
    args = ["overlay", "--dataset", str(results / "data"), "--sequence", "patch", "--results",
            str(results / "results"), "--trackers", "metasdnet", "--frames", "1,4", "--out"]
    assert main(args + [str(results / "plain.png")]) == 0          # no score file: nothing lost
    path = score_path(str(results / "results"), "metasdnet", "Patch")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scores = [1.0] * 8
    scores[3] = threshold / 2                                    # frame 4 is lost
    with open(path, "w") as f:
        f.write("".join(f"{v}\n" for v in scores))
    assert main(args + [str(results / "lost.png")]) == 0
    plain, lost = cv2.imread(str(results / "plain.png")), cv2.imread(str(results / "lost.png"))
    tile = 360 + 8
    assert np.array_equal(plain[:, :tile], lost[:, :tile])      # frame 1: the confident box
    changed = np.any(plain[:, tile:2 * tile] != lost[:, tile:2 * tile], axis=2)
    assert changed.any() and _lost_grey(lost[:, tile:2 * tile])[changed].mean() > 0.3
    assert not _lost_grey(plain[:, tile:2 * tile]).any()


@pytest.mark.parametrize("extra, match", [
    (["--trackers", "nosuch"], "no results for tracker"),
    (["--frames", "0,99"], "--frames must be numbers in 1..8"),
    (["--out", "x.txt"], "--out must end in"),
])
def test_overlay_bad_input(results, capsys, extra, match):
    args = {"--trackers": "metasdnet", "--out": str(results / "o.png")}
    it = iter(extra)
    for k in it:
        args[k] = next(it)
    argv = ["overlay", "--dataset", str(results / "data"), "--sequence", "Patch",
            "--results", str(results / "results")]
    for k, v in args.items():
        argv += [k, v]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
