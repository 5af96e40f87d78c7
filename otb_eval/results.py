"""Result files: the one writer (got10k's layout, written atomically) and readers for every layout.

Written by this project, as got10k writes them::

    RESULTS/<tracker>/<seq>.txt              one comma-separated x,y,w,h row per frame
    RESULTS/<tracker>/times/<seq>_time.txt   seconds per frame
    RESULTS/<tracker>/scores/<seq>_score.txt the tracker's confidence per frame (only for trackers
                                             that report one: a ``score`` attribute, see experiment)

Read from anyone: got10k and this project (as above), pytracking (``<seq>.txt``, tab or comma,
``Jogging_1`` names), pysot (``<seq>.txt``, ``Jogging-1`` names), and the OTB MATLAB toolkit's
per-sequence ``.mat`` files (``results{1}.res`` with ``type`` ``'rect'``, ``jogging-1_<TRK>.mat``).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Sequence as SequenceType

import numpy as np

from foundation.errors import UserError
from foundation.fileio import atomic_write_text

from .datasets import Sequence, alias_index, canonical_name, parse_boxes

TIME_DIR = "times"
SCORE_DIR = "scores"


def remove_stale_temporaries(results_dir: str, tracker: str) -> None:
    """Delete temporaries a killed run left behind (they never replaced a finished file)."""
    for folder in (os.path.join(results_dir, tracker), os.path.join(results_dir, tracker, TIME_DIR),
                   os.path.join(results_dir, tracker, SCORE_DIR)):
        if os.path.isdir(folder):
            for entry in os.listdir(folder):
                if entry.startswith(".tmp-"):
                    os.unlink(os.path.join(folder, entry))


def format_boxes(boxes: np.ndarray) -> str:
    return "".join(",".join(f"{v:.4f}" for v in row) + "\n" for row in np.asarray(boxes, float))


def result_path(results_dir: str, tracker: str, seq: str) -> str:
    return os.path.join(results_dir, tracker, f"{seq}.txt")


def time_path(results_dir: str, tracker: str, seq: str) -> str:
    return os.path.join(results_dir, tracker, TIME_DIR, f"{seq}_time.txt")


def score_path(results_dir: str, tracker: str, seq: str) -> str:
    return os.path.join(results_dir, tracker, SCORE_DIR, f"{seq}_score.txt")


def write_result(results_dir: str, tracker: str, seq: str, boxes: np.ndarray,
                 times: np.ndarray, scores: np.ndarray | None = None) -> str:
    """Write one sequence's boxes, times and (if given) scores atomically; the box file, written
    last, marks it done."""
    atomic_write_text(time_path(results_dir, tracker, seq),
                      "".join(f"{t:.8f}\n" for t in np.asarray(times, float).ravel()))
    if scores is not None:
        atomic_write_text(score_path(results_dir, tracker, seq),
                          "".join(f"{s:.6f}\n" for s in np.asarray(scores, float).ravel()))
    path = result_path(results_dir, tracker, seq)
    atomic_write_text(path, format_boxes(boxes))
    return path


def read_scores(results_dir: str, tracker: str, seq: str) -> np.ndarray | None:
    """A run's per-frame scores, or None when the tracker wrote none."""
    path = score_path(results_dir, tracker, seq)
    return np.loadtxt(path, ndmin=1, dtype=float) if os.path.isfile(path) else None


def is_done(results_dir: str, tracker: str, seq: str, frames: int | None = None) -> bool:
    """Whether a finished result exists: the box file parses and, when ``frames`` is given,
    has one row per frame. A truncated or garbage file is not done (one warning line), so a
    resumed evaluation tracks that sequence again instead of counting it."""
    path = result_path(results_dir, tracker, seq)
    if not os.path.isfile(path):
        return False
    try:
        rows = len(parse_boxes(path))
    except UserError as err:
        problem = str(err)
    else:
        if frames is None or rows == frames:
            return True
        problem = f"{path} has {rows} rows for {frames} frames"
    warnings.warn(f"{problem}; tracking {tracker}/{seq} again", stacklevel=2)
    return False


@dataclass
class TrackerResults:
    """Where one tracker's per-sequence files are, keyed by our canonical sequence name."""

    name: str
    folder: str
    files: dict[str, str]

    def boxes(self, seq: Sequence) -> np.ndarray:
        """The tracker's boxes on ``seq``, aligned to its annotated frames."""
        path = self.files.get(seq.name)
        if path is None:
            raise UserError(f"tracker {self.name}: no result for sequence {seq.name} in {self.folder}")
        boxes = read_boxes(path)
        return align_to_sequence(boxes, seq, path)

    def times(self, seq: Sequence) -> np.ndarray | None:
        """Per-frame seconds if a ``times/<seq>_time.txt`` exists (got10k layout), else None."""
        path = self.files.get(seq.name)
        if path is None or not path.endswith(".txt"):
            return None
        stem = os.path.splitext(os.path.basename(path))[0]
        tpath = os.path.join(os.path.dirname(path), TIME_DIR, f"{stem}_time.txt")
        if not os.path.isfile(tpath):
            return None
        try:
            return np.loadtxt(tpath, ndmin=1)
        except ValueError:
            raise UserError(f"malformed time file {tpath}") from None


def read_boxes(path: str) -> np.ndarray:
    """Boxes from a ``.txt`` (comma, tab or space) or a MATLAB toolkit ``.mat`` result file."""
    if path.lower().endswith(".mat"):
        return read_matlab_result(path)
    return parse_boxes(path)


def read_matlab_result(path: str) -> np.ndarray:
    """``results{1}.res`` of an OTB MATLAB toolkit result file whose ``type`` is ``'rect'``."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises several types for corrupt files
        raise UserError(f"cannot read MATLAB result {path}: {err}") from None
    if "results" not in mat:
        raise UserError(f"{path}: not an OTB toolkit result (no 'results' variable)")
    results = mat["results"]
    first = results.flat[0] if isinstance(results, np.ndarray) else results
    kind = str(getattr(first, "type", "rect"))
    if kind != "rect":
        raise UserError(f"{path}: result type {kind!r} is not supported (only 'rect')")
    res = np.asarray(getattr(first, "res", None), dtype=float)
    if res.ndim != 2 or res.shape[1] != 4:
        raise UserError(f"{path}: results{{1}}.res has shape {res.shape}, expected N x 4")
    return res


def align_to_sequence(boxes: np.ndarray, seq: Sequence, path: str) -> np.ndarray:
    """Cut a result covering the whole image folder (e.g. 770 rows for David) down to the
    annotated frames; anything else that does not match is a clear error."""
    if len(boxes) == len(seq):
        return boxes
    numbers = np.asarray(seq.frame_numbers)
    if len(numbers) and len(boxes) >= numbers.max() and numbers.min() >= 1:
        return boxes[numbers - 1]
    raise UserError(f"{path}: {len(boxes)} boxes but sequence {seq.name} has {len(seq)} frames")


def _sequence_key(filename: str, tracker: str) -> str | None:
    """The sequence part of a result file name, or None for files that are not results."""
    stem, ext = os.path.splitext(filename)
    ext = ext.lower()
    if ext == ".txt":
        if stem.endswith("_time") or stem.startswith("."):
            return None
        return stem
    if ext == ".mat":
        suffix = "_" + tracker
        if stem.lower().endswith(suffix.lower()):
            stem = stem[: -len(suffix)]
        return stem
    return None


def find_tracker_results(results_dir: str, tracker: str, seq_names: SequenceType[str]) -> TrackerResults:
    """Index ``results_dir/<tracker>``: map each file to a sequence by any toolkit's spelling."""
    folder = os.path.join(results_dir, tracker)
    if not os.path.isdir(folder):
        raise UserError(f"no results for tracker {tracker!r}: {folder} is not a folder")
    files: dict[str, str] = {}
    unknown: list[str] = []
    index = alias_index(seq_names)
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if not os.path.isfile(path):
            continue
        key = _sequence_key(entry, tracker)
        if key is None:
            if not entry.startswith("."):
                unknown.append(entry)
            continue
        canon = canonical_name(key, index)
        if canon is not None:
            files.setdefault(canon, path)
    if not files and unknown:
        raise UserError(f"{folder}: unknown result layout (e.g. {unknown[0]}); expected "
                        "<seq>.txt files (got10k, pytracking, pysot) or <seq>_<tracker>.mat (OTB toolkit)")
    return TrackerResults(tracker, folder, files)


def tracker_folders(results_dir: str) -> list[str]:
    """Tracker names in a results folder (its sub-folders, hidden ones excluded)."""
    if not os.path.isdir(results_dir):
        raise UserError(f"results folder {results_dir} does not exist")
    return sorted(e for e in os.listdir(results_dir)
                  if not e.startswith(".") and os.path.isdir(os.path.join(results_dir, e)))
