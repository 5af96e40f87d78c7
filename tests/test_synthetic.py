"""The synthetic OTB-format benchmark: determinism, exact ground truth, honest attributes, splits."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from foundation.errors import UserError
from otb_eval import synthetic
from otb_eval.synthetic import planning, sources
from tracker.cli import main

SIZE = (192, 144)
FRAMES = (40, 50)


def _read(folder):
    with open(os.path.join(folder, "attributes.json"), encoding="utf-8") as fh:
        meta = json.load(fh)
    gt = np.loadtxt(os.path.join(folder, "groundtruth_rect.txt"), delimiter=",", ndmin=2)
    return meta, gt


def _centres(boxes):
    # written independently of foundation.boxes on purpose: OTB's centre x + (w - 1) / 2
    return boxes[:, :2] + (boxes[:, 2:] - 1) / 2


def _touches(boxes, w, h):
    return (boxes[:, 0] <= 0) | (boxes[:, 1] <= 0) | (boxes[:, 0] + boxes[:, 2] >= w) | \
           (boxes[:, 1] + boxes[:, 3] >= h)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    names = synthetic.generate(str(out), 6, seed=11, split="test", frames=FRAMES, size=SIZE,
                               progress=False)
    return out, names


def test_layout_rows_frames_and_boxes_inside(bench):
    import cv2

    out, names = bench
    assert names == [f"SynTest{i:03d}" for i in range(1, 7)]
    for name in names:
        folder = out / name
        meta, gt = _read(folder)
        images = sorted(os.listdir(folder / "img"))
        assert images == [f"{i:04d}.jpg" for i in range(1, meta["frames"] + 1)]
        assert FRAMES[0] <= meta["frames"] <= FRAMES[1]
        assert gt.shape == (meta["frames"], 4)
        assert meta["split"] == "test" and meta["seed"] == 11
        assert cv2.imread(str(folder / "img" / images[-1])).shape == (SIZE[1], SIZE[0], 3)
        assert np.all(gt[:, 2:] >= 1), name
        assert np.all(gt[:, :2] >= 0), name
        assert np.all(gt[:, 0] + gt[:, 2] <= SIZE[0]) and np.all(gt[:, 1] + gt[:, 3] <= SIZE[1]), name
        assert 2 <= len(meta["generator"]["planned"]) <= 4
        assert set(meta["attributes"]) <= set(planning.OTB_ATTRIBUTES)


def test_ground_truth_attributes_agree_with_boxes(bench):
    """FM, OV and LR are defined on the written boxes: check both directions on every sequence."""
    out, names = bench
    for name in names:
        meta, gt = _read(out / name)
        attrs = set(meta["attributes"])
        shift = np.hypot(*np.diff(_centres(gt), axis=0).T).max()
        assert ("FM" in attrs) == (shift > 20), (name, shift)
        touching = _touches(gt, *SIZE).any()
        assert ("OV" in attrs) == (touching and meta["generator"]["stats"]["min_visible_fraction"] < 0.85)
        if "OV" not in attrs:
            assert not touching, name
        assert ("LR" in attrs) == (np.median(gt[:, 2] * gt[:, 3]) < 400), name
        # nothing is claimed that was not planned, except LR that small frames may force
        assert attrs - set(meta["generator"]["planned"]) <= {"LR"}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder, seed in ((a, 3), (b, 3), (c, 4)):
        synthetic.generate(str(folder), 2, seed=seed, split="val", frames=(12, 16), size=(128, 96),
                           progress=False)
    for name in ("SynVal001", "SynVal002"):
        for rel in ("groundtruth_rect.txt", "attributes.json", "img/0001.jpg", "img/0012.jpg"):
            assert (a / name / rel).read_bytes() == (b / name / rel).read_bytes(), rel
        assert (a / name / "groundtruth_rect.txt").read_bytes() != \
            (c / name / "groundtruth_rect.txt").read_bytes()


@pytest.mark.parametrize("attrs", [["SV", "MB"], ["FM", "IV"], ["OV", "OCC"], ["LR", "BC"],
                                   ["IPR", "OPR", "DEF"]])
def test_requested_attributes_are_really_exercised(attrs):
    p = synthetic.plan(5, "train", 1, frames=(50, 50), size=SIZE, attributes=attrs)
    frames, boxes, labels, stats = synthetic.render(p)
    assert labels == [a for a in planning.OTB_ATTRIBUTES if a in attrs], stats
    shift = np.hypot(*np.diff(_centres(boxes), axis=0).T)
    area = boxes[:, 2] * boxes[:, 3]
    images = np.array([fr.image for fr in frames], dtype=np.float32)
    if "SV" in attrs:  # no rotation planned here, so the box follows the scale
        assert np.sqrt(area.max() / area.min()) >= 1.5
    else:
        assert stats["scale_ratio"] < 1.2
    assert (shift.max() > 20) == ("FM" in attrs)
    assert _touches(boxes, *SIZE).any() == ("OV" in attrs)
    if "OV" in attrs:  # the box is truncated: smaller than where the target is fully inside
        assert area.min() < 0.85 * np.median(area[~_touches(boxes, *SIZE)])
    assert (np.median(area) < 400) == ("LR" in attrs)
    if "IV" in attrs:  # mean brightness inside the box changes a lot
        means = [images[f, int(y):int(y + h), int(x):int(x + w)].mean() for f, (x, y, w, h) in enumerate(boxes)]
        assert max(means) / min(means) >= 1.3
    else:
        assert stats["illumination_ratio"] < 1.2
    if "MB" in attrs:  # some frames lose much of their sharpness
        import cv2

        sharp = [cv2.Laplacian(im.mean(axis=2), cv2.CV_32F).var() for im in images]
        assert min(sharp) < 0.6 * max(sharp)
    else:
        assert stats["max_blur_px"] == 0
    assert (stats["max_occluded_fraction"] >= 0.3) == ("OCC" in attrs)
    assert (stats["min_distractor_gap"] is not None) == ("BC" in attrs)
    assert (stats["rotation_range_deg"] >= 45) == ("IPR" in attrs)
    assert (stats["max_out_of_plane_deg"] >= 40) == ("OPR" in attrs)
    assert (stats["max_deformation"] >= 0.06) == ("DEF" in attrs)


def test_ground_truth_is_the_tight_box_of_the_rendered_target():
    p = synthetic.plan(2, "test", 7, frames=(30, 30), size=SIZE, attributes=["OCC", "IPR"])
    with_t, boxes, _, _ = synthetic.render(p, keep_masks=True)
    without, _, _, _ = synthetic.render(p, draw_target=False)
    assert max(fr.occluded_fraction for fr in with_t) >= 0.3  # the occluder really passes over
    for f, (a, b) in enumerate(zip(with_t, without)):
        rows, cols = np.flatnonzero(a.mask.any(1)), np.flatnonzero(a.mask.any(0))
        tight = [cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1]
        assert list(boxes[f]) == tight, f
        # every pixel the target changes lies in its box (1 px of anti-aliased fringe allowed)
        diff = np.abs(a.image.astype(int) - b.image.astype(int)).max(axis=2) > 10
        ys, xs = np.nonzero(diff)
        x, y, w, h = boxes[f]
        assert len(xs) > 0
        assert xs.min() >= x - 1 and xs.max() <= x + w and ys.min() >= y - 1 and ys.max() <= y + h, f
        if a.occluded_fraction == 0:  # unoccluded: the change spans the box
            assert xs.max() - xs.min() + 1 >= 0.8 * w and ys.max() - ys.min() + 1 >= 0.8 * h, f


def _photo_rects(meta_gen):
    items = [meta_gen["target"]["source"], meta_gen["background"]["source"]]
    items += [d["source"] for d in meta_gen["distractors"]] + [o["source"] for o in meta_gen["occluders"]]
    for src in items:
        if src["kind"] == "photo":
            yield src["id"], src.get("crop", src["split_region"])


def _overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_splits_share_no_source_pixels_and_no_seeds(tmp_path):
    if not sources.available_photos():
        pytest.skip("scikit-image's photographs are not installed")
    rects = {}
    for split in synthetic.SPLITS:
        out = tmp_path / split
        synthetic.generate(str(out), 5, seed=0, split=split, frames=(3, 3), size=(96, 72), progress=False)
        rects[split] = []
        for name in sorted(os.listdir(out)):
            meta, _ = _read(out / name)
            assert meta["generator"]["sequence_seed"] == synthetic.sequence_seed(0, split, int(name[-3:]))
            rects[split] += list(_photo_rects(meta["generator"]))
        assert rects[split]
    used = {pid for r in rects.values() for pid, _ in r}
    assert len(used) > 1
    for s1, s2 in (("train", "val"), ("train", "test"), ("val", "test")):
        for pid1, r1 in rects[s1]:
            for pid2, r2 in rects[s2]:
                assert not (pid1 == pid2 and _overlap(r1, r2)), (s1, pid1, r1, s2, r2)
    # the partition itself: three disjoint regions covering each photograph
    for pid in sources.available_photos():
        shape = sources.load_photo(pid).shape
        regions = [sources.split_region(pid, s, shape) for s in synthetic.SPLITS]
        assert sum(r[2] * r[3] for r in regions) == shape[0] * shape[1]
        assert not any(_overlap(regions[i], regions[j]) for i in range(3) for j in range(i + 1, 3))
    # seeds: no sequence of one split shares a seed with any of another, whatever the base seeds
    seeds = {s: {synthetic.sequence_seed(b, s, i) for b in range(4) for i in range(1, 300)}
             for s in synthetic.SPLITS}
    assert not (seeds["train"] & seeds["val"] or seeds["train"] & seeds["test"] or seeds["val"] & seeds["test"])
    assert len(seeds["train"]) == 4 * 299


def test_resume_skips_complete_sequences_and_refuses_foreign_ones(tmp_path):
    out = tmp_path / "bench"
    kw = dict(frames=(4, 6), size=(96, 72), progress=False)
    synthetic.generate(str(out), 2, seed=1, split="test", **kw)
    first = (out / "SynTest001" / "groundtruth_rect.txt").stat()
    os.makedirs(out / ".SynTest003.partial-999" / "img")  # left over by an interrupted run
    assert synthetic.generate(str(out), 3, seed=1, split="test", **kw) == ["SynTest001", "SynTest002", "SynTest003"]
    again = (out / "SynTest001" / "groundtruth_rect.txt").stat()
    assert (first.st_ino, first.st_mtime_ns) == (again.st_ino, again.st_mtime_ns)  # skipped
    assert sorted(os.listdir(out)) == ["SynTest001", "SynTest002", "SynTest003"]
    with pytest.raises(UserError, match="overwrite"):
        synthetic.generate(str(out), 1, seed=2, split="test", **kw)
    synthetic.generate(str(out), 1, seed=2, split="test", overwrite=True, **kw)
    assert _read(out / "SynTest001")[0]["seed"] == 2
    (out / "SynTest002" / "groundtruth_rect.txt").write_text("1,2,3,4\n")  # damaged
    with pytest.raises(UserError):
        synthetic.generate(str(out), 2, seed=2, split="test", **kw)


def test_interrupted_write_leaves_no_half_sequence(tmp_path, monkeypatch):
    real = synthetic.iter_frames

    def dying(plan, **kwargs):
        for f, frame in enumerate(real(plan, **kwargs)):
            if f == 2:
                raise KeyboardInterrupt
            yield frame

    monkeypatch.setattr(synthetic.benchmark, "iter_frames", dying)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate(str(tmp_path), 1, seed=0, split="train", frames=(5, 5), size=(96, 72), progress=False)
    assert os.listdir(tmp_path) == []


def test_procedural_fallback_without_scikit_image(monkeypatch):
    monkeypatch.setattr(sources, "available_photos", lambda: ())
    p = synthetic.plan(0, "test", 1, frames=(5, 5), size=(96, 72))
    frames, boxes, _, _ = synthetic.render(p)
    assert len(frames) == 5 and np.all(boxes[:, 2:] > 0)
    for info in (p.info["target"], p.info["background"]):
        assert info["source"]["kind"] == "procedural"


@pytest.mark.parametrize("argv, words", [
    (["--frames", "10:5"], "--frames"),
    (["--frames", "ten"], "--frames"),
    (["--size", "abc"], "--size"),
    (["--size", "10x10"], "--size"),
    (["--sequences", "many"], "--sequences"),
    (["--seed", "-1"], "--seed"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, words):
    assert main(["synth", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("metatrack synth: error:") and words in err
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


def test_cli_refuses_a_file_and_writes_sequences(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["synth", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a folder" in err
    out = tmp_path / "S"
    assert main(["synth", str(out), "--sequences", "2", "--frames", "3:4", "--size", "96x72",
                 "--split", "val", "--seed", "5", "--no-progress"]) == 0
    assert sorted(os.listdir(out)) == ["SynVal001", "SynVal002"]
    assert _read(out / "SynVal002")[0]["seed"] == 5


# ----------------------------------------------------------------------------------------------
# Image folders (--objects / --backgrounds) and the footage profile
# ----------------------------------------------------------------------------------------------

from otb_eval.synthetic import footage, library, packages  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tiny cut-outs with alpha in three categories, two plain photographs, and backgrounds."""
    import cv2

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for cat in ("fruit", "birds", "tools"):
        os.makedirs(root / "objects" / cat)
        for i in range(10):
            h, w = int(rng.integers(30, 60)), int(rng.integers(30, 60))
            bgra = np.zeros((h, w, 4), np.uint8)
            bgra[..., :3] = rng.integers(0, 255, (h, w, 3))
            cv2.ellipse(bgra, (w // 2, h // 2), (w // 2 - 2, h // 3), 0, 0, 360, (0, 0, 0, 255), -1)
            bgra[..., :3] = np.where(bgra[..., 3:] > 0, rng.integers(0, 255, (h, w, 3)), 0)
            cv2.imwrite(str(root / "objects" / cat / f"{cat}{i}.png"), bgra)
    os.makedirs(root / "objects" / "photos")
    for i in range(2):
        cv2.imwrite(str(root / "objects" / "photos" / f"p{i}.jpg"), rng.integers(0, 255, (80, 90, 3)).astype(np.uint8))
    os.makedirs(root / "backgrounds")
    for i in range(30):
        img = cv2.resize(rng.integers(0, 255, (12, 16, 3)).astype(np.uint8), (200, 150))
        cv2.imwrite(str(root / "backgrounds" / f"bg{i}.jpg"), img)
    (root / "backgrounds" / "notes.txt").write_text("not an image")
    os.makedirs(root / "empty")
    return str(root / "objects"), str(root / "backgrounds"), str(root / "empty")


def test_folders_and_footage_are_deterministic_per_seed(folders, tmp_path):
    objects, backgrounds, _ = folders
    kw = dict(frames=(70, 80), size=(128, 96), progress=False, profile="footage", objects=objects,
              backgrounds=backgrounds)
    for folder, seed in (("a", 3), ("b", 3), ("c", 4)):
        synthetic.generate(str(tmp_path / folder), 2, seed=seed, split="train", **kw)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for name in ("SynTrain001", "SynTrain002"):
        for rel in ("groundtruth_rect.txt", "attributes.json", "img/0001.jpg", "img/0050.jpg"):
            assert (a / name / rel).read_bytes() == (b / name / rel).read_bytes(), rel
        assert (a / name / "attributes.json").read_bytes() != (c / name / "attributes.json").read_bytes()
        meta, gt = _read(a / name)
        gen = meta["generator"]
        assert gen["profile"] == "footage" and gen["target"]["source"]["kind"] == "library"
        assert gen["objects"]["files"] == 32 and gen["backgrounds"]["files"] == 30  # notes.txt left out
        assert sum(gen["objects"]["per_split"].values()) == 32 and len(gen["objects"]["sha256"]) == 64
        assert gen["background"]["source"]["library"] == "backgrounds"
        assert "codec" in gen["stats"]
        absent = gen.get("absent_frames", [])  # exits: zero boxes exactly there, a box elsewhere
        assert [f for f in range(len(gt)) if gt[f, 2] == 0] == list(absent)
        assert gt[0, 2] > 0
    sources = packages.benchmark_sources(str(a))        # what weights trained on it record
    assert sources["profiles"] == ["footage"] and sources["objects"]["files"] == 32
    assert sources["backgrounds"]["sha256"] == gen["backgrounds"]["sha256"]
    assert packages.benchmark_sources(str(tmp_path / "nowhere")) == {}
    # a rerun with the same settings resumes; with another profile it refuses
    assert synthetic.generate(str(a), 2, seed=3, split="train", **kw) == ["SynTrain001", "SynTrain002"]
    with pytest.raises(UserError, match="overwrite"):
        synthetic.generate(str(a), 1, seed=3, split="train", frames=(70, 80), size=(128, 96), progress=False)


def test_images_are_split_by_source_image(folders, tmp_path):
    objects, backgrounds, _ = folders
    lib = library.load_library(objects, "objects")
    assert {im.split for im in lib.images} == set(synthetic.SPLITS)
    for im in lib.images:
        assert im.split == library.split_of(im.rel) and im.category == os.path.dirname(im.rel)
    # copies of one picture share a split: mirrored stamps, one wallpaper at several resolutions
    assert library.split_key("a/Dreydl_mirror.png") == library.split_key("a/dreydl.png")
    assert library.split_key("m/Elephants_3840x2160.jpg") == library.split_key("m/Elephants.jpg")
    shares = [library.split_of(f"x/{i}.png") for i in range(2000)]
    assert 0.65 < shares.count("train") / 2000 < 0.75 and 0.12 < shares.count("test") / 2000 < 0.18
    used = {}
    for split in synthetic.SPLITS:
        opts = footage.profile_options("footage", lib, library.load_library(backgrounds, "backgrounds"))
        used[split] = set()
        for i in range(1, 5):
            p = synthetic.plan(0, split, i, frames=(10, 10), size=(96, 72), options=opts)
            srcs = [p.target.provenance, p.background.provenance] + [d["sprite"].provenance for d in p.distractors]
            for src in srcs:
                if src.get("kind") == "library":
                    assert src["split"] == split
                    used[split].add((src["library"], src["file"]))
    assert used["train"] and used["val"] and used["test"]
    assert not (used["train"] & used["val"] or used["train"] & used["test"] or used["val"] & used["test"])


def test_codec_changes_pixels_but_not_boxes():
    raw = synthetic.render(synthetic.plan(1, "test", 2, frames=(20, 20), size=(128, 96)))
    p = synthetic.plan(1, "test", 2, frames=(20, 20), size=(128, 96), options=footage.PlanOptions(codec=True))
    assert p.codec is not None
    coded = synthetic.render(p)
    assert np.array_equal(raw[1], coded[1])
    diff = np.mean([np.abs(a.image.astype(int) - b.image.astype(int)).mean() for a, b in zip(raw[0], coded[0])])
    assert diff > 1.0
    assert coded[0][0].image.shape == raw[0][0].image.shape


def test_same_category_distractors_come_from_the_target_category(folders):
    lib = library.load_library(folders[0], "objects")
    opts = footage.PlanOptions(objects=lib, category_distractors=True)
    seen = 0
    for i in range(1, 9):
        p = synthetic.plan(2, "train", i, frames=(30, 30), size=(128, 96), attributes=["BC"], options=opts)
        target = p.target.provenance
        if target["category"] == "photos":  # the only other photograph may sit in another split
            continue
        for d in p.distractors:
            src = d["sprite"].provenance
            assert src["category"] == target["category"] and src["file"] != target["file"]
            assert src["split"] == "train"
            seen += 1
        frames, boxes, labels, _ = synthetic.render(p)
        assert "BC" in labels
    assert seen >= 8


def test_default_profile_has_none_of_the_new_nuisances(tmp_path):
    assert not footage.PROFILES["default"].dynamic and footage.run_options() == (None, {})
    assert all(getattr(footage.PROFILES["footage"], d) for d in footage.DYNAMICS)
    for i in range(1, 6):
        p = synthetic.plan(0, "test", i)
        assert p.pitch is None and p.exposure is None and p.codec is None and not p.absent_ok
        assert not any(k in p.info for k in ("dynamics", "turns", "handheld", "exits", "hands", "drift"))
        assert all("angle" not in o and "zoom" not in o for o in p.occluders)
        assert all("base" not in d for d in p.distractors)
    synthetic.generate(str(tmp_path), 1, seed=0, split="test", frames=(5, 5), size=(96, 72), progress=False)
    gen = _read(tmp_path / "SynTest001")[0]["generator"]
    assert not {"profile", "objects", "backgrounds", "absent_frames", "codec"} & (set(gen) | set(gen["stats"]))


def test_long_footage_sequences(tmp_path):
    out = tmp_path / "long"
    assert main(["synth", str(out), "--sequences", "1", "--profile", "footage", "--frames", "300:1000",
                 "--size", "96x72", "--no-progress"]) == 0
    meta, gt = _read(out / "SynTest001")
    assert 300 <= meta["frames"] <= 1000 and len(gt) == meta["frames"]
    assert meta["generator"]["frames_range"] == [300, 1000]


def test_folder_without_images_is_one_user_error_line(folders, tmp_path, capsys):
    objects, _, empty = folders
    assert main(["synth", str(tmp_path / "o"), "--objects", empty]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--objects" in err and "no usable image" in err
    assert main(["synth", str(tmp_path / "o"), "--backgrounds", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_tuxpaint_keep_list_and_package_versions():
    assert packages.keep_stamp("animals/birds/owl.png")
    assert packages.keep_stamp("food/fruit/kiwi.png")
    assert not packages.keep_stamp("animals/birds/cartoon/tweety.png")
    assert not packages.keep_stamp("symbols/alphabets/asl/a.png")
    assert not packages.keep_stamp("seasonal/christmas/santa.png")
    assert not packages.keep_stamp("food/pizza.png")
    assert not packages.keep_stamp("animals/mammals/bears/toys/edward_bear.png")
    assert packages.installed_versions(["no-such-package-for-metatrack"]) == {}
    assert packages.used_packages(["/nonexistent/folder"]) == {}
def test_visibility_truth_matches_the_recorded_stats(bench):
    from otb_eval.synthetic.presence import absent_frames, read_visibility

    out, names = bench
    for name in names:
        meta, gt = _read(out / name)
        vis = read_visibility(str(out / name))
        stats = meta["generator"]["stats"]
        assert vis.shape == (len(gt), 2) and np.all((vis >= 0) & (vis <= 1))
        assert vis[:, 0].min() == pytest.approx(stats["min_visible_fraction"], abs=1e-4)
        assert vis[:, 1].max() == pytest.approx(stats["max_occluded_fraction"], abs=1e-4)
        assert np.array_equal(absent_frames(vis), vis[:, 0] * (1 - vis[:, 1]) < 0.1)
    assert read_visibility(str(out)) is None     # a folder without the file (older sequences)
    assert absent_frames(np.array([[1.0, 0.95], [0.05, 0.0], [0.5, 0.5]])).tolist() == [True, True, False]
