"""Run trackers over a dataset (one-pass evaluation), resumably and in parallel over sequences.

Each finished sequence is written atomically as soon as it ends, and sequences whose result file
exists are skipped, so an interrupted run loses at most the sequences in flight and a rerun
finishes the rest. Results follow got10k's layout (see :mod:`otb_eval.results`).
"""
from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Sequence as SequenceType

import numpy as np

from tracker.errors import UserError

from .datasets import OTBDataset, Sequence
from .results import is_done, remove_stale_temporaries, write_result


@dataclass
class RunSummary:
    """What a run did: sequences tracked now, sequences found done, frames, seconds."""

    tracker: str
    tracked: list[str]
    skipped: list[str]
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def track_sequence(tracker: Any, seq: Sequence, init_box: np.ndarray | None = None,
                   start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run a got10k-style tracker over ``seq`` from frame ``start``; return boxes and seconds.

    Frames are read as BGR arrays (faster than PIL); our trackers accept both.
    """
    from tracker.images import read_bgr

    files = seq.img_files[start:]
    box = np.asarray(seq.anno[start] if init_box is None else init_box, dtype=float)
    boxes = np.zeros((len(files), 4))
    times = np.zeros(len(files))
    boxes[0] = box
    for f, path in enumerate(files):
        image = read_bgr(path)
        t0 = time.perf_counter()
        if f == 0:
            tracker.init(image, box.copy())
        else:
            boxes[f] = np.asarray(tracker.update(image), dtype=float).reshape(4)
        times[f] = time.perf_counter() - t0
    return boxes, times


def _make_tracker(tracker: str | Callable[[], Any], options: dict) -> Any:
    if callable(tracker):
        return tracker()
    from tracker.api import make

    return make(tracker, **options)


def _run_one(tracker: str | Callable[[], Any], options: dict, seq: Sequence, results_dir: str,
             result_name: str) -> tuple[str, int]:
    # torch inside worker processes must not oversubscribe the cores the pool already uses.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    trk = _make_tracker(tracker, options)
    boxes, times = track_sequence(trk, seq)
    write_result(results_dir, result_name, seq.name, boxes, times)
    return seq.name, len(seq)


def run_ope(tracker: str | Callable[[], Any], dataset: OTBDataset | SequenceType[Sequence],
            results_dir: str, name: str | None = None, workers: int = 1,
            progress: bool = True, **options: Any) -> RunSummary:
    """Track every sequence of ``dataset`` not yet done and write its results.

    ``tracker`` is a registered name (built with ``options``) or a zero-argument factory
    (``workers`` must then be 1 unless it pickles). ``name`` is the results sub-folder
    (default: the registered name).
    """
    result_name = name or (tracker if isinstance(tracker, str) else getattr(tracker, "__name__", "tracker"))
    if isinstance(tracker, str):
        from tracker.api import spec

        spec(tracker)  # an unknown name fails here, before any work
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    sequences = list(dataset)
    remove_stale_temporaries(results_dir, result_name)
    todo = [s for s in sequences if not is_done(results_dir, result_name, s.name)]
    skipped = [s.name for s in sequences if s not in todo]
    bar = _progress(len(sequences), f"{result_name}", progress, initial=len(skipped))
    tracked: list[str] = []
    frames = 0
    t0 = time.perf_counter()
    try:
        if workers == 1 or len(todo) <= 1:
            for seq in todo:
                bar.set_postfix_str(seq.name)
                _, n = _run_one(tracker, options, seq, results_dir, result_name)
                tracked.append(seq.name)
                frames += n
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                pending = {pool.submit(_run_one, tracker, options, s, results_dir, result_name)
                           for s in todo}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        seq_name, n = fut.result()
                        tracked.append(seq_name)
                        frames += n
                        bar.set_postfix_str(seq_name)
                        bar.update(1)
    finally:
        bar.close()
    return RunSummary(result_name, tracked, skipped, frames, time.perf_counter() - t0)


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="seq", disable=not enabled,
                dynamic_ncols=True, leave=True)
