"""Data sets by name: the embedded glyph benchmark and the loaders of real data on disk.

``load_pools(name, root, image_size)`` returns ``{"train", "val", "test"} -> ClassPool``; a missing
or malformed data set raises :class:`foundation.errors.UserError` with one line saying what is
wrong.  Layouts on disk are described in :mod:`.loaders` and docs/classification.md.
"""
from __future__ import annotations

from typing import Dict, Optional

from foundation.errors import UserError

from .episodes import ArrayPool, ClassPool

__all__ = ["DATASETS", "DEFAULT_IMAGE_SIZE", "SPLIT_CHOICES", "load_pools", "glyph_pools"]

DATASETS = ("glyphs", "miniimagenet", "tieredimagenet", "cifarfs", "fc100", "omniglot", "folder")
DEFAULT_IMAGE_SIZE = {"glyphs": 28, "omniglot": 28, "cifarfs": 32, "fc100": 32, "miniimagenet": 84,
                      "tieredimagenet": 84, "folder": 84}
SPLIT_CHOICES = ("train", "val", "test", "all")   # what --evaluate scores; all: every class of the data set


def glyph_pools(image_size: int = 28, seed: int = 0, progress: bool = False) -> Dict[str, ClassPool]:
    """The glyph benchmark's three splits (rendered once per settings and cached)."""
    from .glyphs import SPLITS, GlyphConfig, load_glyphs

    g = load_glyphs(GlyphConfig(image_size=image_size, seed=seed), progress=progress)
    return {s: ArrayPool([g.images[i] for i in g.classes(s)],
                         [f"{g.scripts[i]}/U+{ord(g.chars[i]):04X}" for i in g.classes(s)]) for s in SPLITS}


def load_pools(name: str, root: Optional[str] = None, image_size: Optional[int] = None,
               glyph_seed: int = 0, progress: bool = False) -> Dict[str, ClassPool]:
    """The train/val/test class pools of data set ``name`` (images resized to ``image_size``)."""
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r} (choose from {', '.join(DATASETS)})")
    size = image_size or DEFAULT_IMAGE_SIZE[name]
    if name == "glyphs":
        return glyph_pools(size, glyph_seed, progress)
    if not root:
        raise UserError(f"--dataset {name} needs --root DIR (the folder holding it)")
    from . import loaders

    return loaders.LOADERS[name](root, size)
