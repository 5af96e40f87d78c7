"""Every loader on a small tree generated here in that data set's on-disk layout; bad trees are one
clear line (UserError, exit 2 from the CLI)."""
import csv
import io
import pickle

import numpy as np
import pytest
from PIL import Image

from foundation.errors import UserError
from meta_learning.cli import main
from meta_learning.tasks.classification.datasets import load_pools
from meta_learning.tasks.classification.loaders import CIFAR_FS_SPLIT, FC100_SUPERCLASS_SPLIT

CIFAR100 = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel "
    "can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur "
    "dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion "
    "lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree "
    "pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea "
    "seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank "
    "telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm").split()


def _rgb(value: int, size: int = 10) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _sizes(pools):
    return {s: (len(p), [p.count(c) for c in range(len(p))]) for s, p in pools.items()}


def test_miniimagenet_csv_layout(tmp_path):
    (tmp_path / "images").mkdir()
    k = 0
    for split, classes in (("train", ["n01", "n02", "n03"]), ("val", ["n04", "n05"]), ("test", ["n06", "n07"])):
        with open(tmp_path / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["filename", "label"])
            for c in classes:
                for i in range(4):
                    name = f"{c}{i:08d}.jpg"
                    Image.fromarray(_rgb(k, 30)).save(tmp_path / "images" / name)
                    w.writerow([name, c])
                    k += 1
    pools = load_pools("miniimagenet", str(tmp_path), 16)
    assert _sizes(pools) == {"train": (3, [4, 4, 4]), "val": (2, [4, 4]), "test": (2, [4, 4])}
    x = pools["test"].images(1, [0, 3])
    assert x.shape == (2, 3, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert pools["test"].name(1) == "n07"
    (tmp_path / "images" / "n0700000003.jpg").unlink()
    with pytest.raises(UserError, match="not found"):
        load_pools("miniimagenet", str(tmp_path), 16)


def test_miniimagenet_pickle_layout(tmp_path):
    for j, split in enumerate(("train", "val", "test")):
        imgs = np.stack([_rgb(100 * j + i, 84) for i in range(6)])
        data = {"image_data": imgs, "class_dict": {f"c{j}a": [0, 2, 4], f"c{j}b": [1, 3, 5]}}
        with open(tmp_path / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
            pickle.dump(data, f)
    pools = load_pools("miniimagenet", str(tmp_path), 84)
    assert _sizes(pools)["val"] == (2, [3, 3])
    got = pools["val"].images(1, [2])[0]                    # class c1b, its third image = image 5
    assert np.allclose(got, _rgb(105, 84).transpose(2, 0, 1) / 255.0)
    assert load_pools("miniimagenet", str(tmp_path), 32)["train"].images(0, [0]).shape == (1, 3, 32, 32)


def _tiered_labels(path, labels):
    with open(path, "wb") as f:
        pickle.dump({"label_specific": np.array(labels), "label_general": np.zeros(len(labels)),
                     "label_specific_str": [f"wn{i}" for i in range(max(labels) + 1)]}, f)


def test_tieredimagenet_npz_and_png_layouts(tmp_path):
    npz, png = tmp_path / "npz", tmp_path / "png"
    npz.mkdir(), png.mkdir()
    labels = [0, 1, 2, 0, 1, 2, 0, 1]
    for split in ("train", "val", "test"):
        imgs = np.stack([_rgb(i, 84) for i in range(len(labels))])
        np.savez(npz / f"{split}_images.npz", images=imgs)
        _tiered_labels(npz / f"{split}_labels.pkl", labels)
        blobs = []
        for im in imgs:
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="PNG")
            blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
        with open(png / f"{split}_images_png.pkl", "wb") as f:
            pickle.dump(blobs, f)
        _tiered_labels(png / f"{split}_labels.pkl", labels)
    a, b = load_pools("tieredimagenet", str(npz), 84), load_pools("tieredimagenet", str(png), 84)
    assert _sizes(a)["test"] == (3, [3, 3, 2]) == _sizes(b)["test"]
    assert np.array_equal(a["test"].images(1, [0, 1, 2]), b["test"].images(1, [0, 1, 2]))
    assert a["train"].name(2) == "wn2"
    _tiered_labels(npz / "val_labels.pkl", labels[:-1])
    with pytest.raises(UserError, match="labels"):
        load_pools("tieredimagenet", str(npz), 84)


def _cifar_tree(root, per_class=2):
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    coarse_of = [c // 5 for c in range(100)]    # synthetic superclasses: 5 consecutive classes each
    for part, n in (("train", per_class), ("test", 1)):
        fine = [c for c in range(100) for _ in range(n)]
        data = np.stack([_rgb(1000 * (part == "test") + i, 32).transpose(2, 0, 1).reshape(-1)
                         for i in range(len(fine))])
        with open(base / part, "wb") as f:
            pickle.dump({"data": data, "fine_labels": fine, "coarse_labels": [coarse_of[c] for c in fine]}, f)
    with open(base / "meta", "wb") as f:
        pickle.dump({"fine_label_names": CIFAR100, "coarse_label_names": [f"s{i}" for i in range(20)]}, f)
    return coarse_of


def test_cifarfs_and_fc100_from_the_cifar100_pickles(tmp_path):
    assert len(CIFAR100) == 100
    coarse_of = _cifar_tree(tmp_path)
    fs = load_pools("cifarfs", str(tmp_path))
    assert [len(fs[s]) for s in ("train", "val", "test")] == [64, 16, 20]
    assert sorted(fs["test"].names) == sorted(CIFAR_FS_SPLIT["test"])
    assert all(fs["val"].count(c) == 3 for c in range(16))        # 2 train + 1 test image pooled
    assert fs["train"].images(0, [0, 1, 2]).shape == (3, 3, 32, 32)
    fc = load_pools("fc100", str(tmp_path))
    assert [len(fc[s]) for s in ("train", "val", "test")] == [60, 20, 20]
    test_names = {CIFAR100[c] for c in range(100) if coarse_of[c] in FC100_SUPERCLASS_SPLIT["test"]}
    assert set(fc["test"].names) == test_names
    (tmp_path / "cifar-100-python" / "meta").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="meta"):
        load_pools("cifarfs", str(tmp_path))


def test_omniglot_background_and_evaluation(tmp_path):
    for part, alphabets in (("images_background", [f"Alpha{i}" for i in range(7)]), ("images_evaluation", ["Zeta"])):
        for a in alphabets:
            for ch in ("character01", "character02"):
                d = tmp_path / part / a / ch
                d.mkdir(parents=True)
                for k in range(3):
                    img = np.full((105, 105), 255, np.uint8)
                    img[20 + 10 * k:60, 30:40] = 0                     # black stroke on white
                    Image.fromarray(img).convert("1").save(d / f"{k:04d}_{k + 1:02d}.png")
    pools = load_pools("omniglot", str(tmp_path), 28)
    assert [len(pools[s]) for s in ("train", "val", "test")] == [4, 10, 2]
    assert pools["val"].name(0).startswith("Alpha2/")             # the last 5 background alphabets
    x = pools["test"].images(0, [0])
    assert x.shape == (1, 1, 28, 28) and x.max() > 0.9 and np.median(x) < 0.1   # bright ink, dark ground


def test_image_folder_split_and_presplit(tmp_path):
    flat = tmp_path / "flat"
    for c in range(10):
        (flat / f"class{c}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_rgb(10 * c + i, 20)).save(flat / f"class{c}" / f"{i}.png")
    (flat / "notes.txt").write_text("ignored")
    pools = load_pools("folder", str(flat), 16)
    names = [set(pools[s].names) for s in ("train", "val", "test")]
    assert [len(n) for n in names] == [6, 2, 2] and not (names[0] & names[2]) and not (names[1] & names[2])
    assert load_pools("folder", str(flat), 16)["test"].names == pools["test"].names      # fixed split
    pre = tmp_path / "pre"
    for s, cs in (("train", "abc"), ("val", "d"), ("test", "ef")):
        for c in cs:
            (pre / s / c).mkdir(parents=True)
            Image.fromarray(_rgb(ord(c), 20)).save(pre / s / c / "0.jpg")
    p2 = load_pools("folder", str(pre), 16)
    assert p2["test"].names == ["e", "f"] and p2["train"].images(2, [0]).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("dataset", ["miniimagenet", "tieredimagenet", "cifarfs", "fc100", "omniglot", "folder"])
def test_missing_or_empty_data_set_is_one_line(dataset, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = ["classification", "--dataset", dataset, "--ways", "5", "--shots", "1", "--out", str(tmp_path / "o")]
    assert main(argv + ["--root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(tmp_path / "empty") in err
    assert main(argv + ["--root", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(argv) == 2
    assert "--root" in capsys.readouterr().err
