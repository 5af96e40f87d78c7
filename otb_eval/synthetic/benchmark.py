"""A synthetic benchmark in OTB's folder format, for trying, meta-training and comparing trackers.

``generate(out_dir, n_sequences, seed, split)`` writes ``out_dir/<Name>/img/0001.jpg ...``,
``groundtruth_rect.txt`` (one ``x,y,w,h`` row per frame, integers: 0-based column/row of the
box's top-left pixel and its pixel width/height) and ``attributes.json``::

    {"attributes": ["FM", "SV"],          # OTB abbreviations really exercised (checked, see below)
     "split": "test", "seed": 0,          # the --seed given; the sequence's own seed is below
     "frames": 97, "size": [320, 240],
     "generator": {"name": "otb_eval.synthetic", "version": 1, "index": 3,
                   "sequence_seed": ..., "frames_range": [60, 120],
                   "planned": [...], "dropped": [...],      # asked-for attributes that failed a check
                   "photo_library": "scikit-image 0.26.0",  # or null: procedural textures only
                   "definitions": {...}, "box_convention": "...",
                   "stats": {...},                           # measured while rendering
                   "target": {"source": {...}, ...}, "background": {...},
                   "distractors": [...], "occluders": [...], ...}}

and ``visibility.txt`` (one ``visible,occluded`` row per frame: the share of the target inside
the image and the share of that covered by occluders; the truth a "target lost" flag is scored
against, :mod:`.presence`; older sequences lack it).

Names are ``SynTrain001``, ``SynVal001``, ``SynTest001`` ... (1-based index, at least 3 digits).

Splits share nothing. Pixels: every photograph is partitioned into regions owned by one split each
(:mod:`.sources`), and every source in ``generator`` records its ``split_region`` (and ``crop``).
Seeds: sequence ``index`` of split ``s`` with ``--seed S`` uses
``sequence_seed = (S * 1_000_000 + index) * 3 + {"train": 0, "val": 1, "test": 2}[s]``, so the
three splits' seeds differ modulo 3 and no two sequences of a split share one.

Attribute labels. FM, OV and LR are measured on the written ground truth (see
:data:`.planning.DEFINITIONS`): FM if some frame-to-frame centre shift exceeds 20 px, OV if some box
touches the image border with less than 85% of the target inside, LR if the median box area is
under 400 px. The other attributes are exercised only where planned and kept only if the
rendered measurement in ``stats`` passes its threshold.

Writing is atomic per sequence (a hidden ``.<Name>.partial-*`` folder renamed when complete), so an
interrupted run leaves no half sequence and a rerun skips the sequences already complete.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Sequence

import numpy as np

from .codec import through_codec
from .planning import (
    BC_MAX_GAP,
    DEF_MIN_AMPLITUDE,
    DEFINITIONS,
    FM_MIN_SPEED,
    IPR_MIN_RANGE,
    IV_MIN_RATIO,
    LR_MAX_AREA,
    MB_MIN_LENGTH,
    OCC_MIN_FRACTION,
    OPR_MIN_YAW,
    OTB_ATTRIBUTES,
    OV_MAX_VISIBLE,
    SV_MIN_RATIO,
    SequencePlan,
    plan_sequence,
)
from .presence import VISIBILITY_FILE, format_visibility
from .rendering import iter_frames
from .sources import SPLITS

__all__ = ["generate", "plan", "render", "write_sequence", "sequence_name", "sequence_seed", "measure", "label",
           "OTB_ATTRIBUTES", "SPLITS", "DEFINITIONS", "VERSION", "DEFAULT_FRAMES", "DEFAULT_SIZE"]

VERSION = 1
DEFAULT_FRAMES = (60, 120)
DEFAULT_SIZE = (320, 240)
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
_PREFIX = {"train": "SynTrain", "val": "SynVal", "test": "SynTest"}
JPEG_QUALITY = 90
BOX_CONVENTION = ("x,y = 0-based column,row of the top-left pixel of the target's mask box; "
                  "w,h = its width,height in pixels; mask = warped alpha >= 0.5 before occluders, "
                  "inside the image")


def _check_split(split: str) -> None:
    if split not in _SPLIT_CODE:
        from foundation.errors import UserError

        raise UserError(f"unknown split {split!r}: choose one of train, val, test")


def sequence_seed(seed: int, split: str, index: int) -> int:
    """The seed of sequence ``index`` (1-based) of ``split``; disjoint between splits (mod 3)."""
    _check_split(split)
    if not 1 <= index < 1_000_000:
        raise ValueError("index must be in 1..999999")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    return (int(seed) * 1_000_000 + int(index)) * 3 + _SPLIT_CODE[split]


def sequence_name(split: str, index: int) -> str:
    """``SynTrain001``, ``SynVal001``, ``SynTest001``, ... (no dashes: OTB names have none)."""
    _check_split(split)
    return f"{_PREFIX[split]}{index:03d}"


def _n_frames(seq_seed: int, frames: tuple[int, int]) -> int:
    lo, hi = frames
    return int(np.random.default_rng([seq_seed, 101]).integers(lo, hi + 1))


def plan(seed: int, split: str, index: int, frames: tuple[int, int] = DEFAULT_FRAMES,
         size: tuple[int, int] = DEFAULT_SIZE, attributes: Sequence[str] | None = None,
         options=None) -> SequencePlan:
    """The :class:`SequencePlan` of sequence ``index`` (``attributes`` forces the set to exercise;
    ``options``: a :class:`.footage.PlanOptions`, image folders and footage dynamics)."""
    s = sequence_seed(seed, split, index)
    return plan_sequence(s, split, _n_frames(s, frames), size,
                         list(attributes) if attributes is not None else None, options)


def measure(p: SequencePlan, boxes: np.ndarray, frames: list) -> dict:
    """Per-sequence measurements behind the attribute labels (all JSON-friendly)."""
    from foundation.boxes import centers

    W, H = p.size
    present = boxes[:, 2] > 0  # footage exits leave 0,0,0,0 boxes: not moves, not areas
    c = centers(boxes)
    speed = np.hypot(*np.diff(c, axis=0).T)[present[1:] & present[:-1]] if len(boxes) > 1 else np.zeros(1)
    area = boxes[present, 2] * boxes[present, 3]
    touching = ((boxes[:, 0] <= 0) | (boxes[:, 1] <= 0) | (boxes[:, 0] + boxes[:, 2] >= W)
                | (boxes[:, 1] + boxes[:, 3] >= H))
    light = np.array([fr.light for fr in frames])
    gaps = [fr.distractor_gap for fr in frames]
    return {
        "max_center_shift_px": round(float(speed.max(initial=0.0)), 3),
        "median_box_area": round(float(np.median(area)), 1),
        "frames_touching_border": int(touching.sum()),
        "min_visible_fraction": round(min(fr.visible_fraction for fr in frames), 4),
        "scale_ratio": round(float(p.scale.max() / p.scale.min()), 4),
        "rotation_range_deg": round(float(np.ptp(p.angle)), 2),
        "max_out_of_plane_deg": round(float(max(np.abs(p.yaw).max(),
                                                0.0 if p.pitch is None else np.abs(p.pitch).max())), 2),
        "max_deformation": round(float(p.deform.max()), 4),
        "illumination_ratio": round(float(light.max() / max(light.min(), 1e-6)), 4),
        "max_blur_px": round(float(p.blur_len.max()), 3),
        "max_occluded_fraction": round(max(fr.occluded_fraction for fr in frames), 4),
        "min_distractor_gap": round(float(min(gaps)), 3) if np.isfinite(min(gaps)) else None,
        "box_area_range": [float(area.min()), float(area.max())],
    }


def label(planned: Sequence[str], stats: dict) -> list[str]:
    """The attributes really exercised, from the measurements (see the module docstring)."""
    ok = {
        "FM": stats["max_center_shift_px"] > FM_MIN_SPEED,
        "OV": stats["frames_touching_border"] > 0 and stats["min_visible_fraction"] < OV_MAX_VISIBLE,
        "LR": stats["median_box_area"] < LR_MAX_AREA,
        "SV": "SV" in planned and stats["scale_ratio"] >= SV_MIN_RATIO,
        "IPR": "IPR" in planned and stats["rotation_range_deg"] >= IPR_MIN_RANGE,
        "OPR": "OPR" in planned and stats["max_out_of_plane_deg"] >= OPR_MIN_YAW,
        "DEF": "DEF" in planned and stats["max_deformation"] >= DEF_MIN_AMPLITUDE,
        "IV": "IV" in planned and stats["illumination_ratio"] >= IV_MIN_RATIO,
        "MB": "MB" in planned and stats["max_blur_px"] >= MB_MIN_LENGTH,
        "OCC": "OCC" in planned and stats["max_occluded_fraction"] >= OCC_MIN_FRACTION,
        "BC": "BC" in planned and stats["min_distractor_gap"] is not None
              and stats["min_distractor_gap"] <= BC_MAX_GAP,
    }
    return [a for a in OTB_ATTRIBUTES if ok[a]]


def render(p: SequencePlan, draw_target: bool = True, keep_masks: bool = False):
    """Render a plan in memory: ``(frames, boxes (N, 4), attributes, stats)``; frames are
    :class:`.rendering.Frame` objects (``image`` BGR uint8, ``mask`` when ``keep_masks``)."""
    frames = list(through_codec(iter_frames(p, draw_target=draw_target, keep_masks=keep_masks), p.codec))
    boxes = np.array([fr.box for fr in frames])
    stats = measure(p, boxes, frames)
    return frames, boxes, label(p.attributes, stats), stats


def _request(seed: int, split: str, index: int, frames, size, extra: dict | None = None) -> dict:
    return {"name": "otb_eval.synthetic", "version": VERSION, "index": index,
            "sequence_seed": sequence_seed(seed, split, index),
            "frames_range": [int(frames[0]), int(frames[1])], "size": [int(size[0]), int(size[1])],
            **(extra or {})}


def _is_complete(folder: str, request: dict) -> bool | None:
    """True if ``folder`` holds this very sequence, False if something else, None if empty/absent."""
    if not os.path.isdir(folder) or not os.listdir(folder):
        return None
    try:
        with open(os.path.join(folder, "attributes.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
        gen = meta["generator"]
        if any(gen.get(k) != v for k, v in request.items()) or gen.get("profile") != request.get("profile"):
            return False
        n = int(meta["frames"])
        with open(os.path.join(folder, "groundtruth_rect.txt"), encoding="utf-8") as fh:
            rows = [r for r in fh.read().splitlines() if r.strip()]
        return len(rows) == n and os.path.isfile(os.path.join(folder, "img", f"{n:04d}.jpg"))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def write_sequence(out_dir: str, name: str, p: SequencePlan, meta: dict) -> dict:
    """Render ``p`` into ``out_dir/name`` atomically; returns the attributes.json content."""
    import cv2

    tmp = os.path.join(out_dir, f".{name}.partial-{os.getpid()}")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(os.path.join(tmp, "img"))
    try:
        frames, boxes = [], []
        codec_used: dict = {}
        for f, fr in enumerate(through_codec(iter_frames(p), p.codec, codec_used)):
            path = os.path.join(tmp, "img", f"{f + 1:04d}.jpg")
            if not cv2.imwrite(path, fr.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise OSError(f"cannot write {path}")
            fr.image = None  # keep the measurements only
            frames.append(fr)
            boxes.append(fr.box)
        boxes = np.array(boxes)
        stats = {**measure(p, boxes, frames), **codec_used}
        attrs = label(p.attributes, stats)
        with open(os.path.join(tmp, "groundtruth_rect.txt"), "w", encoding="utf-8") as fh:
            fh.write("".join(f"{int(b[0])},{int(b[1])},{int(b[2])},{int(b[3])}\n" for b in boxes))
        with open(os.path.join(tmp, VISIBILITY_FILE), "w", encoding="utf-8") as fh:
            fh.write(format_visibility(frames))
        content = {
            "attributes": attrs,
            "split": p.split,
            "seed": meta["seed"],
            "frames": p.n_frames,
            "size": list(p.size),
            "generator": {**meta["generator"], "planned": list(p.attributes),
                          "dropped": [a for a in p.attributes if a not in attrs],
                          "photo_library": _photo_library(),
                          "box_convention": BOX_CONVENTION, "definitions": DEFINITIONS,
                          "stats": stats, **p.info,
                          **({"absent_frames": np.flatnonzero(boxes[:, 2] <= 0)} if p.absent_ok else {})},
        }
        with open(os.path.join(tmp, "attributes.json"), "w", encoding="utf-8") as fh:
            json.dump(content, fh, indent=1, sort_keys=False, default=_json_default)
            fh.write("\n")
        final = os.path.join(out_dir, name)
        if os.path.exists(final):
            trash = os.path.join(out_dir, f".{name}.old-{os.getpid()}")
            os.rename(final, trash)
            os.rename(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, final)
        return content
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _photo_library() -> str | None:
    """``"scikit-image <version>"`` whose photographs were available, or None (procedural only).

    The same seed gives the same bytes only with the same photographs available."""
    from .sources import available_photos

    if not available_photos():
        return None
    try:
        from importlib.metadata import version

        return f"scikit-image {version('scikit-image')}"
    except Exception:  # pragma: no cover - metadata missing
        return "scikit-image"


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj).__name__)


def _validate(n_sequences, seed, split, frames, size):
    from foundation.errors import UserError

    _check_split(split)
    if int(n_sequences) < 0 or int(n_sequences) >= 1_000_000:
        raise UserError(f"--sequences must be between 0 and 999999, got {n_sequences}")
    if int(seed) < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    lo, hi = (int(v) for v in frames)
    if lo < 2 or hi < lo or hi > 100_000:
        raise UserError(f"--frames must be MIN:MAX with 2 <= MIN <= MAX, got {lo}:{hi}")
    w, h = (int(v) for v in size)
    if w < 64 or h < 64 or w > 8192 or h > 8192:
        raise UserError(f"--size must be WxH with both between 64 and 8192, got {w}x{h}")


def generate(out_dir: str, n_sequences: int, seed: int = 0, split: str = "test",
             frames: tuple[int, int] = DEFAULT_FRAMES, size: tuple[int, int] = DEFAULT_SIZE,
             progress: bool = True, overwrite: bool = False, profile: str = "default",
             objects: str | None = None, backgrounds: str | None = None) -> list[str]:
    """Write sequences 1..``n_sequences`` of ``split`` under ``out_dir``; return their names.

    ``profile`` (``default`` or ``footage``) and the image folders ``objects`` / ``backgrounds``
    are :mod:`.footage`'s; the default profile without folders writes what it always wrote.

    Sequences already there with the same settings are skipped (resume); a non-empty folder
    holding anything else is refused unless ``overwrite``.
    """
    from foundation.errors import UserError

    _validate(n_sequences, seed, split, frames, size)
    from .footage import run_options

    options, extra = run_options(profile, objects, backgrounds)
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"output {out_dir} exists and is not a folder")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output folder {out_dir}: {err.strerror or err}") from None
    for entry in os.listdir(out_dir):  # leftovers of interrupted runs
        if entry.startswith(".") and (".partial-" in entry or ".old-" in entry):
            shutil.rmtree(os.path.join(out_dir, entry), ignore_errors=True)

    names = [sequence_name(split, i) for i in range(1, int(n_sequences) + 1)]
    todo = []
    for i, name in enumerate(names, start=1):
        state = _is_complete(os.path.join(out_dir, name), _request(seed, split, i, frames, size, extra))
        if state is True and not overwrite:
            continue
        if state is False and not overwrite:
            raise UserError(f"{os.path.join(out_dir, name)} exists and holds something else "
                            "(another seed, size or frame range?); pass --overwrite to replace it")
        todo.append((i, name))

    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"synth {split}", unit="seq")
    try:
        for i, name in todo:
            p = plan(seed, split, i, frames, size, options=options)
            meta = {"seed": int(seed), "generator": _request(seed, split, i, frames, size, extra)}
            try:
                write_sequence(out_dir, name, p, meta)
            except OSError as err:  # a full disk or a read-only folder is not a bug
                raise UserError(f"cannot write {os.path.join(out_dir, name)}: "
                                f"{err.strerror or err}") from None
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return names
