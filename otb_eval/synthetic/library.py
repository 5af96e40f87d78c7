"""Folders of real images for the synthetic benchmark: object cut-outs and background photographs.

``--objects DIR``: every image under DIR (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.webp``) is an
object. One with a real alpha channel (some pixels transparent) becomes a target with its own
silhouette; a plain photograph is cropped like scikit-image's photographs are. The folder an image
sits in is its **category** (``animals/birds``, ``food/fruit``): same-category distractors are
other images of that folder. ``--backgrounds DIR``: every image under DIR is a background
photograph (alpha ignored).

Split rule: no source image is shared between train, val and test. Each image belongs to one split,
decided by the SHA-256 of its **split key** (70% train, 15% val, 15% test): its path relative to
the folder given (relative to the package's root for the Debian packages in
:mod:`.packages`, so that ``stamps/`` and ``stamps/animals/`` agree), lower-cased, without its
extension, a resolution token (``_3840x2160``) or a ``_mirror`` suffix (Tux Paint ships mirrored
copies; wallpapers ship one photograph at several resolutions): copies of one picture share a key
and so a split.

Tux Paint's stamps folder is filtered by :data:`.packages.TUXPAINT_KEEP` (photographs, not
drawings). :func:`describe` gives what ``attributes.json`` records: file counts per split and a
content hash of the usable files.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["ImageLibrary", "LibraryImage", "load_library", "split_of", "split_key", "EXTENSIONS",
           "SPLIT_SHARES"]

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLIT_SHARES = (("train", 70), ("val", 15), ("test", 15))  # percent, by the key's hash
MAX_SIDE_OBJECT = 640      # larger images are shrunk on loading
MAX_SIDE_BACKGROUND = 1024
_RESOLUTION = re.compile(r"[_-]?\d{3,5}x\d{3,5}")


def split_key(rel: str) -> str:
    """The key that decides an image's split (see the module docstring)."""
    key = os.path.splitext(rel.replace(os.sep, "/").lower())[0]
    key = _RESOLUTION.sub("", key)
    return re.sub(r"[_-]mirror$", "", key)


def split_of(rel: str) -> str:
    """``train``, ``val`` or ``test`` for the image at relative path ``rel``."""
    h = int(hashlib.sha256(split_key(rel).encode("utf-8")).hexdigest()[:8], 16) % 100
    acc = 0
    for split, share in SPLIT_SHARES:
        acc += share
        if h < acc:
            return split
    return SPLIT_SHARES[-1][0]  # pragma: no cover - shares add up to 100


@dataclass(frozen=True)
class LibraryImage:
    path: str        # absolute
    rel: str         # key-relative path (see split_key)
    category: str    # the folder it sits in, relative
    split: str


@dataclass(frozen=True)
class ImageLibrary:
    """The usable images of one folder, indexed by split and category."""

    kind: str                  # "objects" or "backgrounds"
    folder: str
    images: tuple              # LibraryImage, sorted by rel
    sha256: str                # over the sorted (rel, file bytes) of ``images``
    packages: dict             # {debian package: version} owning the folder (may be empty)

    def of_split(self, split: str) -> list:
        return [im for im in self.images if im.split == split]

    def describe(self) -> dict:
        counts = {s: sum(im.split == s for im in self.images) for s, _ in SPLIT_SHARES}
        return {"folder": self.folder, "files": len(self.images), "per_split": counts,
                "categories": len({im.category for im in self.images}), "sha256": self.sha256,
                "packages": dict(self.packages)}


def _relative_root(folder: str) -> tuple[str, str]:
    """(root the split keys are relative to, the package's name or "")."""
    from .packages import PACKAGE_ROOTS

    real = os.path.realpath(folder)
    for package, root in PACKAGE_ROOTS.items():
        root = os.path.realpath(root)
        if real == root or real.startswith(root + os.sep):
            return root, package
    return real, ""


@lru_cache(maxsize=8)
def load_library(folder: str, kind: str) -> ImageLibrary:
    """Index ``folder``'s usable images; a :class:`~foundation.errors.UserError` if there is none."""
    from foundation.errors import UserError

    from .packages import installed_versions, keep_stamp

    option = f"--{kind}"
    if not os.path.isdir(folder):
        raise UserError(f"{option} {folder}: not a folder")
    root, package = _relative_root(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(os.path.realpath(folder)):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(EXTENSIONS):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if package == "tuxpaint-stamps-default" and not keep_stamp(rel):
                continue
            found.append(LibraryImage(path, rel, os.path.dirname(rel) or ".", split_of(rel)))
    digest = hashlib.sha256()
    usable = []
    for im in sorted(found, key=lambda i: i.rel):
        try:
            with open(im.path, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        if _read(im.path, data, kind) is None:
            continue
        usable.append(im)
        digest.update(im.rel.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())
    if not usable:
        raise UserError(f"{option} {folder}: no usable image ({', '.join(EXTENSIONS)}) in it")
    return ImageLibrary(kind, os.path.realpath(folder), tuple(usable), digest.hexdigest(),
                        installed_versions([package]) if package else {})


def _read(path: str, data: bytes | None = None, kind: str = "objects"):
    """BGRA uint8 (alpha 255 where the file has none), shrunk; None if unreadable or tiny."""
    import io

    import cv2
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as pil:
            pil.draft("RGB", (2 * MAX_SIDE_BACKGROUND, 2 * MAX_SIDE_BACKGROUND))
            rgba = np.asarray(pil.convert("RGBA"))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    image = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    h, w = image.shape[:2]
    if min(h, w) < 16:
        return None
    scale = (MAX_SIDE_BACKGROUND if kind == "backgrounds" else MAX_SIDE_OBJECT) / max(h, w)
    if scale < 1:
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return image


@lru_cache(maxsize=64)
def load_image(path: str, kind: str) -> np.ndarray:
    """The image at ``path`` as BGRA (see :func:`_read`); cut-outs trimmed to their alpha's box."""
    image = _read(path, kind=kind)
    if image is None:
        raise OSError(f"cannot read {path}")
    alpha = image[:, :, 3]
    if kind == "objects" and is_cutout(image):
        rows, cols = np.flatnonzero((alpha >= 128).any(1)), np.flatnonzero((alpha >= 128).any(0))
        image = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    image.setflags(write=False)
    return image


def is_cutout(image: np.ndarray) -> bool:
    """A real silhouette: between 5% and 97% of the pixels are opaque (alpha >= 128)."""
    share = float((image[:, :, 3] >= 128).mean())
    return 0.05 <= share <= 0.97
