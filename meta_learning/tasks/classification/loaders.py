"""Loaders of real few-shot data sets in the layouts users have on disk (nothing is downloaded).

- ``miniimagenet``: Ravi and Larochelle's ``train.csv`` / ``val.csv`` / ``test.csv`` (``filename,label``)
  beside ``images/``; or the pickles ``mini-imagenet-cache-{train,val,test}.pkl`` holding
  ``{"image_data": (N, 84, 84, 3) uint8, "class_dict": {label: [indices]}}``.
- ``tieredimagenet``: ``{train,val,test}_images.npz`` (key ``images``, (N, 84, 84, 3) uint8) or
  ``{split}_images_png.pkl`` (a list of PNG-encoded images), with ``{split}_labels.pkl`` holding
  ``label_specific`` (one class index per image) and optionally ``label_specific_str``.
- ``cifarfs`` / ``fc100``: the CIFAR-100 python pickles (``cifar-100-python/{train,test,meta}``, or those
  three files in the root); CIFAR-FS uses Bertinetto et al.'s 64/16/20 class split, FC100 Oreshkin et
  al.'s 12/4/4 superclass split; each class pools its 600 train and test images.
- ``omniglot``: ``images_background/<alphabet>/<character>/*.png`` and ``images_evaluation/...``; the
  evaluation alphabets are the test split, the last 5 background alphabets (sorted) validation, the other
  25 training; ink is made bright on a dark background, as in the glyph benchmark.
- ``folder``: one subfolder of images per class (torchvision's ImageFolder layout); either
  ``train/ val/ test/`` folders of class folders, or class folders split 64/16/20 (%) by a fixed shuffle.
"""
from __future__ import annotations

import csv
import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from foundation.errors import UserError

from .episodes import ArrayPool, ClassPool

__all__ = ["LOADERS", "FilePool", "CIFAR_FS_SPLIT", "FC100_SUPERCLASS_SPLIT", "IMAGE_EXTENSIONS"]

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")
CIFAR_FS_SPLIT = {
    "val": ["beaver", "beetle", "butterfly", "camel", "cattle", "crab", "crocodile", "flatfish", "lamp",
            "maple_tree", "motorcycle", "otter", "sea", "shark", "television", "tractor"],
    "test": ["baby", "bed", "bicycle", "chimpanzee", "fox", "leopard", "man", "pickup_truck", "plain", "poppy",
             "rocket", "rose", "snail", "sweet_pepper", "table", "telephone", "wardrobe", "whale", "woman", "worm"],
}
# CIFAR-100 coarse label indices (alphabetical superclass order of the meta file)
FC100_SUPERCLASS_SPLIT = {"train": [1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19], "val": [8, 11, 13, 16],
                          "test": [0, 7, 12, 14]}


def _resize(img, size: int, channels: int) -> np.ndarray:
    """PIL image -> uint8 (size, size, channels)."""
    from PIL import Image

    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR if min(img.size) >= size else Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _resize_array(arr: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, size, size, C), unchanged when already that size."""
    from PIL import Image

    if arr.shape[1] == size and arr.shape[2] == size:
        return arr
    return np.stack([_resize(Image.fromarray(a), size, arr.shape[3]) for a in arr])


class FilePool:
    """Classes as lists of image files, decoded and resized on first use (up to ``cache`` images
    kept in memory)."""

    def __init__(self, files: Sequence[Sequence[str]], names: Sequence[str], image_size: int, channels: int = 3,
                 invert: bool = False, cache: int = 200_000) -> None:
        self.files = [list(f) for f in files]
        self.names = list(names)
        self.image_size, self.channels, self.invert = image_size, channels, invert
        self._cache: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._limit = cache

    def __len__(self) -> int:
        return len(self.files)

    def count(self, c: int) -> int:
        return len(self.files[c])

    def name(self, c: int) -> str:
        return self.names[c]

    def _load(self, path: str) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        hit = self._cache.get(path)
        if hit is not None:
            return hit
        try:
            with Image.open(path) as img:
                arr = _resize(img, self.image_size, self.channels)
        except (OSError, UnidentifiedImageError) as exc:
            raise UserError(f"cannot read image {path}: {exc}") from None
        if self.invert:
            arr = 255 - arr
        self._cache[path] = arr
        if len(self._cache) > self._limit:
            self._cache.popitem(last=False)
        return arr

    def images(self, c: int, idx: Sequence[int]) -> np.ndarray:
        x = np.stack([self._load(self.files[c][int(i)]) for i in idx])
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(f"{what}: {path} not found")
    return path


def _unpickle(path: Path) -> object:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def _images_in(folder: Path) -> List[str]:
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


# ---------------------------------------------------------------------------- miniImageNet
def _mini_csv(root: Path, size: int) -> Dict[str, ClassPool]:
    images = _need(root / "images", "miniImageNet (CSV layout) needs the images folder")
    pools = {}
    for split in SPLITS:
        path = _need(root / f"{split}.csv", "miniImageNet (CSV layout)")
        by_label: Dict[str, List[str]] = OrderedDict()
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header[:2]] != ["filename", "label"]:
                raise UserError(f"{path}: expected the header 'filename,label', got {header}")
            for line, row in enumerate(reader, start=2):
                if len(row) < 2:
                    raise UserError(f"{path} line {line}: expected 'filename,label'")
                file = images / row[0]
                if not file.is_file():
                    raise UserError(f"{path} line {line}: image {file} not found")
                by_label.setdefault(row[1], []).append(str(file))
        if not by_label:
            raise UserError(f"{path} lists no images")
        pools[split] = FilePool(list(by_label.values()), list(by_label), size, 3)
    return pools


def _mini_pickle(root: Path, size: int) -> Dict[str, ClassPool]:
    pools = {}
    for split in SPLITS:
        path = _need(root / f"mini-imagenet-cache-{split}.pkl", "miniImageNet (pickle layout)")
        data = _unpickle(path)
        if not isinstance(data, dict) or "image_data" not in data or "class_dict" not in data:
            raise UserError(f"{path}: expected a dict with 'image_data' and 'class_dict'")
        imgs = np.asarray(data["image_data"])
        if imgs.ndim != 4 or imgs.shape[3] != 3:
            raise UserError(f"{path}: image_data must be (N, H, W, 3), got {imgs.shape}")
        names = sorted(data["class_dict"])
        pools[split] = ArrayPool([_resize_array(imgs[np.asarray(data["class_dict"][n])], size) for n in names],
                                 names)
    return pools


def load_miniimagenet(root: str, size: int) -> Dict[str, ClassPool]:
    r = Path(root)
    if (r / "train.csv").exists():
        return _mini_csv(r, size)
    if (r / "mini-imagenet-cache-train.pkl").exists():
        return _mini_pickle(r, size)
    raise UserError(f"no miniImageNet in {root}: expected train.csv/val.csv/test.csv with images/, or "
                    f"mini-imagenet-cache-{{train,val,test}}.pkl")


# ---------------------------------------------------------------------------- tieredImageNet
def _decode_pngs(items: Sequence, path: Path) -> np.ndarray:
    from PIL import Image

    out = []
    for k, blob in enumerate(items):
        try:
            with Image.open(io.BytesIO(bytes(np.asarray(blob, dtype=np.uint8)))) as img:
                out.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
        except OSError as exc:
            raise UserError(f"{path}: image {k} is not a readable PNG ({exc})") from None
    return np.stack(out)


def load_tieredimagenet(root: str, size: int) -> Dict[str, ClassPool]:
    r = Path(root)
    if not ((r / "train_images.npz").exists() or (r / "train_images_png.pkl").exists()):
        raise UserError(f"no tieredImageNet in {root}: expected {{train,val,test}}_images.npz or "
                        f"{{split}}_images_png.pkl with {{split}}_labels.pkl")
    pools = {}
    for split in SPLITS:
        npz, png = r / f"{split}_images.npz", r / f"{split}_images_png.pkl"
        if npz.exists():
            try:
                with np.load(npz) as z:
                    imgs = z["images"]
            except (OSError, KeyError, ValueError) as exc:
                raise UserError(f"cannot read images from {npz}: {exc}") from None
        elif png.exists():
            imgs = _decode_pngs(_unpickle(png), png)
        else:
            raise UserError(f"tieredImageNet: neither {npz} nor {png} found")
        labels_path = _need(r / f"{split}_labels.pkl", "tieredImageNet")
        meta = _unpickle(labels_path)
        if not isinstance(meta, dict) or "label_specific" not in meta:
            raise UserError(f"{labels_path}: expected a dict with 'label_specific'")
        labels = np.asarray(meta["label_specific"])
        if imgs.ndim != 4 or imgs.shape[3] != 3 or len(labels) != len(imgs):
            raise UserError(f"tieredImageNet {split}: {len(labels)} labels for images of shape {imgs.shape}")
        strs = meta.get("label_specific_str")
        classes = sorted(set(int(v) for v in labels))
        names = [str(strs[c]) if strs is not None and c < len(strs) else str(c) for c in classes]
        pools[split] = ArrayPool([_resize_array(imgs[labels == c], size) for c in classes], names)
    return pools


# ---------------------------------------------------------------------------- CIFAR-FS / FC100
def _cifar100(root: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[str]]:
    r = Path(root)
    base = r / "cifar-100-python" if (r / "cifar-100-python").is_dir() else r
    if not (base / "train").exists():
        raise UserError(f"no CIFAR-100 in {root}: expected cifar-100-python/{{train,test,meta}} "
                        f"(the python version of CIFAR-100)")
    data, fine, coarse = [], [], []
    for part in ("train", "test"):
        d = _unpickle(_need(base / part, "CIFAR-100"))
        if not isinstance(d, dict) or "data" not in d or "fine_labels" not in d or "coarse_labels" not in d:
            raise UserError(f"{base / part}: expected a dict with data, fine_labels and coarse_labels")
        x = np.asarray(d["data"], dtype=np.uint8)
        if x.ndim != 2 or x.shape[1] != 3072:
            raise UserError(f"{base / part}: data must be (N, 3072), got {x.shape}")
        data.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        fine.append(np.asarray(d["fine_labels"]))
        coarse.append(np.asarray(d["coarse_labels"]))
    meta = _unpickle(_need(base / "meta", "CIFAR-100"))
    if not isinstance(meta, dict) or "fine_label_names" not in meta:
        raise UserError(f"{base / 'meta'}: expected a dict with fine_label_names")
    return np.concatenate(data), np.concatenate(fine), np.concatenate(coarse), list(meta["fine_label_names"])


def _cifar_pools(root: str, size: int, assign: Callable[[int, str, int], str]) -> Dict[str, ClassPool]:
    x, fine, coarse, names = _cifar100(root)
    split_of = {}
    for c, name in enumerate(names):
        sup = np.unique(coarse[fine == c])
        split_of[c] = assign(c, name, int(sup[0]) if len(sup) else -1)
    pools = {}
    for split in SPLITS:
        classes = [c for c in range(len(names)) if split_of[c] == split]
        pools[split] = ArrayPool([_resize_array(x[fine == c], size) for c in classes], [names[c] for c in classes])
    return pools


def load_cifarfs(root: str, size: int) -> Dict[str, ClassPool]:
    def assign(c: int, name: str, sup: int) -> str:
        return next((s for s, names in CIFAR_FS_SPLIT.items() if name in names), "train")
    return _cifar_pools(root, size, assign)


def load_fc100(root: str, size: int) -> Dict[str, ClassPool]:
    def assign(c: int, name: str, sup: int) -> str:
        return next((s for s, sups in FC100_SUPERCLASS_SPLIT.items() if sup in sups), "train")
    return _cifar_pools(root, size, assign)


# ---------------------------------------------------------------------------- Omniglot
def _characters(folder: Path) -> List[Tuple[str, List[str]]]:
    out = []
    for alphabet in sorted(p for p in folder.iterdir() if p.is_dir()):
        for char in sorted(p for p in alphabet.iterdir() if p.is_dir()):
            files = _images_in(char)
            if files:
                out.append((f"{alphabet.name}/{char.name}", files))
    return out


def load_omniglot(root: str, size: int) -> Dict[str, ClassPool]:
    r = Path(root)
    bg = _need(r / "images_background", "Omniglot needs images_background/ and images_evaluation/")
    ev = _need(r / "images_evaluation", "Omniglot needs images_background/ and images_evaluation/")
    alphabets = sorted(p.name for p in bg.iterdir() if p.is_dir())
    if len(alphabets) < 2:
        raise UserError(f"{bg} holds {len(alphabets)} alphabet folders; Omniglot's has 30")
    val_alphabets = set(alphabets[-5:]) if len(alphabets) > 5 else {alphabets[-1]}
    chars = _characters(bg)
    parts = {"train": [c for c in chars if c[0].split("/")[0] not in val_alphabets],
             "val": [c for c in chars if c[0].split("/")[0] in val_alphabets], "test": _characters(ev)}
    for split, items in parts.items():
        if not items:
            raise UserError(f"Omniglot in {root}: no character images for the {split} split")
    return {s: FilePool([f for _, f in items], [n for n, _ in items], size, 1, invert=True)
            for s, items in parts.items()}


# ---------------------------------------------------------------------------- image folder
def _class_folders(folder: Path) -> List[Tuple[str, List[str]]]:
    out = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = _images_in(d)
        if files:
            out.append((d.name, files))
    return out


def load_folder(root: str, size: int) -> Dict[str, ClassPool]:
    r = Path(root)
    if all((r / s).is_dir() for s in SPLITS):
        parts = {s: _class_folders(r / s) for s in SPLITS}
    else:
        classes = _class_folders(r)
        if len(classes) < 3:
            raise UserError(f"{root}: found {len(classes)} class folders with images; need at least 3 "
                            f"(one subfolder of images per class, or train/ val/ test/ of those)")
        order = np.random.default_rng(0).permutation(len(classes))
        n_test = max(1, round(0.2 * len(classes)))
        n_val = max(1, round(0.16 * len(classes)))
        pick = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        parts = {s: [classes[i] for i in sorted(idx)] for s, idx in pick.items()}
    for split, items in parts.items():
        if not items:
            raise UserError(f"{root}: no class folders with images for the {split} split")
    return {s: FilePool([f for _, f in items], [n for n, _ in items], size, 3) for s, items in parts.items()}


LOADERS: Dict[str, Callable[[str, int], Dict[str, ClassPool]]] = {
    "miniimagenet": load_miniimagenet, "tieredimagenet": load_tieredimagenet, "cifarfs": load_cifarfs,
    "fc100": load_fc100, "omniglot": load_omniglot, "folder": load_folder,
}
