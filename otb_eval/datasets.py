"""OTB-format sequence folders, the official OTB lists, and every quirk of the real data.

A dataset is a folder of sequence folders ``<Name>/img/*`` with ``groundtruth_rect*.txt``. The
quirks of the official OTB data (frames that do not start at 1 or stop early, two targets in one
folder, Human4's empty first file, Board's 5-digit names, mixed delimiters, Tiger1) are applied by
sequence name whenever a folder carries an OTB name, whatever the version asked for. Sequence names
follow got10k (``Jogging.1``); :func:`canonical_name` maps the pytracking (``Jogging_1``), pysot
(``Jogging-1``) and MATLAB (``jogging-1``) spellings back to it.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Iterator, Sequence as SequenceType

import numpy as np

from foundation.errors import UserError
from foundation.images import frame_number, list_frames

VERSIONS = ("auto", "otb2013", "otb2015", "tb50", "tb100")
TIGER1_POLICIES = ("got10k", "otb")

# (first, last) 1-based image numbers of the annotated frames, from the OTB toolkit's configs.
FRAME_RANGES = {
    "david": (300, 770),
    "football1": (1, 74),
    "freeman3": (1, 460),
    "freeman4": (1, 283),
    "diving": (1, 215),
    "blurcar1": (247, 988),
    "blurcar3": (3, 359),
    "blurcar4": (18, 397),
}
# The official MATLAB toolkit starts Tiger1 at frame 6 (its first frames are ill-annotated);
# got10k keeps them. Policy "otb" drops the first TIGER1_SKIP frames and annotation rows.
TIGER1_SKIP = 5

_VERSION_ALIASES = {"2013": "otb2013", "2015": "otb2015", "otb100": "otb2015", "otb50": "tb50",
                    "tb100": "otb2015", "otb2015": "otb2015", "otb2013": "otb2013", "tb50": "tb50",
                    "auto": "auto"}


@lru_cache(maxsize=None)
def _package_json(name: str) -> dict:
    with resources.files("otb_eval").joinpath("data", name).open("r", encoding="utf-8") as f:
        return json.load(f)


def official_folders(version: str) -> list[str]:
    """Sequence folders of an official list (``otb2013``, ``otb2015``/``tb100``, ``tb50``)."""
    key = normalize_version(version)
    if key == "auto":
        raise ValueError("'auto' is not an official list")
    return list(_package_json("otb_sequences.json")["versions"][key])


def otb100_attributes() -> dict[str, list[str]]:
    """The 11-attribute table of OTB-100: got10k sequence name -> attribute abbreviations."""
    return {k: list(v) for k, v in _package_json("otb100_attributes.json")["sequences"].items()}


@lru_cache(maxsize=1)
def _otb100_alias_index() -> dict[str, str]:
    return alias_index(list(otb100_attributes()))


def attribute_names() -> dict[str, str]:
    """OTB attribute abbreviations and their full names, in the toolkit's order."""
    return dict(_package_json("otb100_attributes.json")["attributes"])


def normalize_version(version: str | int) -> str:
    """Map the spellings users and got10k use (2015, 'tb100', 'OTB100', ...) to ours."""
    key = str(version).lower()
    if key not in _VERSION_ALIASES:
        raise UserError(f"unknown OTB version {version!r}; choose one of {', '.join(VERSIONS)}")
    return _VERSION_ALIASES[key]


_SUFFIX = re.compile(r"^(.*?)[._-](\d)$")


def _alias_key(name: str) -> str:
    """Case- and separator-insensitive key: 'jogging-1', 'Jogging_1', 'Jogging.1' -> 'jogging.1'."""
    name = name.strip()
    match = _SUFFIX.match(name)
    if match:
        name = f"{match.group(1)}.{match.group(2)}"
    return name.lower()


def alias_index(known: SequenceType[str]) -> dict[str, str]:
    """Alias key -> got10k name, built once for many :func:`canonical_name` look-ups."""
    return {_alias_key(k): k for k in known}


def canonical_name(name: str, known: SequenceType[str] | dict[str, str]) -> str | None:
    """The got10k spelling in ``known`` of a sequence name written by any toolkit, or None.

    ``known`` is a list of names or an :func:`alias_index`. 'Human4-2' (the second target of
    Human4, its only valid one) maps to 'Human4'.
    """
    table = known if isinstance(known, dict) else alias_index(known)
    key = _alias_key(name)
    if key in table:
        return table[key]
    match = re.match(r"^(.*)\.\d$", key)
    if match and match.group(1) in table:
        return table[match.group(1)]
    return None


def parse_boxes(path: str) -> np.ndarray:
    """Read an annotation or result file: one ``x,y,w,h`` row per line, delimited by commas,
    tabs or spaces (mixed within one file, as in BlurCar1). Blank lines are ignored, and so is a
    UTF-8 byte-order mark (Windows editors save one; it is not part of the first number)."""
    try:
        with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
            text = f.read()
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from None
    lines = [line for line in text.replace(",", " ").replace("\t", " ").splitlines() if line.strip()]
    try:  # fast path: one conversion for the whole file
        values = np.array(" ".join(lines).split(), dtype=float)
        if values.size == 4 * len(lines) and all(len(line.split()) == 4 for line in lines):
            return values.reshape(-1, 4)
    except ValueError:
        pass
    for lineno, line in enumerate(text.splitlines(), start=1):  # slow path: name the bad row
        fields = [x for x in re.split(r"[,\s]+", line.strip()) if x]
        if not fields:
            continue
        try:
            [float(x) for x in fields]
        except ValueError:
            raise UserError(f"{path}:{lineno}: malformed row {line.strip()!r} "
                            "(expected 4 numbers x,y,w,h)") from None
        if len(fields) != 4:
            raise UserError(f"{path}:{lineno}: expected 4 values x,y,w,h, found {len(fields)}")
    raise UserError(f"{path}: cannot parse rows")  # pragma: no cover - unreachable


@dataclass(frozen=True, eq=False)
class Sequence:
    """One annotated target: its frames, its boxes (N x 4, x y w h) and its attributes."""

    name: str
    img_files: tuple[str, ...]
    anno: np.ndarray = field(repr=False)
    attributes: tuple[str, ...] = ()
    folder: str = ""
    # 1-based numbers of the images used, so results covering the whole folder can be aligned.
    frame_numbers: tuple[int, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.img_files)


def _annotation_files(folder: str) -> list[str]:
    """Non-empty ground-truth files of a folder; empty ones (Human4's first) are skipped."""
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().startswith("groundtruth") and n.lower().endswith(".txt"))
    kept = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                empty = f.read().removeprefix(b"\xef\xbb\xbf").strip() == b""
        except OSError as err:
            raise UserError(f"cannot read {path}: {err.strerror}") from None
        if not empty:
            kept.append(path)
    return kept


def _select_frames(name: str, files: list[str], rows: int, tiger1: str,
                   anno_path: str) -> tuple[list[str], slice]:
    """Frames that the annotation rows describe, and the slice of rows to keep."""
    key = name.split(".")[0].lower()
    numbers = [frame_number(f) for f in files]
    row_slice = slice(0, rows)
    if key in FRAME_RANGES and len(files) != rows:
        first, last = FRAME_RANGES[key]
        chosen = [f for f, n in zip(files, numbers) if n is not None and first <= n <= last]
        if len(chosen) == rows:
            files = chosen
    if key == "tiger1" and tiger1 == "otb" and rows > TIGER1_SKIP:
        files, row_slice = files[TIGER1_SKIP:], slice(TIGER1_SKIP, rows)
        rows -= TIGER1_SKIP
    if len(files) < rows:
        raise UserError(f"sequence {name}: {anno_path} has {rows} rows but only {len(files)} "
                        f"frames were found in {os.path.dirname(files[0]) if files else 'img/'}")
    if len(files) > rows:
        warnings.warn(f"sequence {name}: {len(files)} frames but {rows} annotated rows; "
                      f"using the first {rows} frames", stacklevel=3)
        files = files[:rows]
    return files, row_slice


def load_sequence_folder(folder: str, tiger1: str = "got10k",
                         attribute_table: dict[str, list[str]] | None = None) -> list[Sequence]:
    """Read one OTB-format folder; a two-target folder gives two sequences (``Name.1``, ``Name.2``)."""
    base = os.path.basename(os.path.normpath(folder))
    img_dir = os.path.join(folder, "img")
    if not os.path.isdir(img_dir):
        raise UserError(f"sequence {base}: no img/ folder in {folder}")
    anno_files = _annotation_files(folder)
    if not anno_files:
        raise UserError(f"sequence {base}: no non-empty groundtruth_rect*.txt in {folder}")
    all_files = list_frames(img_dir)
    if not all_files:
        raise UserError(f"sequence {base}: no images (.jpg/.png/.bmp) in {img_dir}")
    extra = _folder_attributes(folder)
    table = otb100_attributes() if attribute_table is None else attribute_table
    sequences = []
    for i, anno_path in enumerate(anno_files, start=1):
        name = base if len(anno_files) == 1 else f"{base}.{i}"
        anno = parse_boxes(anno_path)
        if len(anno) == 0:
            raise UserError(f"sequence {name}: {anno_path} has no rows")
        files, rows = _select_frames(name, all_files, len(anno), tiger1, anno_path)
        anno = anno[rows][: len(files)]
        known = canonical_name(name, _otb100_alias_index() if attribute_table is None else list(table))
        attrs = tuple(table[known]) if known else tuple(extra)
        sequences.append(Sequence(name, tuple(files), anno, attrs, folder,
                                  tuple(frame_number(f) or 0 for f in files)))
    return sequences


def _folder_attributes(folder: str) -> list[str]:
    """Attributes a folder declares itself (the synthetic benchmark's ``attributes.json``)."""
    path = os.path.join(folder, "attributes.json")
    if not os.path.isfile(path):
        return []
    try:
        with open(path, "r", encoding="utf-8-sig") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    attrs = data.get("attributes", []) if isinstance(data, dict) else data
    return [str(a) for a in attrs]


def _has_annotation(path: str) -> bool:
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any(n.lower().startswith("groundtruth") and n.lower().endswith(".txt") for n in names)


def _is_sequence_folder(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "img")) and _has_annotation(path)


def _without_frames(path: str) -> bool:
    """An annotated folder with no ``img/``: not a sequence, but surely meant as one."""
    return os.path.isdir(path) and not os.path.isdir(os.path.join(path, "img")) and _has_annotation(path)


class OTBDataset:
    """A folder of OTB-format sequences, optionally restricted to an official OTB list.

    ``version='auto'`` takes every sequence folder present; an official version requires all of
    its folders and names the missing ones. Iterating yields :class:`Sequence` objects;
    ``dataset[name]`` accepts any toolkit's spelling of a name.
    """

    def __init__(self, root: str, version: str = "auto", tiger1: str = "got10k",
                 sequences: SequenceType[str] | None = None):
        if tiger1 not in TIGER1_POLICIES:
            raise UserError(f"unknown Tiger1 policy {tiger1!r}; choose {' or '.join(TIGER1_POLICIES)}")
        if not os.path.isdir(root):
            raise UserError(f"dataset folder {root} does not exist or is not a folder")
        self.root = root
        self.version = normalize_version(version)
        self.tiger1 = tiger1
        folders = self._folders()
        loaded: list[Sequence] = []
        for folder in folders:
            loaded.extend(load_sequence_folder(os.path.join(root, folder), tiger1))
        if sequences is not None:
            wanted = []
            for name in sequences:
                canon = canonical_name(name, [s.name for s in loaded])
                if canon is None and canonical_name(name, self._frameless) is not None:
                    raise UserError(f"sequence {name!r} in {root} has a ground-truth file but no "
                                    "img/ folder of frames")
                if canon is None:
                    raise UserError(f"sequence {name!r} is not in {root}")
                wanted.append(canon)
            loaded = [s for s in loaded if s.name in set(wanted)]
        self._sequences = loaded
        self._index = {s.name: i for i, s in enumerate(loaded)}
        self._aliases = alias_index(self._index)

    def _folders(self) -> list[str]:
        try:
            entries = sorted(os.listdir(self.root), key=str.lower)
        except OSError as err:
            raise UserError(f"cannot list dataset folder {self.root}: {err.strerror}") from None
        present = [e for e in entries if _is_sequence_folder(os.path.join(self.root, e))]
        self._frameless = [e for e in entries if _without_frames(os.path.join(self.root, e))]
        if self._frameless:
            shown = ", ".join(self._frameless[:5]) + (" ..." if len(self._frameless) > 5 else "")
            warnings.warn(f"{self.root}: {len(self._frameless)} folder(s) with a ground-truth file "
                          f"but no img/ folder skipped: {shown}", stacklevel=3)
        if self.version == "auto":
            if not present:
                raise UserError(f"no OTB-format sequences (<Name>/img/ + groundtruth_rect.txt) "
                                f"in {self.root}")
            return present
        wanted = official_folders(self.version)
        by_lower = {p.lower(): p for p in present}
        missing = [w for w in wanted if w.lower() not in by_lower]
        if missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise UserError(f"{self.root} is not a complete {self.version}: {len(missing)} of "
                            f"{len(wanted)} sequence folders missing ({shown}); "
                            "use --version auto to evaluate the sequences present")
        return [by_lower[w.lower()] for w in wanted]

    @property
    def seq_names(self) -> list[str]:
        return [s.name for s in self._sequences]

    def __len__(self) -> int:
        return len(self._sequences)

    def __iter__(self) -> Iterator[Sequence]:
        return iter(self._sequences)

    def __getitem__(self, key: int | str) -> Sequence:
        if isinstance(key, str):
            canon = canonical_name(key, self._aliases)
            if canon is None:
                raise UserError(f"sequence {key!r} is not in {self.root}")
            return self._sequences[self._index[canon]]
        return self._sequences[key]

    def attributes(self) -> dict[str, list[str]]:
        """Attribute -> sequence names, for the attributes any sequence carries."""
        table: dict[str, list[str]] = {}
        for seq in self._sequences:
            for attr in seq.attributes:
                table.setdefault(attr, []).append(seq.name)
        order = list(attribute_names())
        return dict(sorted(table.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order
                                                          else len(order), kv[0])))
