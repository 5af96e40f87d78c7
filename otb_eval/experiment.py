"""Run trackers over a dataset: OPE, TRE and SRE, resumably and in parallel over runs.

A *run* is one tracker pass over one sequence from a start frame with an initial box. OPE has one
run per sequence; TRE (temporal robustness) 20 runs starting at evenly spaced frames; SRE (spatial
robustness) 12 runs from shifted and scaled initial boxes. Each finished run is written atomically
as soon as it ends and runs whose result file exists are skipped, so an interrupted evaluation
loses at most the runs in flight and a rerun finishes the rest.

Layout (got10k's for OPE; TRE/SRE in sub-folders of the tracker's folder)::

    RESULTS/<tracker>/<seq>.txt                  RESULTS/<tracker>/times/<seq>_time.txt
                                                 RESULTS/<tracker>/scores/<seq>_score.txt
    RESULTS/<tracker>/tre/<seq>_<k>.txt          k = 01..20
    RESULTS/<tracker>/sre/<seq>_<perturbation>.txt

Scores: a tracker that sets a float ``score`` attribute after each ``init``/``update`` (its
confidence in that frame's box; the project's trackers do) gets a score file per run too. The
attribute is read duck-typed (:func:`frame_score`), so the toolkit needs no tracker package; a
tracker without one writes no score file, and the box files are the same either way.
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence as SequenceType

import numpy as np

from foundation import boxes as B
from foundation.errors import UserError

from .datasets import OTBDataset, Sequence
from .results import is_done, remove_stale_temporaries, write_result

PROTOCOLS = ("ope", "tre", "sre")
TRE_RUNS = 20
TRE_MIN_LENGTH = 20
SRE_SHIFT = 0.1
# The 12 SRE perturbations of the OTB toolkit: 8 shifts by 10% of the box size, 4 scalings.
SRE_PERTURBATIONS = {
    "left": (-1, 0, 1.0), "right": (1, 0, 1.0), "up": (0, -1, 1.0), "down": (0, 1, 1.0),
    "up-left": (-1, -1, 1.0), "up-right": (1, -1, 1.0),
    "down-left": (-1, 1, 1.0), "down-right": (1, 1, 1.0),
    "scale-0.8": (0, 0, 0.8), "scale-0.9": (0, 0, 0.9), "scale-1.1": (0, 0, 1.1), "scale-1.2": (0, 0, 1.2),
}


@dataclass(frozen=True, eq=False)
class Run:
    """One pass of a tracker: ``seq`` from frame index ``start`` with ``init_box``."""

    seq: Sequence
    key: str                      # file stem of the result
    start: int = 0
    init_box: tuple[float, float, float, float] | None = None

    @property
    def frames(self) -> int:
        return len(self.seq) - self.start

    def gt(self) -> np.ndarray:
        return self.seq.anno[self.start:]


@dataclass
class RunSummary:
    """What an evaluation did: runs tracked now, runs found done, frames, seconds."""

    tracker: str
    tracked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def ope_runs(dataset: Iterable[Sequence]) -> list[Run]:
    return [Run(seq, seq.name) for seq in dataset]


def tre_starts(anno: np.ndarray, runs: int = TRE_RUNS, min_length: int = TRE_MIN_LENGTH) -> list[int]:
    """0-based start frames of the TRE segments of a sequence.

    ``runs`` starts evenly spaced over ``[0, N - min_length]`` so that every segment runs to the
    end of the sequence and has at least ``min_length`` frames; a start on a frame with invalid
    ground truth moves forward to the next valid frame; duplicates (short sequences) are dropped.
    """
    n = len(anno)
    if n < min_length:
        return [0]
    ok = B.valid(anno)
    starts: list[int] = []
    for s in np.floor(np.linspace(0, n - min_length, runs)).astype(int):
        while s < n - min_length and not ok[s]:
            s += 1
        if ok[s] and s not in starts:
            starts.append(int(s))
    return starts or [0]


def tre_runs(dataset: Iterable[Sequence]) -> list[Run]:
    return [Run(seq, key, start) for seq in dataset for key, start in run_plan("tre", seq)]


def run_plan(protocol: str, seq: Sequence) -> list[tuple[str, int]]:
    """``(result file stem, start frame)`` of every run of ``protocol`` on ``seq``; shared by
    the runner and the scorer so that both always agree."""
    if protocol == "ope":
        return [(seq.name, 0)]
    if protocol == "tre":
        return [(f"{seq.name}_{k + 1:02d}", s) for k, s in enumerate(tre_starts(seq.anno))]
    if protocol == "sre":
        return [(f"{seq.name}_{p}", 0) for p in SRE_PERTURBATIONS]
    raise UserError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def sre_box(box: np.ndarray, perturbation: str, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """The initial box of one SRE run: shifted by 10% of its size or scaled about its centre,
    then clipped into the image when its size is known."""
    dx, dy, scale = SRE_PERTURBATIONS[perturbation]
    x, y, w, h = np.asarray(box, dtype=float)
    cx, cy = x + w / 2 + dx * SRE_SHIFT * w, y + h / 2 + dy * SRE_SHIFT * h
    w, h = w * scale, h * scale
    out = np.array([cx - w / 2, cy - h / 2, w, h])
    if image_size is not None:
        out = B.clip_to_image(out, image_size[0], image_size[1])
    return out


def sre_runs(dataset: Iterable[Sequence]) -> list[Run]:
    from foundation.images import read_bgr

    runs = []
    for seq in dataset:
        height, width = read_bgr(seq.img_files[0]).shape[:2]
        for (key, _), name in zip(run_plan("sre", seq), SRE_PERTURBATIONS):
            runs.append(Run(seq, key, 0, tuple(sre_box(seq.anno[0], name, (width, height)).tolist())))
    return runs


def protocol_runs(protocol: str, dataset: Iterable[Sequence]) -> list[Run]:
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return {"ope": ope_runs, "tre": tre_runs, "sre": sre_runs}[protocol](dataset)


def results_folder(tracker: str, protocol: str) -> str:
    """The results sub-folder of a tracker for a protocol (relative to RESULTS)."""
    return tracker if protocol == "ope" else os.path.join(tracker, protocol)


TrackerSource = Any
"""What an experiment runs: a got10k-style tracker object (``init``/``update``; reused for every
run, or copied into each worker process) or a zero-argument factory returning one (called once per
run, so each run starts fresh). Factories must be picklable for ``workers > 1`` (a module-level
function, a ``functools.partial``, ``tracker.factory(name, **options)``)."""


def track_frames(tracker: Any, frames: Iterable[Any], box: SequenceType[float],
                 on_frame: Callable[[int, Any, np.ndarray], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The one frame loop (the experiments', ``Tracker.track``'s and ``metatrack track``'s):
    ``init`` on the first frame, ``update`` on the rest; return the boxes (N x 4, the first
    being ``box``) and the seconds each call took (frame reading excluded).

    ``frames`` are image files (read as BGR arrays, faster than PIL) or images; the project's
    trackers accept both. ``on_frame(index, image, box)`` runs after each frame (drawing,
    progress bars) and is not timed. The first box must be valid
    (:func:`foundation.boxes.check_init_box`) and every frame the first frame's size, else a
    :class:`UserError` names what is wrong before the tracker sees it.
    """
    from foundation.images import check_frame_size, image_size, read_bgr

    box = np.asarray(box, dtype=float).reshape(4)
    boxes, times = [], []
    size = None
    for f, item in enumerate(frames):
        image = read_bgr(item) if isinstance(item, (str, os.PathLike)) else item
        if size is None:
            size = image_size(image)
            B.check_box(box, *size)
        else:
            check_frame_size(image, size, f"frame {f + 1}" + (f" ({item})" if isinstance(item, str) else ""))
        t0 = time.perf_counter()
        if f == 0:
            tracker.init(image, box.copy())
            out = box.copy()
        else:
            out = np.asarray(tracker.update(image), dtype=float).reshape(4)
        times.append(time.perf_counter() - t0)
        boxes.append(out)
        if on_frame is not None:
            on_frame(f, image, out)
    return np.array(boxes, dtype=float).reshape(-1, 4), np.array(times, dtype=float)


def track_sequence(tracker: Any, seq: Sequence, init_box: np.ndarray | None = None,
                   start: int = 0, on_frame: Callable[[int, Any, np.ndarray], None] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Run a got10k-style tracker over ``seq`` from frame ``start``; return boxes and seconds."""
    box = seq.anno[start] if init_box is None else init_box
    return track_frames(tracker, seq.img_files[start:], box, on_frame)


def frame_score(tracker: Any) -> float | None:
    """The tracker's confidence in its last box: its ``score`` attribute as a float, or None when
    it has none (duck-typed: any got10k-style tracker may offer one)."""
    score = getattr(tracker, "score", None)
    if score is None or isinstance(score, bool) or not isinstance(score, (int, float, np.floating, np.integer)):
        return None
    return float(score)


def is_tracker(obj: Any) -> bool:
    """A tracker object (got10k's interface), as opposed to a factory of them (a tracker class
    is a factory: it has ``init``/``update`` too, unbound)."""
    return not isinstance(obj, type) and callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None))


def tracker_name(tracker: TrackerSource, name: str | None = None) -> str:
    """The results folder name: ``name``, else the tracker's or factory's ``name`` attribute,
    else a function's ``__name__``."""
    found = name or getattr(tracker, "name", None) or getattr(tracker, "__name__", None)
    if not isinstance(found, str) or not found or found == "<lambda>":
        raise UserError("the tracker has no name: pass name=... (it names the results folder)")
    return found


def _build(tracker: TrackerSource) -> Any:
    if is_tracker(tracker):
        return tracker
    if not callable(tracker):
        raise UserError(f"expected a tracker (init/update) or a factory of one, got "
                        f"{type(tracker).__name__}")
    return tracker()


RUN_THREADS = 1   # torch threads of every tracked run, whatever the number of workers or processes


@contextmanager
def fixed_threads(n: int = RUN_THREADS) -> Iterator[None]:
    """Torch's intra-op thread count set to ``n`` for one run, then restored.

    The thread count changes the order of float summations and so a tracker's boxes; fixing it
    per run makes the result files the same for ``--workers 1``, ``--workers N`` and torchrun.
    Torch is touched only if the tracker already imported it (the toolkit runs without torch)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_one(tracker: TrackerSource, run: Run, results_dir: str, folder: str) -> tuple[str, int]:
    built = _build(tracker)
    scores: list[float | None] = []
    with fixed_threads():
        boxes, times = track_sequence(built, run.seq, run.init_box, run.start,
                                      on_frame=lambda f, image, box: scores.append(frame_score(built)))
    reported = None if any(s is None for s in scores) else np.array(scores, dtype=float)
    write_result(results_dir, folder, run.key, boxes, times, reported)
    return run.key, run.frames


def run_experiment(tracker: TrackerSource, runs: SequenceType[Run], results_dir: str,
                   folder: str, workers: int = 1, progress: bool = True,
                   shard: tuple[int, int] = (0, 1), clean: bool = True) -> RunSummary:
    """Do every run whose result is missing under ``results_dir/folder``; skip the rest.

    ``shard=(i, n)`` does only runs ``i, i + n, i + 2n, ...`` of ``runs``: n processes (torchrun
    ranks) with shards 0..n-1 share one evaluation, each run written once. The split is taken
    over all runs, finished or not, so every process agrees on it whatever is already done.
    ``clean=False`` leaves other processes' temporaries alone (the caller removed stale ones
    before the processes started, :func:`otb_eval.results.remove_stale_temporaries`)."""
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise UserError(f"shard {index} of {count} does not exist")
    runs = list(runs)[index::count]
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if not (is_tracker(tracker) or callable(tracker)):
        raise UserError(f"expected a tracker (init/update) or a factory of one, got "
                        f"{type(tracker).__name__}")
    if clean:
        remove_stale_temporaries(results_dir, folder)
    todo = [r for r in runs if not is_done(results_dir, folder, r.key, r.frames)]
    pending_keys = {r.key for r in todo}
    summary = RunSummary(folder, skipped=[r.key for r in runs if r.key not in pending_keys])
    bar = _progress(len(runs), folder, progress, initial=len(summary.skipped))
    t0 = time.perf_counter()

    def finished(key: str, frames: int) -> None:
        summary.tracked.append(key)
        summary.frames += frames
        summary.seconds = time.perf_counter() - t0
        bar.set_postfix_str(f"{key} ({summary.fps:.1f} fps)")
        bar.update(1)

    try:
        if workers == 1 or len(todo) <= 1:
            for run in todo:
                finished(*_run_one(tracker, run, results_dir, folder))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                pending = {pool.submit(_run_one, tracker, r, results_dir, folder) for r in todo}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        finished(*fut.result())
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def run_protocol(tracker: TrackerSource, dataset: OTBDataset | SequenceType[Sequence],
                 results_dir: str, protocol: str = "ope", name: str | None = None,
                 workers: int = 1, progress: bool = True, shard: tuple[int, int] = (0, 1),
                 clean: bool = True) -> RunSummary:
    """Evaluate ``tracker`` (an object or a factory, see :data:`TrackerSource`) on ``dataset``
    under ``protocol``; ``name`` (default: the tracker's ``name``) is its results folder.
    ``shard`` and ``clean``: see :func:`run_experiment`."""
    folder = results_folder(tracker_name(tracker, name), protocol)
    runs = protocol_runs(protocol, dataset)
    return run_experiment(tracker, runs, results_dir, folder, workers, progress, shard, clean)


def run_ope(tracker: TrackerSource, dataset: OTBDataset | SequenceType[Sequence],
            results_dir: str, name: str | None = None, workers: int = 1,
            progress: bool = True) -> RunSummary:
    """One-pass evaluation: got10k's ``ExperimentOTB.run``, resumable and parallel."""
    return run_protocol(tracker, dataset, results_dir, "ope", name, workers, progress)


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="run", disable=not enabled,
                dynamic_ncols=True, leave=True)
