"""VID, GOT-10k and OTB-format loaders on generated trees in their real layouts."""
import os

import numpy as np
import pytest

from foundation.errors import UserError
from otb_eval.testing import make_sequence, write_frames
from tracker.metatrain.sources import BoxFilter, load_tracks, vid_tracks

VID_XML = """<annotation>
  <folder>{folder}</folder><filename>{frame}</filename>
  <size><width>{w}</width><height>{h}</height></size>
  {objects}
</annotation>"""
VID_OBJ = """<object><trackid>{tid}</trackid><name>n02084071</name>
  <bndbox><xmax>{x2}</xmax><xmin>{x1}</xmin><ymax>{y2}</ymax><ymin>{y1}</ymin></bndbox>
  <occluded>0</occluded><generated>0</generated></object>"""


def make_vid(root, video="ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000", frames=6):
    img_dir = os.path.join(root, "Data", "VID", "train", video)
    ann_dir = os.path.join(root, "Annotations", "VID", "train", video)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(frames):
        name = f"{i:06d}"
        open(os.path.join(img_dir, name + ".JPEG"), "wb").close()
        objects = [VID_OBJ.format(tid=0, x1=10 + i, y1=20, x2=60 + i, y2=80)]   # 50 x 60: kept
        if i % 2 == 0:
            objects.append(VID_OBJ.format(tid=1, x1=5, y1=5, x2=15, y2=15))      # 10 px: dropped
        objects.append(VID_OBJ.format(tid=2, x1=0, y1=0, x2=300, y2=50))          # > 0.6 w: dropped
        with open(os.path.join(ann_dir, name + ".xml"), "w") as f:
            f.write(VID_XML.format(folder=video, frame=name, w=320, h=240, objects="\n".join(objects)))


def test_vid_tracks_filter_and_cache(tmp_path):
    make_vid(str(tmp_path))
    cache = str(tmp_path / "index.json")
    tracks = vid_tracks(str(tmp_path), cache=cache)
    assert [t.name for t in tracks] == ["ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000#0"]
    t = tracks[0]
    assert len(t) == 6 and t.frames[0].endswith(os.path.join("Data", "VID", "train",
                                                               "ILSVRC2015_VID_train_0000",
                                                               "ILSVRC2015_train_00000000", "000000.JPEG"))
    np.testing.assert_allclose(t.boxes[3], [13, 20, 50, 60])
    again = vid_tracks(str(tmp_path), cache=cache)        # read back from the cache
    assert again[0].frames == t.frames and np.array_equal(again[0].boxes, t.boxes)
    loose = vid_tracks(str(tmp_path), box_filter=BoxFilter(min_size=5, max_fraction=1.0))
    assert len(loose) == 3


def test_got10k_tracks_skip_absent_frames(tmp_path):
    seq = tmp_path / "train" / "GOT-10k_Train_000001"
    write_frames(str(seq), range(1, 9), digits=8)
    for p in (seq / "img").iterdir():                       # GOT-10k keeps frames beside the gt
        p.rename(seq / p.name)
    (seq / "img").rmdir()
    boxes = np.tile([10.0, 10, 30, 30], (8, 1))
    np.savetxt(seq / "groundtruth.txt", boxes, delimiter=",", fmt="%.1f")
    np.savetxt(seq / "absence.label", [0, 0, 1, 0, 0, 0, 1, 0], fmt="%d")
    (tmp_path / "train" / "list.txt").write_text("GOT-10k_Train_000001\n")
    [track] = load_tracks(str(tmp_path), "got10k")
    assert len(track) == 6
    assert not any(f.endswith(("00000003.jpg", "00000007.jpg")) for f in track.frames)


def test_otb_tracks_and_missing_data(tmp_path):
    make_sequence(str(tmp_path / "otb"), "SynTrain001", 5)
    [track] = load_tracks(str(tmp_path / "otb"), "otb")
    assert len(track) == 5
    with pytest.raises(UserError, match="does not exist"):
        load_tracks(str(tmp_path / "nope"), "vid")
    with pytest.raises(UserError, match="ImageNet VID annotations not found"):
        load_tracks(str(tmp_path / "otb"), "vid")
    with pytest.raises(UserError, match="no GOT-10k sequences"):
        load_tracks(str(tmp_path / "otb"), "got10k")
    with pytest.raises(UserError, match="unknown data set format"):
        load_tracks(str(tmp_path / "otb"), "lasot")
