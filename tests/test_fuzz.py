"""Bad input and faults, over every command and the Python API.

Each case runs a command in-process on a shared workspace of small generated data (corrupt,
truncated, empty, mixed-size, grey / RGBA / 16-bit frames; malformed, short, long, NaN, negative
and empty ground truth; garbage and short result files) and asserts:

- the exit code (2 for bad input, 0 where a documented correction applies);
- for an error, ONE line on stderr naming the problem, and no traceback or library chatter
  (captured at the file-descriptor level, so libjpeg's or ffmpeg's own prints count);
- that the outputs of earlier runs (``keep/``) are byte-identical afterwards, and that a failed
  run leaves no new file or folder where it was told to write.

The kill tests at the end send a real SIGKILL to ``eval``, ``meta-train`` and ``metalearn`` and
check that the resumed run's outputs equal an uninterrupted run's.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest

from foundation.errors import UserError
from otb_eval.testing import patch_sequence, write_otb_sequence

SIZE = (64, 48)
N = 6


# ------------------------------------------------------------------ the workspace
def _seq(root, name, frames=None, gt=None, ext=".png"):
    f, g = patch_sequence(n=N, size=SIZE, box=(20, 14, 16, 14), amplitude=6, seed=len(name))
    return write_otb_sequence(str(root), name, f if frames is None else frames, g if gt is None else gt, ext)


def _gt(folder, text):
    with open(os.path.join(folder, "groundtruth_rect.txt"), "w") as f:
        f.write(text)


def _frame(folder, i):
    return os.path.join(folder, "img", f"{i:04d}.png")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Everything the cases read, and the earlier outputs (``keep/``) they must not touch."""
    from tracker.cli import main

    root = tmp_path_factory.mktemp("fuzz")
    W = str(root)
    _seq(root / "data", "Good0")
    _seq(root / "data", "Good1")
    frames, gt = patch_sequence(n=N, size=SIZE, box=(20, 14, 16, 14), amplitude=6, seed=1)
    # frames that break
    d = _seq(root / "corrupt", "Seq")
    open(_frame(d, 3), "wb").write(b"\x89PNG this is not an image")
    d = _seq(root / "truncated", "Seq", ext=".jpg")
    data = open(os.path.join(d, "img", "0003.jpg"), "rb").read()
    open(os.path.join(d, "img", "0003.jpg"), "wb").write(data[: len(data) // 2])
    d = _seq(root / "emptyframe", "Seq")
    open(_frame(d, 3), "wb").close()
    d = _seq(root / "mixed", "Seq")
    cv2.imwrite(_frame(d, 3), cv2.resize(frames[2], (80, 60)))
    # frames that are converted (documented: grey, RGBA and 16-bit become 8-bit BGR)
    _seq(root / "grey", "Seq", frames=[cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames])
    _seq(root / "rgba", "Seq", frames=[cv2.cvtColor(f, cv2.COLOR_BGR2BGRA) for f in frames])
    _seq(root / "deep", "Seq", frames=[f.astype(np.uint16) * 257 for f in frames])
    # ground truth that is wrong
    good = "".join(",".join(f"{v:g}" for v in b) + "\n" for b in gt)
    for name, text in (("gt_malformed", good.replace("20,", "a,", 1)),
                       ("gt_long", good + good),
                       ("gt_short", "".join(good.splitlines(True)[:3])),
                       ("gt_nan", good.splitlines(True)[0] + "nan,nan,nan,nan\n" * (N - 1)),
                       ("gt_nan_first", "nan,nan,nan,nan\n" + "".join(good.splitlines(True)[1:])),
                       ("gt_negative", "20,14,-16,14\n" + "".join(good.splitlines(True)[1:])),
                       ("gt_outside", "500,500,16,14\n" + "".join(good.splitlines(True)[1:])),
                       ("gt_3cols", "20,14,16\n" * N),
                       ("gt_empty", "")):
        _gt(_seq(root / name, "Seq"), text)
    for parent, name in ((root / "noimg", "Seq"), (root / "partnoimg", "NoImg")):
        d = _seq(parent, name)
        shutil.rmtree(os.path.join(d, "img"))
    _seq(root / "partnoimg", "Good")
    os.makedirs(root / "emptydir")
    open(root / "afile", "w").write("a regular file\n")
    open(root / "garbage.pt", "wb").write(b"not a torch file")
    open(root / "notavideo.mp4", "wb").write(b"\x00\x01 garbage " * 50)
    # weights of each family, small
    from tracker.sdnet.model import ModelConfig
    from tracker.sdnet.weights import save_weights, untrained_weights

    save_weights(str(root / "sdnet.pt"), untrained_weights(ModelConfig.tiny()))
    json.dump({"0.weight": 0.5}, open(root / "gamma_bad.json", "w"))
    open(root / "gamma_junk.json", "w").write("{not json")
    # earlier outputs, made by the commands themselves
    keep = root / "keep"
    assert main(["track", f"{W}/data/Good0", "--tracker", "identity", "--out", f"{W}/keep/track",
                 "--no-progress"]) == 0
    assert main(["eval", "--dataset", f"{W}/data", "--trackers", "identity", "--results",
                 f"{W}/keep/results", "--no-progress"]) == 0
    assert main(["report", "--dataset", f"{W}/data", "--results", f"{W}/keep/results", "--out",
                 f"{W}/keep/report", "--no-plots"]) == 0
    assert main(["overlay", "--dataset", f"{W}/data", "--sequence", "Good0", "--results",
                 f"{W}/keep/results", "--trackers", "identity", "--out", f"{W}/keep/sheet.png"]) == 0
    save_weights(str(keep / "w.pt"), untrained_weights(ModelConfig.tiny()))
    # result folders that are wrong
    for name, rows in (("garbage", "x,y\n"), ("short", "1,2,3,4\n"), ("long", "20,14,16,14\n" * (3 * N)),
                       ("nanres", "nan,nan,nan,nan\n" * N), ("negres", "-5,-5,-3,-3\n" * N)):
        os.makedirs(root / "res" / name / "trk")
        for s in ("Good0", "Good1"):
            open(root / "res" / name / "trk" / f"{s}.txt", "w").write(rows)
    return W


def _snapshot(folder):
    out = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, folder)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


# ------------------------------------------------------------------ the cases
T = ["--no-progress"]
TV = ["--no-progress", "--no-video"]
NEW = "{W}/new/out"          # a fresh output path: must not exist after a failed run


def track(*a):
    return ["metatrack", "track", *a]


CASES = [
    # ---- track: frames
    ("track-corrupt-frame", track("{W}/corrupt/Seq", "--tracker", "identity", "--out", "{W}/keep/track",
                                   "--name", "Good0", *T), 2, "not a decodable image"),
    ("track-truncated-jpeg", track("{W}/truncated/Seq", "--tracker", "identity", "--out", "{W}/keep/track",
                                    "--name", "Good0", *T), 2, "truncated"),
    ("track-empty-frame", track("{W}/emptyframe/Seq", "--tracker", "identity", "--out", NEW, *T), 2, "is empty"),
    ("track-mixed-size", track("{W}/mixed/Seq", "--tracker", "identity", "--out", NEW, *T), 2, "frame 3"),
    ("track-mixed-size-mil", track("{W}/mixed/Seq", "--tracker", "mil", "--out", NEW, *TV), 2, "first frame is 64x48"),
    ("track-grey", track("{W}/grey/Seq", "--tracker", "identity", "--out", "{W}/ok/grey", *T), 0, None),
    ("track-rgba", track("{W}/rgba/Seq", "--tracker", "identity", "--out", "{W}/ok/rgba", *T), 0, None),
    ("track-16bit", track("{W}/deep/Seq", "--tracker", "mil", "--out", "{W}/ok/deep", *TV), 0, None),
    ("track-no-input", track("{W}/nothing/here", "--out", NEW, *T), 2, "nothing/here"),
    ("track-empty-folder", track("{W}/emptydir", "--out", NEW, *T), 2, "emptydir"),
    ("track-text-file", track("{W}/afile", "--box", "1,1,5,5", "--out", NEW, *T), 2, "afile"),
    ("track-garbage-video", track("{W}/notavideo.mp4", "--box", "1,1,5,5", "--out", NEW, *T), 2, "notavideo"),
    # ---- track: the first box
    ("box-nan", track("{W}/data/Good0", "--box", "nan,1,8,8", "--tracker", "identity", "--out", NEW, *T), 2, "non-finite"),
    ("box-inf", track("{W}/data/Good0", "--box", "1,inf,8,8", "--tracker", "identity", "--out", NEW, *T), 2, "non-finite"),
    ("box-three", track("{W}/data/Good0", "--box", "1,2,3", "--out", NEW, *T), 2, "4 numbers"),
    ("box-five", track("{W}/data/Good0", "--box", "1,2,3,4,5", "--out", NEW, *T), 2, "4 numbers"),
    ("box-words", track("{W}/data/Good0", "--box", "a,b,c,d", "--out", NEW, *T), 2, "4 numbers"),
    ("box-empty", track("{W}/data/Good0", "--box", "", "--out", NEW, *T), 2, "4 numbers"),
    ("box-zero-area", track("{W}/data/Good0", "--box", "1,2,0,5", "--tracker", "identity", "--out", NEW, *T), 2, "no area"),
    ("box-negative", track("{W}/data/Good0", "--box", "10,10,-5,5", "--tracker", "mil", "--out", NEW, *T), 2, "no area"),
    ("box-outside", track("{W}/data/Good0", "--box", "500,500,10,10", "--tracker", "identity", "--out", NEW, *T), 2, "outside"),
    ("box-outside-metasdnet", track("{W}/data/Good0", "--box", "500,500,10,10", "--out", NEW, *TV), 2, "outside"),
    ("box-tiny-metacrest", track("{W}/data/Good0", "--box", "10,10,2,2", "--tracker", "metacrest", "--out", NEW, *TV),
     2, "smaller than 4"),
    ("box-gt-nan-first", track("{W}/gt_nan_first/Seq", "--tracker", "identity", "--out", NEW, *T), 2, "non-finite"),
    ("box-partly-outside", track("{W}/data/Good0", "--box=-4,-4,20,20", "--tracker", "identity",
                                 "--out", "{W}/ok/partly", *T), 0, None),
    # ---- track: trackers, weights, options
    ("track-unknown-tracker", track("{W}/data/Good0", "--tracker", "nope", "--out", NEW, *T), 2, "unknown tracker"),
    ("track-threads-0", track("{W}/data/Good0", "--threads", "0", "--out", NEW, *T), 2, "--threads"),
    ("track-threads-word", track("{W}/data/Good0", "--threads", "x", "--out", NEW, *T), 2, "invalid int"),
    ("track-weights-missing", track("{W}/data/Good0", "--weights", "{W}/none.pt", "--out", NEW, *T), 2, "does not exist"),
    ("track-weights-garbage", track("{W}/data/Good0", "--weights", "{W}/garbage.pt", "--out", NEW, *T), 2, "garbage.pt"),
    ("track-weights-other-family", track("{W}/data/Good0", "--tracker", "metacrest", "--weights", "{W}/sdnet.pt",
                                          "--out", NEW, *T), 2, "not MetaCREST's"),
    ("track-backbone-sdnet", track("{W}/data/Good0", "--backbone", "{W}/sdnet.pt", "--out", NEW, *T), 2, "--backbone"),
    ("track-mode-crest", track("{W}/data/Good0", "--tracker", "metacrest", "--mode", "exact", "--out", NEW, *T),
     2, "--mode"),
    ("track-mode-bogus", track("{W}/data/Good0", "--mode", "slow", "--out", NEW, *T), 2, "invalid choice"),
    ("track-option-identity", track("{W}/data/Good0", "--tracker", "identity", "--option", "a=1", "--out", NEW, *T),
     2, "takes no"),
    ("track-option-no-equals", track("{W}/data/Good0", "--option", "lr_update", "--out", NEW, *T), 2, "KEY=VALUE"),
    ("track-option-unknown-sdnet", track("{W}/data/Good0", "--option", "update_lr=1e-4", "--out", NEW, *T),
     2, "unknown option"),
    ("track-option-help-example-sdnet", track("{W}/data/Good0", "--option", "lr_update=1e-4", "--out",
                                              "{W}/ok/example", *TV), 0, None),   # the --help example works
    ("track-option-type-sdnet", track("{W}/data/Good0", "--option", "lr_update=abc", "--out", NEW, *T),
     2, "lr_update must be a finite number"),
    ("track-option-nan-sdnet", track("{W}/data/Good0", "--option", "lr_update=nan", "--out", NEW, *T),
     2, "lr_update must be a finite number"),
    ("track-option-bool-sdnet", track("{W}/data/Good0", "--option", "bbreg=maybe", "--out", NEW, *T),
     2, "bbreg must be true or false"),
    ("track-option-sampler-sdnet", track("{W}/data/Good0", "--option", "init_pos_sampler=1,2", "--out", NEW, *T),
     2, "init_pos_sampler must be"),
    ("track-option-range-sdnet", track("{W}/data/Good0", "--option", "top_k=0", "--out", NEW, *T), 2, "top_k"),
    ("track-option-mode-sdnet", track("{W}/data/Good0", "--option", "mode=slow", "--out", NEW, *T), 2, "mode must be"),
    ("track-option-type-mdnet", track("{W}/data/Good0", "--tracker", "mdnet", "--option", "finetune_iters=abc",
                                       "--out", NEW, *T), 2, "finetune_iters must be an integer"),
    ("track-option-float-for-int-mdnet", track("{W}/data/Good0", "--tracker", "mdnet", "--option",
                                                "finetune_iters=2.5", "--out", NEW, *T), 2, "must be an integer"),
    ("track-option-type-crest", track("{W}/data/Good0", "--tracker", "metacrest", "--option", "update_lr=abc",
                                       "--out", NEW, *T), 2, "update_lr must be a finite number"),
    ("track-option-range-crest", track("{W}/data/Good0", "--tracker", "metacrest", "--option", "scale_smoothing=2",
                                        "--out", NEW, *T), 2, "scale_smoothing"),
    ("track-option-scales-crest", track("{W}/data/Good0", "--tracker", "crest", "--option", "scales=1,x",
                                         "--out", NEW, *T), 2, "scales must be numbers"),
    ("track-option-negative-crest", track("{W}/data/Good0", "--tracker", "crest", "--option", "init_iters=-1",
                                           "--out", NEW, *T), 2, "init_iters"),
    ("track-option-unknown-crest", track("{W}/data/Good0", "--tracker", "metacrest", "--option", "lr_update=1",
                                          "--out", NEW, *T), 2, "unknown option"),
    # ---- track: where it writes
    ("track-out-under-file", track("{W}/data/Good0", "--tracker", "identity", "--out", "{W}/afile/sub", *T),
     2, "not a folder"),
    ("track-out-is-file", track("{W}/data/Good0", "--tracker", "identity", "--out", "{W}/afile", *T), 2, "not a folder"),
    ("track-out-proc", track("{W}/data/Good0", "--tracker", "identity", "--out", "/proc/metatrack-fuzz", *T),
     2, "cannot write"),
    # ---- eval
    ("eval-no-dataset", ["metatrack", "eval", "--dataset", "{W}/none", "--trackers", "identity", "--results", NEW, *T],
     2, "does not exist"),
    ("eval-dataset-file", ["metatrack", "eval", "--dataset", "{W}/afile", "--trackers", "identity", "--results", NEW,
                           *T], 2, "not a folder"),
    ("eval-empty-dataset", ["metatrack", "eval", "--dataset", "{W}/emptydir", "--trackers", "identity", "--results",
                            NEW, *T], 2, "no OTB-format sequences"),
    ("eval-only-noimg", ["metatrack", "eval", "--dataset", "{W}/noimg", "--trackers", "identity", "--results", NEW,
                         *T], 2, "no OTB-format sequences"),
    ("eval-sequence-noimg", ["metatrack", "eval", "--dataset", "{W}/partnoimg", "--sequences", "NoImg",
                             "--trackers", "identity", "--results", NEW, *T], 2, "no img/ folder"),
    ("eval-some-noimg", ["metatrack", "eval", "--dataset", "{W}/partnoimg", "--trackers", "identity",
                         "--results", "{W}/ok/partnoimg", *T], 0, None),     # the rest runs; a warning names it
    ("eval-gt-malformed", ["metatrack", "eval", "--dataset", "{W}/gt_malformed", "--trackers", "identity",
                           "--results", NEW, *T], 2, "malformed row"),
    ("eval-gt-long", ["metatrack", "eval", "--dataset", "{W}/gt_long", "--trackers", "identity", "--results", NEW,
                      *T], 2, "rows but only"),
    ("eval-gt-3cols", ["metatrack", "eval", "--dataset", "{W}/gt_3cols", "--trackers", "identity", "--results", NEW,
                       *T], 2, "expected 4 values"),
    ("eval-gt-empty", ["metatrack", "eval", "--dataset", "{W}/gt_empty", "--trackers", "identity", "--results", NEW,
                       *T], 2, "Seq"),
    ("eval-gt-nan-first", ["metatrack", "eval", "--dataset", "{W}/gt_nan_first", "--trackers", "identity",
                           "--results", NEW, *T], 2, "non-finite"),
    ("eval-gt-negative", ["metatrack", "eval", "--dataset", "{W}/gt_negative", "--trackers", "mil", "--results",
                          NEW, *T], 2, "no area"),
    ("eval-gt-outside", ["metatrack", "eval", "--dataset", "{W}/gt_outside", "--trackers", "identity", "--results",
                         NEW, *T], 2, "outside"),
    ("eval-gt-short", ["metatrack", "eval", "--dataset", "{W}/gt_short", "--trackers", "identity", "--results",
                       "{W}/ok/gtshort", *T], 0, None),
    ("eval-gt-nan-later", ["metatrack", "eval", "--dataset", "{W}/gt_nan", "--trackers", "identity", "--results",
                           "{W}/ok/gtnan", *T], 0, None),
    ("eval-corrupt-frame", ["metatrack", "eval", "--dataset", "{W}/corrupt", "--trackers", "identity", "--results",
                            "{W}/keep/results", *T], 2, "not a decodable image"),
    ("eval-mixed-size", ["metatrack", "eval", "--dataset", "{W}/mixed", "--trackers", "identity", "--results",
                         "{W}/keep/results", *T], 2, "frame 3"),
    ("eval-mixed-size-workers", ["metatrack", "eval", "--dataset", "{W}/mixed", "--trackers", "identity", "--results",
                                 NEW, "--workers", "2", *T], 2, "frame 3"),
    ("eval-results-under-file", ["metatrack", "eval", "--dataset", "{W}/data", "--trackers", "identity",
                                 "--results", "{W}/afile/r", *T], 2, "not a folder"),
    ("eval-results-proc", ["metatrack", "eval", "--dataset", "{W}/data", "--trackers", "identity", "--results",
                           "/proc/metatrack-fuzz", *T], 2, "cannot write"),
    ("eval-workers-0", ["metatrack", "eval", "--dataset", "{W}/data", "--trackers", "identity", "--results", NEW,
                        "--workers", "0", *T], 2, "--workers"),
    ("eval-unknown-tracker", ["metatrack", "eval", "--dataset", "{W}/data", "--trackers", "identity,nope",
                              "--results", NEW, *T], 2, "unknown tracker"),
    ("eval-incomplete-otb", ["metatrack", "eval", "--dataset", "{W}/data", "--version", "otb2015", "--trackers",
                             "identity", "--results", NEW, *T], 2, "not a complete"),
    ("eval-unknown-sequence", ["metatrack", "eval", "--dataset", "{W}/data", "--sequences", "Nope", "--trackers",
                               "identity", "--results", NEW, *T], 2, "'Nope' is not in"),
    ("eval-bad-protocol", ["metatrack", "eval", "--dataset", "{W}/data", "--protocol", "xyz", "--trackers",
                           "identity", "--results", NEW, *T], 2, "invalid choice"),
    ("eval-empty-trackers", ["metatrack", "eval", "--dataset", "{W}/data", "--trackers", ",", "--results", NEW, *T],
     2, "comma-separated"),
    ("eval-bad-tiger1", ["metatrack", "eval", "--dataset", "{W}/data", "--tiger1", "x", "--trackers", "identity",
                         "--results", NEW, *T], 2, "invalid choice"),
    # ---- report
    ("report-no-results", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/none", "--out", NEW],
     2, "does not exist"),
    ("report-garbage-results", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/res/garbage",
                                "--out", NEW], 2, "malformed row"),
    ("report-short-results", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/res/short",
                              "--out", NEW], 2, "boxes but sequence Good0 has 6 frames"),
    # documented: a result covering more frames than annotated is cut to the annotated ones (David)
    ("report-long-results", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/res/long",
                             "--out", "{W}/ok/longrep", "--no-plots"], 0, None),
    ("report-nan-results", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/res/nanres",
                            "--out", "{W}/ok/nanrep", "--no-plots"], 0, None),
    ("report-negative-results", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/res/negres",
                                 "--out", "{W}/ok/negrep", "--no-plots"], 0, None),
    ("report-unknown-tracker", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/keep/results",
                                "--trackers", "nope", "--out", NEW], 2, "nope"),
    ("report-empty-results", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/emptydir",
                              "--out", NEW], 2, "emptydir"),
    ("report-out-under-file", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/keep/results",
                               "--out", "{W}/afile/rep"], 2, "not a folder"),
    ("report-out-proc", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/keep/results",
                         "--out", "/proc/metatrack-fuzz"], 2, "cannot write"),
    ("report-bad-policy", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/keep/results",
                           "--policy", "x", "--out", NEW], 2, "invalid choice"),
    ("report-bad-protocol", ["metatrack", "report", "--dataset", "{W}/data", "--results", "{W}/keep/results",
                             "--protocols", "xyz", "--out", NEW], 2, "xyz"),
    ("report-no-dataset", ["metatrack", "report", "--dataset", "{W}/none", "--results", "{W}/keep/results",
                           "--out", NEW], 2, "does not exist"),
    # ---- overlay
    ("overlay-unknown-sequence", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Nope", "--results",
                                  "{W}/keep/results", "--trackers", "identity", "--out", NEW + ".png"], 2, "Nope"),
    ("overlay-no-results", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                            "{W}/none", "--trackers", "identity", "--out", NEW + ".png"], 2, "no results for tracker"),
    ("overlay-tracker-without-results", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0",
                                         "--results", "{W}/keep/results", "--trackers", "mil",
                                         "--out", NEW + ".png"], 2, "mil"),
    ("overlay-bad-frames", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                            "{W}/keep/results", "--trackers", "identity", "--frames", "0,99",
                            "--out", NEW + ".png"], 2, "--frames"),
    ("overlay-word-frames", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                             "{W}/keep/results", "--trackers", "identity", "--frames", "a",
                             "--out", NEW + ".png"], 2, "--frames"),
    ("overlay-bad-ext", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                         "{W}/keep/results", "--trackers", "identity", "--out", NEW + ".txt"], 2, "must end in"),
    ("overlay-out-folder", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                            "{W}/keep/results", "--trackers", "identity", "--out", "{W}/emptydir"], 2, "must end in"),
    ("overlay-out-folder-png", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                                "{W}/keep/results", "--trackers", "identity", "--out", "{W}/keep"], 2, "must end in"),
    ("overlay-out-proc", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                          "{W}/keep/results", "--trackers", "identity", "--out", "/proc/x.png"], 2, "cannot write"),
    ("overlay-out-under-file", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                                "{W}/keep/results", "--trackers", "identity", "--out", "{W}/afile/x.mp4"],
     2, "not a folder"),
    ("overlay-bad-colour", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                            "{W}/keep/results", "--trackers", "identity", "--colors", "identity=notacolour",
                            "--out", NEW + ".png"], 2, "notacolour"),
    ("overlay-fps-0", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                       "{W}/keep/results", "--trackers", "identity", "--fps", "0", "--out", NEW + ".mp4"], 2, "--fps"),
    ("overlay-cols-0", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                        "{W}/keep/results", "--trackers", "identity", "--cols", "0", "--out", NEW + ".png"], 2, "--cols"),
    ("overlay-garbage-results", ["metatrack", "overlay", "--dataset", "{W}/data", "--sequence", "Good0", "--results",
                                 "{W}/res/garbage", "--trackers", "trk", "--out", NEW + ".png"], 2, "malformed"),
    # ---- synth
    ("synth-zero", ["metatrack", "synth", NEW, "--sequences", "0", *T], 2, "--sequences"),
    ("synth-negative", ["metatrack", "synth", NEW, "--sequences", "-2", *T], 2, "--sequences"),
    ("synth-word", ["metatrack", "synth", NEW, "--sequences", "abc", *T], 2, "whole number"),
    ("synth-seed-negative", ["metatrack", "synth", NEW, "--seed", "-1", *T], 2, "--seed"),
    ("synth-frames-reversed", ["metatrack", "synth", NEW, "--frames", "9:3", *T], 2, "--frames"),
    ("synth-frames-one", ["metatrack", "synth", NEW, "--frames", "1", *T], 2, "--frames"),
    ("synth-size-word", ["metatrack", "synth", NEW, "--size", "big", *T], 2, "--size"),
    ("synth-size-zero", ["metatrack", "synth", NEW, "--size", "0x0", *T], 2, "size"),
    ("synth-out-file", ["metatrack", "synth", "{W}/afile", *T], 2, "not a folder"),
    ("synth-out-proc", ["metatrack", "synth", "/proc/metatrack-fuzz", "--sequences", "1", *T], 2, "cannot write"),
    ("synth-bad-split", ["metatrack", "synth", NEW, "--split", "dev", *T], 2, "invalid choice"),
    # ---- pretrain
    ("pretrain-iterations-0", ["metatrack", "pretrain", "--dataset", "{W}/data", "--iterations", "0", "--out",
                               NEW + ".pt", *T], 2, "--iterations"),
    ("pretrain-lr-negative", ["metatrack", "pretrain", "--dataset", "{W}/data", "--lr", "-1", "--out", NEW + ".pt",
                              *T], 2, "--lr"),
    ("pretrain-lr-nan", ["metatrack", "pretrain", "--dataset", "{W}/data", "--lr", "nan", "--out", NEW + ".pt", *T],
     2, "--lr"),
    ("pretrain-no-dataset", ["metatrack", "pretrain", "--dataset", "{W}/none", "--out", NEW + ".pt", *T],
     2, "none"),
    ("pretrain-out-folder", ["metatrack", "pretrain", "--dataset", "{W}/data", "--out", "{W}/emptydir", *T],
     2, "is a folder"),
    ("pretrain-out-proc", ["metatrack", "pretrain", "--dataset", "{W}/data", "--out", "/proc/x/w.pt", *T],
     2, "cannot write"),
    ("pretrain-bad-format", ["metatrack", "pretrain", "--dataset", "{W}/data", "--format", "coco",
                             "--out", NEW + ".pt", *T], 2, "invalid choice"),
]

MT = ["metatrack", "meta-train", "--dataset", "{W}/data", "--model", "tiny", "--iterations", "2", "--meta-batch", "1",
      "--no-progress"]
CASES += [
    ("mt-out-folder", MT + ["--out", "{W}/emptydir"], 2, "is a folder"),
    ("mt-out-missing-parent", MT + ["--out", "{W}/ok/not/yet/w.pt"], 0, None),     # documented: created
    ("mt-lr-start-nan", MT + ["--out", NEW + ".pt", "--lr-start", "nan"], 2, "--lr-start"),
    ("mt-out-existing-weights-bad-lr", MT + ["--out", "{W}/keep/w.pt", "--lr-start", "-1"], 2, "--lr-start"),
    ("mt-out-parent-file", MT + ["--out", "{W}/afile/w.pt"], 2, "not a folder"),
    ("mt-out-proc", MT + ["--out", "/proc/x/w.pt"], 2, "cannot write"),
    ("mt-checkpoint-every-0", MT + ["--out", NEW + ".pt", "--checkpoint-every", "0"], 2, "--checkpoint-every"),
    ("mt-workers-negative", MT + ["--out", NEW + ".pt", "--workers", "-1"], 2, "--workers"),
    ("mt-lr-alpha-negative", MT + ["--out", NEW + ".pt", "--lr-alpha", "-1e-5"], 2, "--lr-alpha"),
    ("mt-alpha-init-nan", MT + ["--out", NEW + ".pt", "--alpha-init", "nan"], 2, "--alpha-init"),
    ("mt-lr-attenuator-inf", MT + ["--out", NEW + ".pt", "--lr-attenuator", "inf"], 2, "--lr-attenuator"),
    ("mt-pretrain-negative", MT + ["--out", NEW + ".pt", "--pretrain-iterations", "-5"], 2, "--pretrain-iterations"),
    ("mt-iterations-0", MT[:-5] + ["--iterations", "0", "--no-progress", "--out", NEW + ".pt"], 2, "--iterations"),
    ("mt-meta-batch-0", MT + ["--out", NEW + ".pt", "--meta-batch", "0"], 2, "--meta-batch"),
    ("mt-dropgrad-rate-1", MT + ["--out", NEW + ".pt", "--dropgrad", "binary", "--dropgrad-rate", "1.5"],
     2, "--dropgrad-rate"),
    ("mt-dropgrad-rate-nan", MT + ["--out", NEW + ".pt", "--dropgrad", "binary", "--dropgrad-rate", "nan"],
     2, "--dropgrad-rate"),
    ("mt-resume-without-ckpt", MT + ["--out", NEW + ".pt", "--resume"], 2, "no checkpoint"),
    ("mt-no-dataset", ["metatrack", "meta-train", "--dataset", "{W}/none", "--out", NEW + ".pt", "--no-progress"],
     2, "none"),
    ("mt-empty-dataset", ["metatrack", "meta-train", "--dataset", "{W}/emptydir", "--out", NEW + ".pt",
                          "--no-progress"], 2, "emptydir"),
    ("mt-init-missing", MT + ["--out", NEW + ".pt", "--init", "{W}/none.pt"], 2, "does not exist"),
    ("mt-init-garbage", MT + ["--out", NEW + ".pt", "--init", "{W}/garbage.pt"], 2, "garbage.pt"),
    ("mt-sdnet-with-backbone", MT + ["--out", NEW + ".pt", "--backbone", "{W}/sdnet.pt"], 2, "--backbone"),
    ("mt-crest-with-adapt", ["metatrack", "meta-train", "--tracker", "metacrest", "--dataset", "{W}/data",
                             "--adapt", "fc", "--out", NEW + ".pt", "--no-progress"], 2, "--adapt"),
    ("mt-crest-backbone-missing", ["metatrack", "meta-train", "--tracker", "metacrest", "--dataset", "{W}/data",
                                   "--backbone", "{W}/none.pt", "--out", NEW + ".pt", "--no-progress"],
     2, "does not exist"),
    ("mt-crest-effnet-bad-layer", ["metatrack", "meta-train", "--tracker", "metacrest", "--dataset", "{W}/data",
                                   "--backbone", "efficientnet-lite0", "--backbone-layer", "conv3",
                                   "--out", NEW + ".pt", "--no-progress"], 2, "block1 .. block16"),
    ("mt-crest-sdnet-stride", ["metatrack", "meta-train", "--tracker", "metacrest", "--dataset", "{W}/data",
                               "--backbone", "{W}/garbage.pt", "--backbone-stride", "8", "--out", NEW + ".pt", "--no-progress"], 2, "--backbone-stride"),
    ("mt-sdnet-backbone-layer", MT + ["--out", NEW + ".pt", "--backbone-layer", "block5"], 2, "--backbone-layer"),
    ("mt-crest-bad-option", ["metatrack", "meta-train", "--tracker", "metacrest", "--dataset", "{W}/data",
                             "--tracker-option", "update_lr=abc", "--out", NEW + ".pt", "--no-progress"],
     2, "update_lr must be"),
    ("mt-crest-lookahead-0", ["metatrack", "meta-train", "--tracker", "metacrest", "--dataset", "{W}/data",
                              "--lookahead", "0", "--out", NEW + ".pt", "--no-progress"], 2, "--lookahead"),
    ("mt-crest-lr-negative", ["metatrack", "meta-train", "--tracker", "metacrest", "--dataset", "{W}/data",
                              "--lr-start", "-1", "--out", "{W}/keep/w.pt", "--no-progress"], 2, "--lr-start"),
    ("mt-bad-format", MT + ["--out", NEW + ".pt", "--format", "coco"], 2, "invalid choice"),
]

# ---- --device on every command that computes with tensors: cpu is accepted; cuda:99 exists on no
# machine (without CUDA: "built without CUDA"; with one GPU: "does not exist"), one line either way
CUDA99 = ["--device", "cuda:99"]
CASES += [
    ("track-device-cpu", track("{W}/data/Good0", "--weights", "{W}/sdnet.pt", "--device", "cpu",
                               "--out", "{W}/ok/device", *TV), 0, None),
    ("track-device-cuda99", track("{W}/data/Good0", *CUDA99, "--out", NEW, *T), 2, "--device cuda:99"),
    ("track-device-word", track("{W}/data/Good0", "--device", "gpu", "--out", NEW, *T), 2, "is not a device"),
    ("track-device-cuda99-identity", track("{W}/data/Good0", "--tracker", "identity", *CUDA99, "--out", NEW, *T),
     2, "--device cuda:99"),
    ("eval-device-cpu", ["metatrack", "eval", "--dataset", "{W}/data", "--trackers", "identity", "--results",
                         "{W}/ok/device-results", "--device", "cpu", *T], 0, None),
    ("eval-device-cuda99", ["metatrack", "eval", "--dataset", "{W}/data", "--trackers", "metasdnet,identity",
                            "--results", NEW, *CUDA99, *T], 2, "--device cuda:99"),
    ("eval-device-empty", ["metatrack", "eval", "--dataset", "{W}/data", "--trackers", "identity", "--results",
                           NEW, "--device", "cuda:x", *T], 2, "is not a device"),
    ("demo-device-cuda99", ["metatrack", "demo", "--out", NEW, *CUDA99], 2, "--device cuda:99"),
    ("pretrain-device-cuda99", ["metatrack", "pretrain", "--dataset", "{W}/data", "--out", NEW + ".pt", *CUDA99, *T],
     2, "--device cuda:99"),
    ("pretrain-device-cpu", ["metatrack", "pretrain", "--dataset", "{W}/data", "--model", "tiny", "--iterations",
                             "1", "--out", "{W}/ok/device-pre.pt", "--device", "cpu", *T], 0, None),
    ("mt-device-cuda99", MT + ["--out", NEW + ".pt", *CUDA99], 2, "--device cuda:99"),
    ("mt-device-cuda99-existing", MT + ["--out", "{W}/keep/w.pt", *CUDA99], 2, "--device cuda:99"),
    ("mt-device-cpu", MT + ["--out", "{W}/ok/device-mt.pt", "--device", "cpu"], 0, None),
    ("mt-crest-device-cuda99", ["metatrack", "meta-train", "--tracker", "metacrest", "--dataset", "{W}/data",
                                "--out", NEW + ".pt", *CUDA99, "--no-progress"], 2, "--device cuda:99"),
]

ML = ["metalearn", "regression", "--shots", "5", "--iterations", "2", "--meta-batch", "2", "--eval-tasks", "5",
      "--quiet", "--no-plot"]
CASES += [
    ("ml-shots-0", ["metalearn", "regression", "--shots", "0", "--out", NEW, "--quiet"], 2, "--shots"),
    ("ml-iterations-word", ML + ["--iterations", "x", "--out", NEW], 2, "--iterations"),
    ("ml-meta-batch-0", ML + ["--meta-batch", "0", "--out", NEW], 2, "--meta-batch"),
    ("ml-inner-lr-negative", ML + ["--inner-lr", "-1", "--out", NEW], 2, "learning rates"),
    ("ml-dropgrad-rate", ML + ["--dropgrad", "binary", "--dropgrad-rate", "2", "--out", NEW], 2, "--dropgrad-rate"),
    ("ml-out-under-file", ML + ["--out", "{W}/afile/o"], 2, "afile"),
    ("ml-out-proc", ML + ["--out", "/proc/metalearn-fuzz"], 2, "cannot write"),
    ("ml-resume-without-ckpt", ML + ["--resume", "--out", NEW], 2, "no checkpoint"),
    ("ml-gamma-without-reg", ML + ["--l2-gamma", "{W}/gamma_bad.json", "--out", NEW], 2, "--l2-meta-reg"),
    ("ml-gamma-missing", ML + ["--l2-meta-reg", "eqc", "--l2-gamma", "{W}/none.json", "--out", NEW], 2, "none.json"),
    ("ml-gamma-junk", ML + ["--l2-meta-reg", "eqc", "--l2-gamma", "{W}/gamma_junk.json", "--out", NEW],
     2, "gamma_junk.json"),
    ("ml-bad-surgery", ML + ["--surgery", "magic", "--out", NEW], 2, "invalid choice"),
    ("ml-inner-lr-nan", ML + ["--inner-lr", "nan", "--out", NEW], 2, "learning rates"),
    ("ml-unknown-command", ["metalearn", "nope"], 2, "invalid choice"),
    ("ml-device-absent", ML + ["--device", "cuda:99", "--out", NEW], 2, "--device cuda:99"),
    ("ml-device-word", ML + ["--device", "tpu", "--out", NEW], 2, "--device 'tpu'"),
]

RL = ["metalearn", "rl", "--env", "2dnav", "--iterations", "1", "--meta-batch", "2", "--trajectories", "2",
      "--horizon", "5", "--eval-tasks", "2", "--quiet", "--no-plot"]
CASES += [
    ("rl-bad-env", ["metalearn", "rl", "--env", "moon", "--out", NEW], 2, "invalid choice"),
    ("rl-iterations-negative", RL + ["--iterations", "-1", "--out", NEW], 2, "--iterations"),
    ("rl-meta-batch-0", RL + ["--meta-batch", "0", "--out", NEW], 2, "--meta-batch"),
    ("rl-trajectories-1", RL + ["--trajectories", "1", "--out", NEW], 2, "--trajectories"),
    ("rl-horizon-0", RL + ["--horizon", "0", "--out", NEW], 2, "--horizon"),
    ("rl-inner-lr-nan", RL + ["--inner-lr", "nan", "--out", NEW], 2, "--inner-lr"),
    ("rl-inner-lr-negative", RL + ["--inner-lr", "-0.1", "--out", NEW], 2, "--inner-lr"),
    ("rl-dropgrad-rate", RL + ["--dropgrad", "binary", "--dropgrad-rate", "1.5", "--out", NEW], 2, "--dropgrad-rate"),
    ("rl-bad-hvp", RL + ["--hvp", "magic", "--out", NEW], 2, "invalid choice"),
    ("rl-out-under-file", RL + ["--out", "{W}/afile/o"], 2, "afile"),
    ("rl-out-proc", RL + ["--out", "/proc/metalearn-fuzz"], 2, "cannot write"),
    ("rl-resume-without-ckpt", RL + ["--resume", "--out", NEW], 2, "no checkpoint"),
    ("rl-resume-and-no-resume", RL + ["--resume", "--no-resume", "--out", NEW], 2, "not allowed"),
    ("rl-device-absent", RL + ["--device", "cuda:99", "--out", NEW], 2, "--device cuda:99"),
]

CL = ["metalearn", "classification", "--ways", "2", "--shots", "1", "--iterations", "1", "--quiet"]
CASES += [
    ("cls-no-ways", ["metalearn", "classification", "--out", NEW, "--quiet"], 2, "--ways and --shots"),
    ("cls-ways-0", CL + ["--ways", "0", "--out", NEW], 2, "--ways"),
    ("cls-shots-word", CL + ["--shots", "one", "--out", NEW], 2, "--shots"),
    ("cls-bad-dataset", CL + ["--dataset", "imagenet22k", "--out", NEW], 2, "invalid choice"),
    ("cls-bad-backbone", CL + ["--backbone", "vgg", "--out", NEW], 2, "invalid choice"),
    ("cls-bad-config", ["metalearn", "classification", "--config", "nope", "--out", NEW], 2, "invalid choice"),
    ("cls-root-missing", CL + ["--dataset", "miniimagenet", "--out", NEW], 2, "needs --root"),
    ("cls-root-not-folder", CL + ["--dataset", "miniimagenet", "--root", "{W}/afile", "--out", NEW],
     2, "not a folder"),
    ("cls-miniimagenet-empty", CL + ["--dataset", "miniimagenet", "--root", "{W}/emptydir", "--out", NEW],
     2, "emptydir"),
    ("cls-tieredimagenet-empty", CL + ["--dataset", "tieredimagenet", "--root", "{W}/emptydir", "--out", NEW],
     2, "emptydir"),
    ("cls-cifarfs-empty", CL + ["--dataset", "cifarfs", "--root", "{W}/emptydir", "--out", NEW], 2, "emptydir"),
    ("cls-fc100-empty", CL + ["--dataset", "fc100", "--root", "{W}/emptydir", "--out", NEW], 2, "emptydir"),
    ("cls-omniglot-empty", CL + ["--dataset", "omniglot", "--root", "{W}/emptydir", "--out", NEW], 2, "emptydir"),
    ("cls-folder-empty", CL + ["--dataset", "folder", "--root", "{W}/emptydir", "--out", NEW], 2, "emptydir"),
    ("cls-folder-of-otb", CL + ["--dataset", "folder", "--root", "{W}/data", "--out", NEW], 2, "data"),
    ("cls-inner-lr-0", CL + ["--inner-lr", "0", "--out", NEW], 2, "--inner-lr"),
    ("cls-inner-lr-nan", CL + ["--inner-lr", "nan", "--out", NEW], 2, "--inner-lr"),
    ("cls-reg-without-gamma", CL + ["--l2-meta-reg", "eqc", "--out", NEW], 2, "--l2-gamma"),
    ("cls-gamma-without-reg", CL + ["--l2-gamma", "{W}/gamma_bad.json", "--out", NEW], 2, "--l2-meta-reg"),
    ("cls-gamma-junk", CL + ["--l2-meta-reg", "eqc", "--l2-gamma", "{W}/gamma_junk.json", "--out", NEW],
     2, "gamma_junk.json"),
    ("cls-evaluate-missing", CL + ["--evaluate", "{W}/none.pt", "--out", NEW], 2, "none.pt"),
    ("cls-evaluate-garbage", CL + ["--evaluate", "{W}/garbage.pt", "--out", NEW], 2, "garbage.pt"),
    ("cls-out-under-file", CL + ["--out", "{W}/afile/o"], 2, "afile"),
    ("cls-out-proc", CL + ["--out", "/proc/metalearn-fuzz"], 2, "cannot write"),
    ("cls-resume-without-ckpt", CL + ["--resume", "--out", NEW], 2, "no checkpoint"),
    ("cls-device-absent", CL + ["--device", "cuda:99", "--out", NEW], 2, "--device cuda:99"),
    ("cls-evaluate-device-absent", CL + ["--evaluate", "{W}/garbage.pt", "--device", "cuda:99", "--out", NEW],
     2, "--device cuda:99"),
    ("glyphs-out-under-file", ["metalearn", "glyphs", "{W}/afile/g", "--quiet"], 2, "afile"),
    ("glyphs-image-size-0", ["metalearn", "glyphs", NEW, "--image-size", "0", "--quiet"], 2, "--image-size"),
]


def _run(argv):
    if argv[0] == "metatrack":
        from tracker.cli import main
    else:
        from meta_learning.cli import main
    return main(argv[1:])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_loses_nothing(case, ws, capfd):
    _, argv, code, needle = case
    argv = [a.replace("{W}", ws) for a in argv]
    new = NEW.replace("{W}", ws)
    shutil.rmtree(os.path.dirname(new), ignore_errors=True)   # one failing case must not spoil the next
    before = _snapshot(os.path.join(ws, "keep"))
    capfd.readouterr()
    rc = _run(argv)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "np.float64" not in out + err, err
    assert rc == code, f"exit {rc}, expected {code}: {err}"
    if code:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one line, got {lines}"
        assert lines[0].startswith(argv[0]) and "error" in lines[0], lines[0]
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
        leftovers = [p for p in (new, new + ".pt", new + ".pt.csv", new + ".pt.ckpt", new + ".png", new + ".mp4")
                     if os.path.exists(p)]
        assert not leftovers, f"a failed run left {leftovers}"
    assert _snapshot(os.path.join(ws, "keep")) == before, "an earlier output changed"


def test_the_suite_is_large_enough():
    n = len(CASES) + len(API_CASES)
    print(f"\nfuzz cases: {len(CASES)} commands + {len(API_CASES)} API = {n}")
    assert n >= 120


# ------------------------------------------------------------------ the Python API
def _frames():
    frames, gt = patch_sequence(n=3, size=SIZE, box=(20, 14, 16, 14), amplitude=6)
    return frames, gt


def _api_make(name, **kw):
    import tracker

    return tracker.make(name, **kw)


def _update_first(name):
    frames, _ = _frames()
    _api_make(name).update(frames[0])


def _init(name, box, image=None):
    frames, _ = _frames()
    _api_make(name).init(frames[0] if image is None else image, box)


def _other_size(name):
    frames, gt = _frames()
    trk = _api_make(name)
    trk.init(frames[0], gt[0])
    trk.update(cv2.resize(frames[1], (80, 60)))


def _track_missing(name, tmp):
    frames, gt = _frames()
    _api_make(name).track([os.path.join(tmp, "none.png")], gt[0])


API_CASES = [
    ("make-unknown", lambda t: _api_make("nope"), "unknown tracker"),
    ("make-mdnet-option-type", lambda t: _api_make("mdnet", finetune_iters="30"), "must be an integer"),
    ("make-metasdnet-unknown-option", lambda t: _api_make("metasdnet", update_lr=1e-4), "unknown option"),
    ("make-metacrest-option-type", lambda t: _api_make("metacrest", memory=2.5), "must be an integer"),
    ("make-metasdnet-missing-weights", lambda t: _api_make("metasdnet", weights=os.path.join(t, "x.pt")),
     "does not exist"),
    ("make-device-cuda99", lambda t: _api_make("metasdnet", device="cuda:99"), "cuda:99"),
    ("make-device-cuda99-mil", lambda t: _api_make("mil", device="cuda:99"), "cuda:99"),
    ("make-device-word", lambda t: _api_make("metacrest", device="gpu"), "is not a device"),
    ("factory-device-cuda99", lambda t: __import__("tracker").factory("crest", device="cuda:99"), "cuda:99"),
] + [
    (f"update-before-init-{n}", (lambda n: lambda t: _update_first(n))(n), "before init")
    for n in ("identity", "mil", "metasdnet", "mdnet", "metacrest", "crest")
] + [
    (f"init-nan-{n}", (lambda n: lambda t: _init(n, [np.nan, 1, 8, 8]))(n), "non-finite")
    for n in ("identity", "mil", "metasdnet", "metacrest")
] + [
    (f"init-outside-{n}", (lambda n: lambda t: _init(n, [500, 500, 10, 10]))(n), "outside")
    for n in ("identity", "mil", "metasdnet", "metacrest")
] + [
    (f"other-size-{n}", (lambda n: lambda t: _other_size(n))(n), "first frame is 64x48")
    for n in ("identity", "mil", "metasdnet", "metacrest")
] + [
    ("init-two-channel-image", lambda t: _init("identity", [1, 1, 8, 8], np.zeros((48, 64, 2), np.uint8)),
     "unsupported image shape"),
    ("init-string-image", lambda t: _init("metasdnet", [1, 1, 8, 8], "frame.png"), "unsupported image type"),
    ("init-three-numbers", lambda t: _init("identity", [1, 2, 3]), "4 numbers"),
    ("track-missing-file", lambda t: _track_missing("identity", t), "none.png"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input_is_one_user_error(case, tmp_path):
    _, call, needle = case
    with pytest.raises(UserError) as exc:
        call(str(tmp_path))
    message = str(exc.value)
    assert needle in message and "\n" not in message and "np.float64" not in message, message


# ------------------------------------------------------------------ real kills
def _kill_when(cmd, path, cwd, timeout=120):
    """Start ``cmd``, SIGKILL it as soon as ``path`` exists; True if it was killed mid-run."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while proc.poll() is None and not os.path.exists(path) and time.time() - t0 < timeout:
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return killed


def _files(folder, skip=("_time.txt",)):
    return {k: v for k, v in _snapshot(folder).items() if not k.endswith(skip)}


def test_eval_killed_resumes_to_the_same_results(ws, tmp_path):
    base = ["metatrack", "eval", "--dataset", f"{ws}/data", "--trackers", "metasdnet",
            "--no-progress"]
    full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
    subprocess.run(base + ["--results", full], check=True, capture_output=True)
    killed = _kill_when(base + ["--results", resumed], os.path.join(resumed, "metasdnet", "Good0.txt"), ws)
    subprocess.run(base + ["--results", resumed], check=True, capture_output=True)
    assert killed or os.path.isfile(os.path.join(resumed, "metasdnet", "Good1.txt"))
    assert _files(resumed) == _files(full)


def test_meta_train_killed_resumes_to_the_same_weights(ws, tmp_path):
    import torch

    base = ["metatrack", "meta-train", "--dataset", f"{ws}/data", "--model", "tiny",
            "--iterations", "8", "--meta-batch", "1", "--checkpoint-every", "2", "--no-progress"]
    full, resumed = str(tmp_path / "full.pt"), str(tmp_path / "resumed.pt")
    subprocess.run(base + ["--out", full], check=True, capture_output=True)
    killed = _kill_when(base + ["--out", resumed], resumed + ".ckpt", ws)
    subprocess.run(base + ["--out", resumed, "--resume"], check=True, capture_output=True)
    assert killed
    a, b = torch.load(full, weights_only=True)["state"], torch.load(resumed, weights_only=True)["state"]
    for key in ("model", "alpha"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"


def test_metalearn_killed_resumes_to_the_same_results(tmp_path):
    base = ["metalearn", "regression", "--shots", "5", "--iterations", "60",
            "--meta-batch", "4", "--eval-tasks", "20", "--checkpoint-every", "10", "--quiet", "--no-plot"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    subprocess.run(base + ["--out", str(full)], check=True, capture_output=True)
    killed = _kill_when(base + ["--out", str(resumed)], str(resumed / "checkpoint.pt"), str(tmp_path))
    subprocess.run(base + ["--out", str(resumed)], check=True, capture_output=True)
    assert killed
    a = json.load(open(full / "results.json"))
    b = json.load(open(resumed / "results.json"))
    assert a["mse"] == b["mse"]


def test_eval_resume_redoes_garbage_and_truncated_results(ws, tmp_path, capfd):
    """A result file that does not parse or lacks rows is not counted as done: it is redone,
    with one warning line each, and ends equal to a clean run's."""
    from tracker.cli import main

    clean, resumed = str(tmp_path / "clean"), str(tmp_path / "resumed")
    argv = ["eval", "--dataset", f"{ws}/data", "--trackers", "identity", "--no-progress"]
    assert main(argv + ["--results", clean]) == 0
    os.makedirs(os.path.join(resumed, "identity"))
    open(os.path.join(resumed, "identity", "Good0.txt"), "w").write("garbage\n")
    open(os.path.join(resumed, "identity", "Good1.txt"), "w").write("1,2,3,4\n")     # 1 row of 6
    capfd.readouterr()
    with pytest.warns(UserWarning) as record:
        assert main(argv + ["--results", resumed]) == 0
    redone = [str(w.message) for w in record if "tracking identity/Good" in str(w.message)]
    assert len(redone) == 2 and all("\n" not in m for m in redone), redone
    assert "Traceback" not in capfd.readouterr().err
    assert _files(resumed) == _files(clean)


def test_meta_train_that_learns_nothing_writes_no_weights(ws, tmp_path):
    """Every iteration non-finite (a NaN learning signal): an error, not weights labelled trained."""
    from tracker.metatrain.sdnet import MetaTrainConfig, meta_train
    from tracker.metatrain.sources import load_tracks
    from tracker.sdnet.model import ModelConfig

    out = str(tmp_path / "w.pt")
    config = MetaTrainConfig(iterations=3, meta_batch=1, checkpoint_every=1, model=ModelConfig.tiny().to_dict())
    with pytest.raises(UserError, match="all 3 iterations had non-finite"), pytest.warns(UserWarning):
        meta_train(load_tracks(f"{ws}/data", "otb"), config, out, progress=False,
                   nan_hook=lambda it, loss: loss * float("nan"))
    assert not os.path.exists(out)
