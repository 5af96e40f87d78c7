"""The glyph benchmark: letters, look-alikes, splits by script, seeded rendering, cache, image folder."""
import numpy as np
import pytest

from meta_learning.cli import main
from meta_learning.tasks.classification import glyphs as G


@pytest.fixture(scope="module")
def letters():
    return G.letter_inventory()


def test_inventory_has_letters_only_and_no_lookalikes(letters):
    chars = {l.char for l in letters}
    assert len(letters) > 800 and len({l.script for l in letters}) >= 10
    assert "A" in chars and "\u0391" not in chars and "\u0410" not in chars  # Greek Alpha, Cyrillic A
    assert "O" in chars and "\u039f" not in chars and "\u041e" not in chars  # Greek/Cyrillic O
    assert not any(c in chars for c in "\u00c0\u00e9\u0101")                  # accented forms
    assert not any(0x2800 <= ord(c) <= 0x28FF for c in chars)                 # Braille
    assert len(chars) == len(letters)
    counts = {}
    for l in letters:
        counts[l.script] = counts.get(l.script, 0) + 1
    assert min(counts.values()) >= G.MIN_LETTERS
    # every kept letter is drawn by each font listed for it, and the normalised shapes are distinct
    some = letters[::97]
    shapes = [G._normalised_shape(G._draw(l.char, l.fonts[0], 48)) for l in some]
    assert all(s is not None for s in shapes)


def test_split_is_disjoint_by_alphabet_and_character(letters):
    split = G.split_alphabets(letters)
    sets = [set(split[s]) for s in G.SPLITS]
    assert all(sets) and not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set().union(*sets) == {l.script for l in letters}
    chars = {s: {l.char for l in letters if l.script in split[s]} for s in G.SPLITS}
    assert not (chars["train"] & chars["test"]) and not (chars["val"] & chars["test"])
    n_test = len(chars["test"])
    assert 0.25 * len(letters) <= n_test <= 0.55 * len(letters)


def test_rendering_is_deterministic_per_seed_and_varied(letters):
    subset = [l for l in letters if l.char in "AbQ"]
    a = G.render_glyphs(G.GlyphConfig(samples_per_class=4, seed=3), subset)
    b = G.render_glyphs(G.GlyphConfig(samples_per_class=4, seed=3), subset)
    c = G.render_glyphs(G.GlyphConfig(samples_per_class=4, seed=4), subset)
    assert a.images.shape == (3, 4, 28, 28) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert all(len({img.tobytes() for img in cls}) == 4 for cls in a.images)    # samples differ
    assert (a.images.reshape(3, 4, -1).max(-1) > 200).all()                     # ink is there
    assert (a.images[:, :, 0, :] < 128).mean() > 0.8                            # background dark
    big = G.render_glyphs(G.GlyphConfig(image_size=84, samples_per_class=1, seed=3), subset[:1])
    assert big.images.shape == (1, 1, 84, 84)


def test_cache_is_keyed_and_used(letters, tmp_path, monkeypatch):
    monkeypatch.setenv("METATRACK_CACHE", str(tmp_path))
    subset = tuple(l for l in letters if l.script in ("Ogham", "Greek", "Lao"))
    monkeypatch.setattr(G, "letter_inventory", lambda *a, **k: subset)
    cfg = G.GlyphConfig(samples_per_class=2)
    first = G.load_glyphs(cfg)
    files = list((tmp_path / "glyphs").glob("*.npz"))
    assert [f.name for f in files] == [f"{cfg.key()}.npz"]
    monkeypatch.setattr(G, "render_glyphs", lambda *a, **k: pytest.fail("rendered again"))
    again = G.load_glyphs(cfg)
    assert np.array_equal(first.images, again.images) and first.chars == again.chars
    assert G.GlyphConfig(samples_per_class=2, seed=1).key() != cfg.key()
    assert G.GlyphConfig(samples_per_class=2, image_size=84).key() != cfg.key()


def test_glyphs_command_writes_an_image_folder(letters, tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("METATRACK_CACHE", str(tmp_path / "cache"))
    subset = tuple(l for l in letters if l.script in ("Ogham", "Hebrew"))
    monkeypatch.setattr(G, "letter_inventory", lambda *a, **k: subset)
    out = tmp_path / "out"
    assert main(["glyphs", str(out), "--quiet"]) == 0
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 20 * len(subset)
    rows = (out / "letters.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "split,script,code,letter" and len(rows) == len(subset) + 1
    img = np.asarray(Image.open(pngs[0]))
    assert img.shape == (28, 28) and img.max() == 255 and img.min() < 100       # dark ink on white
    assert pngs[0].relative_to(out).parts[0] in G.SPLITS
