"""The embedded glyph benchmark: Omniglot-like classes rendered from the fonts inside matplotlib.

Every class is one letter (Unicode category Lu/Ll/Lo, no decomposition, no "WITH" in its name);
its Unicode script (the name before "CAPITAL LETTER"/"LETTER"/...) is its "alphabet".  Letters that
render alike after size normalisation (Latin A / Greek Alpha / Cyrillic A, "l" / "I", "o" / "O") are
removed: the first one met is kept, scripts taken Latin, Greek, Cyrillic, then alphabetically.  Braille, pictographs and symbols are
not letters and never enter.  Scripts with fewer than ``MIN_LETTERS`` distinct letters are dropped.
Train / val / test split by alphabet (a fixed split, the same for every seed, like Omniglot's).

Each sample is its letter in a random font that has it (DejaVu Sans/Serif/Mono, STIX, Computer
Modern), with random rotation, shear, scale, shift and stroke width drawn from a generator seeded by
``seed``, rendered at 4x and reduced to ``image_size``.  Ink is 255 on a 0 background.  The rendered
set is cached as one ``.npz`` under :func:`cache_dir` (``$METATRACK_CACHE/glyphs`` or
``~/.cache/metatrack/glyphs``), keyed by every rendering setting and the seed, written atomically.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import unicodedata
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from foundation.fileio import atomic_path

__all__ = ["GlyphConfig", "Letter", "font_files", "letter_inventory", "split_alphabets", "render_glyph",
           "render_glyphs", "cache_dir", "load_glyphs", "GlyphSet", "SPLITS", "write_image_folder"]

SPLITS = ("train", "val", "test")
MIN_LETTERS = 10
_RENDER_VERSION = 2
_FIRST_SCRIPTS = ("Latin", "Greek", "Cyrillic")   # kept first where letters look alike
_NAME_KEYS = (" CAPITAL LETTER", " SMALL LETTER", " SMALL CAPITAL", " LETTER", " SYLLABLE")
# fonts whose charmaps cover code points they do not draw, or only symbols
_SKIP_FONTS = ("LastResort", "Display", "STIXSiz", "STIXNonUni", "cmex", "cmsy", "cmmi")


@dataclass
class GlyphConfig:
    """Rendering settings of the glyph benchmark (all of them are part of the cache key)."""

    image_size: int = 28
    samples_per_class: int = 20
    seed: int = 0
    max_rotation: float = 15.0       # degrees, uniform in [-r, r]
    max_shear: float = 0.2           # x-shear factor, uniform in [-s, s]
    scale_range: Tuple[float, float] = (0.7, 1.0)   # letter's longer side / image side
    max_shift: float = 0.08          # fraction of the image side, uniform in [-m, m] per axis
    max_stroke: int = 2              # extra stroke width in pixels at the 4x render, 0..max
    lookalike_iou: float = 0.85      # letters whose normalised shapes overlap more are duplicates
    test_fraction: float = 0.3       # of the letters (alphabets assigned whole)
    val_fraction: float = 0.15

    def validate(self) -> "GlyphConfig":
        if self.image_size < 8:
            raise ValueError(f"glyph image size must be >= 8, got {self.image_size}")
        if self.samples_per_class < 1:
            raise ValueError(f"samples per class must be >= 1, got {self.samples_per_class}")
        if not 0 < self.test_fraction < 1 or not 0 < self.val_fraction < 1 \
                or self.test_fraction + self.val_fraction >= 1:
            raise ValueError("glyph split fractions must be in (0, 1) and sum below 1")
        return self

    def key(self) -> str:
        """Short hash of the settings, the rendering code version and the font files."""
        blob = json.dumps({"v": _RENDER_VERSION, **asdict(self),
                           "fonts": [os.path.basename(f) for f in font_files()]}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Letter:
    char: str
    script: str
    fonts: Tuple[str, ...]   # font files (paths) that draw it


def font_files() -> List[str]:
    """The letter fonts that ship inside matplotlib, sorted by file name."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(str(p) for p in folder.glob("*.ttf") if not any(s in p.name for s in _SKIP_FONTS))


def _script(ch: str) -> Optional[str]:
    if unicodedata.category(ch) not in ("Lu", "Ll", "Lo") or unicodedata.decomposition(ch):
        return None
    name = unicodedata.name(ch, "")
    if not name or " WITH " in name:
        return None
    if name.startswith("CANADIAN SYLLABICS "):
        return "Canadian Syllabics"
    hits = [name.index(key) for key in _NAME_KEYS if key in name]
    return name[:min(hits)].title() if hits else None


@functools.lru_cache(maxsize=256)
def _font(path: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size=size, layout_engine=ImageFont.Layout.BASIC)


def _draw(ch: str, font_path: str, size: int = 64, stroke: int = 0) -> np.ndarray:
    """The letter drawn on a square canvas (ink 255), float32, untransformed."""
    from PIL import Image, ImageDraw

    canvas = 3 * size
    img = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(img).text((size, size), ch, fill=255, font=_font(font_path, size), stroke_width=stroke,
                             stroke_fill=255)
    return np.asarray(img, dtype=np.float32)


def _has_ink(ch: str, font_path: str, size: int = 32) -> bool:
    """Whether the font draws ``ch`` (some pixel above a quarter coverage), not a blank or box."""
    mask = _font(font_path, size).getmask(ch, mode="L")
    return mask.size[0] > 0 and mask.size[1] > 0 and max(mask.getextrema()) > 64


def _normalised_shape(ink: np.ndarray, side: int = 24) -> Optional[np.ndarray]:
    """Binary shape scaled so its longer side fills ``side`` pixels, centred; None if empty."""
    from PIL import Image

    ys, xs = np.nonzero(ink > 64)
    if len(xs) == 0:
        return None
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    s = side / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((side, side), dtype=bool)
    y0, x0 = (side - nh) // 2, (side - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small > 96
    return out


@functools.lru_cache(maxsize=4)
def letter_inventory(lookalike_iou: float = 0.85, min_letters: int = MIN_LETTERS) -> Tuple[Letter, ...]:
    """Distinct letters in the bundled fonts, look-alikes removed (Latin, Greek and Cyrillic
    letters win over later scripts), grouped by script, letters by code point."""
    from matplotlib.ft2font import FT2Font

    fonts = font_files()
    cover: Dict[int, List[str]] = {}
    for path in fonts:
        for cp in FT2Font(path).get_charmap():
            cover.setdefault(cp, []).append(path)
    by_script: Dict[str, List[int]] = {}
    for cp in sorted(cover):
        script = _script(chr(cp))
        if script is not None:
            by_script.setdefault(script, []).append(cp)
    reference = [p for p in fonts if os.path.basename(p) == "DejaVuSans.ttf"]
    kept: List[Letter] = []
    total = sum(len(v) for v in by_script.values())
    shapes = np.zeros((total, 24, 24), dtype=bool)   # the kept letters' shapes, first len(kept) rows
    order = [s for s in _FIRST_SCRIPTS if s in by_script] + sorted(set(by_script) - set(_FIRST_SCRIPTS))
    for script in order:
        for cp in by_script[script]:
            ch = chr(cp)
            drawn = [p for p in cover[cp] if _has_ink(ch, p)]
            if not drawn:
                continue
            ref = next((p for p in reference if p in drawn), drawn[0])
            shape = _normalised_shape(_draw(ch, ref, 48))
            if kept:
                stack = shapes[:len(kept)]
                inter = (stack & shape).sum((1, 2))
                union = (stack | shape).sum((1, 2))
                if float((inter / np.maximum(union, 1)).max()) > lookalike_iou:
                    continue
            shapes[len(kept)] = shape
            kept.append(Letter(ch, script, tuple(drawn)))
    counts: Dict[str, int] = {}
    for letter in kept:
        counts[letter.script] = counts.get(letter.script, 0) + 1
    return tuple(letter for letter in kept if counts[letter.script] >= min_letters)


def split_alphabets(letters: Sequence[Letter], test_fraction: float = 0.3, val_fraction: float = 0.15,
                    ) -> Dict[str, List[str]]:
    """Whole scripts to train / val / test: scripts in a fixed shuffled order fill test up to
    ``test_fraction`` of the letters, then val up to ``val_fraction``, the rest is train."""
    counts: Dict[str, int] = {}
    for letter in letters:
        counts[letter.script] = counts.get(letter.script, 0) + 1
    order = sorted(counts)
    np.random.default_rng(12).shuffle(order)
    total = sum(counts.values())
    split: Dict[str, List[str]] = {s: [] for s in SPLITS}
    filled = {s: 0 for s in SPLITS}
    for script in order:
        if filled["test"] < test_fraction * total:
            target = "test"
        elif filled["val"] < val_fraction * total:
            target = "val"
        else:
            target = "train"
        split[target].append(script)
        filled[target] += counts[script]
    return {s: sorted(v) for s, v in split.items()}


def render_glyph(ch: str, font_path: str, rng: np.random.Generator, cfg: GlyphConfig) -> np.ndarray:
    """One random rendering of ``ch`` (uint8, image_size x image_size, ink 255)."""
    from PIL import Image

    stroke = int(rng.integers(0, cfg.max_stroke + 1))
    ink = _draw(ch, font_path, 64, stroke)
    ys, xs = np.nonzero(ink > 32)
    cy, cx = (ys.min() + ys.max()) / 2.0, (xs.min() + xs.max()) / 2.0
    extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    big = 4 * cfg.image_size
    scale = rng.uniform(*cfg.scale_range) * big / extent          # input px -> output px
    angle = math.radians(rng.uniform(-cfg.max_rotation, cfg.max_rotation))
    shear = rng.uniform(-cfg.max_shear, cfg.max_shear)
    shift = rng.uniform(-cfg.max_shift, cfg.max_shift, size=2) * big
    # forward map (centred): out = S * R * Sh * (in - c); PIL wants the inverse (out -> in)
    c, s = math.cos(angle), math.sin(angle)
    fwd = scale * np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]])
    inv = np.linalg.inv(fwd)
    centre_out = np.array([big / 2.0 + shift[0], big / 2.0 + shift[1]])
    offset = np.array([cx, cy]) - inv @ centre_out
    coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    img = Image.fromarray(ink.astype(np.uint8)).transform((big, big), Image.AFFINE, coeffs, Image.BILINEAR)
    return np.asarray(img.resize((cfg.image_size, cfg.image_size), Image.BOX), dtype=np.uint8)


@dataclass
class GlyphSet:
    """Rendered benchmark: ``images`` (classes, samples, S, S) uint8, the letter and script of each
    class, and the split of each class."""

    images: np.ndarray
    chars: List[str]
    scripts: List[str]
    splits: List[str]

    def classes(self, split: str) -> List[int]:
        return [i for i, s in enumerate(self.splits) if s == split]


def render_glyphs(cfg: GlyphConfig, letters: Optional[Sequence[Letter]] = None,
                  progress: bool = False) -> GlyphSet:
    """Render every letter ``samples_per_class`` times (deterministic for ``cfg.seed``)."""
    from tqdm import tqdm

    cfg.validate()
    letters = list(letters) if letters is not None else letter_inventory(cfg.lookalike_iou)
    split = split_alphabets(letters, cfg.test_fraction, cfg.val_fraction)
    where = {script: name for name, scripts in split.items() for script in scripts}
    out = np.zeros((len(letters), cfg.samples_per_class, cfg.image_size, cfg.image_size), dtype=np.uint8)
    for i, letter in enumerate(tqdm(letters, desc="rendering glyphs", disable=not progress,
                                    mininterval=1.0)):
        rng = np.random.default_rng([cfg.seed, i])
        for k in range(cfg.samples_per_class):
            font = letter.fonts[int(rng.integers(len(letter.fonts)))]
            out[i, k] = render_glyph(letter.char, font, rng, cfg)
    return GlyphSet(out, [l.char for l in letters], [l.script for l in letters],
                    [where[l.script] for l in letters])


def cache_dir() -> Path:
    """Where rendered glyph sets live: ``$METATRACK_CACHE/glyphs`` or ``~/.cache/metatrack/glyphs``."""
    root = os.environ.get("METATRACK_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "metatrack") / "glyphs"


def load_glyphs(cfg: Optional[GlyphConfig] = None, progress: bool = False) -> GlyphSet:
    """The rendered set for ``cfg`` from the cache, rendering (and caching) it on first use."""
    cfg = (cfg or GlyphConfig()).validate()
    path = cache_dir() / f"{cfg.key()}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return GlyphSet(z["images"], [str(c) for c in z["chars"]], [str(s) for s in z["scripts"]],
                                [str(s) for s in z["splits"]])
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"re-rendering the unreadable glyph cache {path}: {exc}")
    glyphs = render_glyphs(cfg, progress=progress)
    try:
        with atomic_path(str(path)) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, images=glyphs.images, chars=np.array(glyphs.chars),
                                    scripts=np.array(glyphs.scripts), splits=np.array(glyphs.splits))
    except OSError as exc:
        warnings.warn(f"cannot write the glyph cache {path}: {exc}")
    return glyphs


def write_image_folder(cfg: GlyphConfig, out: Path, progress: bool = False) -> int:
    """Write the benchmark as ``out/<split>/<script>/<U+code>/<k>.png`` (black on white) and
    ``out/letters.csv`` (split, script, code point, letter); returns the number of images."""
    from PIL import Image
    from tqdm import tqdm

    from foundation.fileio import atomic_write_text

    g = load_glyphs(cfg, progress=progress)
    out = Path(out)
    rows = ["split,script,code,letter"]
    n = 0
    for i in tqdm(range(len(g.chars)), desc="writing glyphs", disable=not progress, mininterval=1.0):
        code = f"U+{ord(g.chars[i]):04X}"
        folder = out / g.splits[i] / g.scripts[i].replace(" ", "_") / code
        folder.mkdir(parents=True, exist_ok=True)
        for k, img in enumerate(g.images[i]):
            with atomic_path(str(folder / f"{k:02d}.png")) as tmp:
                Image.fromarray(255 - img).save(tmp, format="PNG")
            n += 1
        rows.append(f"{g.splits[i]},{g.scripts[i]},{code},{g.chars[i]}")
    atomic_write_text(str(out / "letters.csv"), "\n".join(rows) + "\n")
    return n
