import os

import numpy as np
import pytest

from foundation.errors import UserError
from otb_eval.datasets import OTBDataset, canonical_name, official_folders, otb100_attributes, parse_boxes
from otb_eval.testing import make_quirky_otb2015_tree, make_sequence


@pytest.fixture(scope="module")
def quirky(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("otb"))
    make_quirky_otb2015_tree(root)
    return root


def test_quirky_frames_are_the_annotated_ones(quirky):
    ds = OTBDataset(quirky)
    david = ds["David"]
    assert os.path.basename(david.img_files[0]) == "0300.jpg"
    assert os.path.basename(david.img_files[-1]) == "0770.jpg"
    assert os.path.basename(ds["BlurCar1"].img_files[0]) == "0247.jpg"
    assert os.path.basename(ds["Board"].img_files[0]) == "00001.jpg"
    assert os.path.basename(ds["Football1"].img_files[-1]) == "0074.jpg"
    assert os.path.basename(ds["Diving"].img_files[-1]) == "0215.jpg"
    assert "Human4" in ds.seq_names and "Human4.1" not in ds.seq_names
    assert {"Jogging.1", "Jogging.2", "Skating2.1", "Skating2.2"} <= set(ds.seq_names)
    assert not np.array_equal(ds["Jogging.1"].anno, ds["Jogging.2"].anno)


def test_tiger1_policy(quirky):
    keep = OTBDataset(quirky, tiger1="got10k")["Tiger1"]
    skip = OTBDataset(quirky, tiger1="otb")["Tiger1"]
    assert len(keep) == len(skip) + 5
    np.testing.assert_array_equal(skip.anno, keep.anno[5:])
    assert skip.img_files == keep.img_files[5:]


def test_aliases_of_every_toolkit():
    known = ["Jogging.1", "Jogging.2", "Human4", "Car24", "Skating2.1"]
    assert canonical_name("Jogging_1", known) == "Jogging.1"      # pytracking
    assert canonical_name("Jogging-2", known) == "Jogging.2"      # pysot
    assert canonical_name("jogging-1", known) == "Jogging.1"      # MATLAB toolkit
    assert canonical_name("skating2-1", known) == "Skating2.1"
    assert canonical_name("Human4-2", known) == "Human4"
    assert canonical_name("car24", known) == "Car24"
    assert canonical_name("Car2", known) is None


def test_attributes_table_is_the_official_one(quirky):
    table = otb100_attributes()
    assert len(table) == 100
    counts = {a: sum(a in v for v in table.values()) for a in
              ["IV", "SV", "OCC", "DEF", "MB", "FM", "IPR", "OPR", "OV", "BC", "LR"]}
    # counts of the OTB toolkit's sequence configs (docs/otb_eval.md compares them with the paper)
    assert counts == {"IV": 38, "SV": 65, "OCC": 49, "DEF": 44, "MB": 29, "FM": 39, "IPR": 51,
                      "OPR": 63, "OV": 14, "BC": 31, "LR": 9}
    assert {n.split(".")[0] for n in table} == set(official_folders("otb2015"))
    ds = OTBDataset(quirky)
    assert ds["David"].attributes == tuple(table["David"])
    assert "Jogging.1" in ds.attributes()["OCC"]


def test_official_lists_sizes():
    assert len(official_folders("otb2013")) == 50
    assert len(official_folders("tb50")) == 49
    assert len(official_folders("otb2015")) == len(official_folders("tb100")) == 98


def test_incomplete_official_version_names_the_missing(quirky):
    with pytest.raises(UserError, match=r"not a complete otb2015: 87 of 98 sequence folders missing \(Biker, Bird1, "):
        OTBDataset(quirky, "otb2015")


def test_delimiters_and_png_frames(tmp_path):
    make_sequence(str(tmp_path), "KiteSurf", 6, ext=".png")
    path = tmp_path / "mixed.txt"
    path.write_text("1,2,3,4\n5\t6\t7\t8\n9 10 11 12\n\n13, 14,\t15 16\n")
    np.testing.assert_array_equal(parse_boxes(str(path)), np.arange(1, 17).reshape(4, 4))
    seq = OTBDataset(str(tmp_path))["KiteSurf"]
    assert len(seq) == 6 and seq.img_files[0].endswith("0001.png")


@pytest.mark.parametrize("content, message", [
    ("1,2,3,4\n1,2,x,4\n", r"gt/groundtruth_rect.txt:2: malformed row"),
    ("1,2,3,4\n1,2,3\n", r":2: expected 4 values"),
])
def test_malformed_ground_truth(tmp_path, content, message):
    make_sequence(str(tmp_path), "gt", 2)
    (tmp_path / "gt" / "groundtruth_rect.txt").write_text(content)
    with pytest.raises(UserError, match=message):
        OTBDataset(str(tmp_path))


def test_fewer_frames_than_rows(tmp_path):
    make_sequence(str(tmp_path), "Short", 3, rows=5)
    with pytest.raises(UserError, match=r"sequence Short: .* 5 rows but only 3 frames"):
        OTBDataset(str(tmp_path))


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        OTBDataset(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="no OTB-format sequences"):
        OTBDataset(str(tmp_path))
    with pytest.raises(UserError, match="unknown OTB version"):
        OTBDataset(str(tmp_path), "otb2099")


def test_quirks_apply_by_name_not_version(tmp_path):
    """A lone David folder evaluated with --version auto still starts at frame 300."""
    make_sequence(str(tmp_path), "David", 770, rows=471)
    assert os.path.basename(OTBDataset(str(tmp_path), "auto")["David"].img_files[0]) == "0300.jpg"


def test_folder_attributes_json(tmp_path):
    make_sequence(str(tmp_path), "SynTest001", 5)
    (tmp_path / "SynTest001" / "attributes.json").write_text('{"attributes": ["FM", "SV"]}')
    ds = OTBDataset(str(tmp_path))
    assert ds["SynTest001"].attributes == ("FM", "SV")
    assert ds.attributes() == {"SV": ["SynTest001"], "FM": ["SynTest001"]}


def test_ground_truth_with_a_utf8_byte_order_mark(tmp_path):
    """Windows editors save a BOM before the first number: the file reads as without it, and a
    file holding only a BOM is as empty as an empty one (Human4's first target)."""
    (gt,) = make_sequence(str(tmp_path), "Bom", 4)
    (gt2,) = make_sequence(str(tmp_path), "BomTwo", 4, seed=7)
    path = tmp_path / "Bom" / "groundtruth_rect.txt"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    np.testing.assert_allclose(parse_boxes(str(path)), gt)
    folder = tmp_path / "BomTwo"
    os.replace(folder / "groundtruth_rect.txt", folder / "groundtruth_rect.2.txt")
    (folder / "groundtruth_rect.1.txt").write_bytes(b"\xef\xbb\xbf\n")
    (folder / "attributes.json").write_bytes(b'\xef\xbb\xbf{"attributes": ["IV"]}')
    ds = OTBDataset(str(tmp_path))
    np.testing.assert_allclose(ds["Bom"].anno, gt)
    assert "BomTwo" in ds.seq_names and ds["BomTwo"].attributes == ("IV",)
    np.testing.assert_allclose(ds["BomTwo"].anno, gt2)
