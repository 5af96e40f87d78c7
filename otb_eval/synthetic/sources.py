"""Where the pixels of the synthetic benchmark come from, and how they are kept apart per split.

Two kinds of source:

* **Photographs** that ship inside the scikit-image package (``skimage/data/*.png|jpg``). They are
  read straight from the installed package folder with OpenCV; nothing is downloaded and
  scikit-image is not even imported. Pictures that scikit-image fetches on demand are never used.
* **Procedural textures** (value noise, gradients, stripes, checks, random shapes) drawn from a
  seeded generator; they always work, also without scikit-image.

Split disjointness. Every photograph is cut at its middle row and column into four quadrants. In
cyclic order (top-left, top-right, bottom-right, bottom-left) and starting at the photograph's
index in :data:`PHOTOS` modulo 4, the first two quadrants (a half) belong to ``train``, the next
one to ``val`` and the last one to ``test``. Every target crop, background viewport, distractor
and occluder taken from a photograph lies inside its split's region, so no pixel of a photograph
is shared between splits. Procedural textures are drawn from the sequence's generator, whose seed
space is itself disjoint per split (see :func:`otb_eval.synthetic.sequence_seed`).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SPLITS = ("train", "val", "test")

# (id, file inside skimage/data); one entry per scene (motorcycle_right repeats motorcycle_left,
# cat repeats chelsea, so they are left out).
PHOTOS = (
    ("astronaut", "astronaut.png"),
    ("chelsea", "chelsea.png"),
    ("coffee", "coffee.png"),
    ("rocket", "rocket.jpg"),
    ("camera", "camera.png"),
    ("coins", "coins.png"),
    ("moon", "moon.png"),
    ("clock", "clock_motion.png"),
    ("hubble", "hubble_deep_field.jpg"),
    ("ihc", "ihc.png"),
    ("retina", "retina.jpg"),
    ("cell", "cell.png"),
    ("motorcycle", "motorcycle_left.png"),
    ("brick", "brick.png"),
    ("grass", "grass.png"),
    ("gravel", "gravel.png"),
    ("page", "page.png"),
    ("text", "text.png"),
)

MAX_SIDE = 640  # larger photographs are shrunk once on loading (speed; regions use these pixels)


def skimage_data_dir() -> str | None:
    """The installed ``skimage/data`` folder, found without importing scikit-image."""
    try:
        spec = importlib.util.find_spec("skimage")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "data")
        if os.path.isdir(path):
            return path
    return None


@lru_cache(maxsize=None)
def load_photo(photo_id: str) -> np.ndarray | None:
    """The photograph ``photo_id`` as 8-bit BGR (shrunk to :data:`MAX_SIDE`), or None if absent."""
    import cv2

    folder = skimage_data_dir()
    files = dict(PHOTOS)
    if folder is None or photo_id not in files:
        return None
    path = os.path.join(folder, files[photo_id])
    try:  # Pillow, not cv2.imread: libpng prints a warning on page.png's colour profile
        from PIL import Image

        with Image.open(path) as pil:
            image = np.ascontiguousarray(np.asarray(pil.convert("RGB"))[:, :, ::-1])
    except (OSError, ImportError):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        return None
    h, w = image.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale < 1:
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return image


@lru_cache(maxsize=None)
def available_photos() -> tuple[str, ...]:
    """Ids of the photographs that can be read here (empty without scikit-image)."""
    folder = skimage_data_dir()
    if folder is None:
        return ()
    return tuple(pid for pid, name in PHOTOS if os.path.isfile(os.path.join(folder, name)))


def split_region(photo_id: str, split: str, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The ``(x, y, w, h)`` part of photograph ``photo_id`` (of ``shape`` h, w) owned by ``split``."""
    h, w = shape[:2]
    index = [pid for pid, _ in PHOTOS].index(photo_id)
    mx, my = w // 2, h // 2
    quads = [(0, 0, mx, my), (mx, 0, w - mx, my), (mx, my, w - mx, h - my), (0, my, mx, h - my)]
    order = [quads[(index + k) % 4] for k in range(4)]
    if split == "train":
        a, b = order[0], order[1]
        x0, y0 = min(a[0], b[0]), min(a[1], b[1])
        x1 = max(a[0] + a[2], b[0] + b[2])
        y1 = max(a[1] + a[3], b[1] + b[3])
        return (x0, y0, x1 - x0, y1 - y0)
    if split == "val":
        return order[2]
    if split == "test":
        return order[3]
    raise ValueError(f"unknown split {split!r}")


@dataclass
class Source:
    """A texture to sample pixels from and where it came from (for attributes.json)."""

    image: np.ndarray  # BGR uint8
    provenance: dict


def photo_source(photo_id: str, split: str) -> Source | None:
    """The split's region of photograph ``photo_id`` (None if the photograph is missing)."""
    image = load_photo(photo_id)
    if image is None:
        return None
    x, y, w, h = split_region(photo_id, split, image.shape)
    return Source(image[y:y + h, x:x + w], {"kind": "photo", "id": photo_id,
                                              "split_region": [x, y, w, h]})


# ----------------------------------------------------------------------------------------------
# Procedural textures
# ----------------------------------------------------------------------------------------------

PROCEDURAL = ("noise", "gradient", "stripes", "checks", "shapes")


def _value_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 4) -> np.ndarray:
    """Smooth fractal noise in [0, 1], shape (h, w)."""
    import cv2

    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    cells = int(rng.integers(2, 6))
    for _ in range(octaves):
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        cells *= 2
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _palette(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] (h, w) through a random 2-3 colour ramp to BGR float in [0, 255]."""
    n = int(rng.integers(2, 4))
    colours = rng.uniform(0, 255, size=(n, 3)).astype(np.float32)
    pos = np.linspace(0, 1, n, dtype=np.float32)
    out = np.empty(t.shape + (3,), np.float32)
    for c in range(3):
        out[..., c] = np.interp(t, pos, colours[:, c])
    return out


def procedural_texture(rng: np.random.Generator, h: int, w: int, kind: str | None = None) -> Source:
    """A seeded procedural texture of size (h, w) as a :class:`Source`."""
    import cv2

    kind = kind or PROCEDURAL[int(rng.integers(len(PROCEDURAL)))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "noise":
        base = _palette(rng, _value_noise(rng, h, w))
    elif kind == "gradient":
        angle = rng.uniform(0, np.pi)
        t = (xx * np.cos(angle) + yy * np.sin(angle))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        base = _palette(rng, 0.7 * t + 0.3 * _value_noise(rng, h, w))
    elif kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(6, 30)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
        base = _palette(rng, 0.75 * t + 0.25 * _value_noise(rng, h, w))
    elif kind == "checks":
        cell = rng.uniform(6, 28)
        t = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
        base = _palette(rng, 0.7 * t + 0.3 * _value_noise(rng, h, w))
    elif kind == "shapes":
        base = _palette(rng, _value_noise(rng, h, w, octaves=2))
        for _ in range(int(rng.integers(6, 20))):
            colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
            r = int(rng.integers(3, max(4, min(h, w) // 4)))
            if rng.random() < 0.5:
                cv2.circle(base, (cx, cy), r, colour, -1, cv2.LINE_AA)
            else:
                cv2.rectangle(base, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
    else:
        raise ValueError(f"unknown procedural texture {kind!r}")
    image = np.clip(base, 0, 255).astype(np.uint8)
    return Source(image, {"kind": "procedural", "texture": kind})


def pick_source(rng: np.random.Generator, split: str, min_h: int, min_w: int,
                photo_prob: float = 0.7, exclude: tuple[str, ...] = (),
                procedural_size: tuple[int, int] | None = None) -> Source:
    """A photograph region of ``split`` at least ``min_h`` x ``min_w`` big, else a procedural
    texture (of ``procedural_size`` (h, w) if given)."""
    photos = [p for p in available_photos() if p not in exclude]
    if photos and rng.random() < photo_prob:
        for _ in range(4):
            pid = photos[int(rng.integers(len(photos)))]
            src = photo_source(pid, split)
            if src is not None and src.image.shape[0] >= min_h and src.image.shape[1] >= min_w:
                return src
    ph, pw = procedural_size or (max(min_h, 64), max(min_w, 64))
    return procedural_texture(rng, ph, pw)


def crop(rng: np.random.Generator, source: Source, h: int, w: int, min_std: float = 18.0,
         tries: int = 8) -> Source:
    """A (h, w) crop of ``source`` with some texture, resized up when the source is smaller.

    The crop's rectangle is recorded in ``provenance["crop"]`` in the photograph's coordinates.
    """
    import cv2

    img = source.image
    sh, sw = img.shape[:2]
    ch, cw = min(h, sh), min(w, sw)
    best, best_std, best_xy = None, -1.0, (0, 0)
    for _ in range(tries):
        x = int(rng.integers(0, sw - cw + 1))
        y = int(rng.integers(0, sh - ch + 1))
        patch = img[y:y + ch, x:x + cw]
        std = float(patch.std())
        if std > best_std:
            best, best_std, best_xy = patch, std, (x, y)
        if std >= min_std:
            break
    if (ch, cw) != (h, w):
        best = cv2.resize(best, (w, h), interpolation=cv2.INTER_LINEAR)
    prov = dict(source.provenance)
    if prov.get("kind") == "photo":
        rx, ry = prov["split_region"][:2]
        prov["crop"] = [rx + best_xy[0], ry + best_xy[1], cw, ch]
    return Source(np.ascontiguousarray(best), prov)
