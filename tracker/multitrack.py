"""Several targets in one frame stream: one tracker per target, all fed the same frames.

Each target runs the toolkit's one frame loop (:func:`otb_eval.experiment.track_frames`) in a
thread of its own, so its boxes are exactly those of tracking it alone; the threads run side by
side (torch and OpenCV release the GIL in their work) and meet at every frame, so results come
out frame by frame, in order, as a live source delivers them.

``iter_video`` yields a :class:`Step` per frame (it unpacks as ``index, boxes, scores``);
``track_video`` runs to the end and returns every target's boxes, scores and seconds. A score is
what the tracker's ``score`` attribute holds after the frame (None for trackers without one).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np

from foundation.errors import UserError

__all__ = ["Step", "TrackResult", "iter_video", "track_video"]

_STOP = object()


class Step(tuple):
    """``(index, boxes, scores)`` of one frame: ``boxes`` K x 4, ``scores`` K floats or Nones.
    Also carries ``image`` (the BGR frame) and ``seconds`` (each tracker's time on it)."""

    def __new__(cls, index: int, boxes: np.ndarray, scores: List[Optional[float]],
                image: Any = None, seconds: Sequence[float] = (), lost: Sequence[bool] = ()) -> "Step":
        step = super().__new__(cls, (index, boxes, scores))
        step.image, step.seconds = image, list(seconds)
        step.lost = list(lost) or [False] * len(scores)   # each tracker's lost flag (score under its threshold)
        return step

    @property
    def index(self) -> int:
        return self[0]

    @property
    def boxes(self) -> np.ndarray:
        return self[1]

    @property
    def scores(self) -> List[Optional[float]]:
        return self[2]


@dataclass
class TrackResult:
    """All frames of a run: ``boxes`` K x N x 4, ``scores`` K x N (nan where None), ``times``
    K x N seconds, and ``has_scores`` (whether any tracker reported a score)."""

    boxes: np.ndarray
    scores: np.ndarray
    times: np.ndarray
    has_scores: bool


def _score(trk: Any) -> Optional[float]:
    value = getattr(trk, "score", None)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


class _Lane(threading.Thread):
    """One target: takes frames from ``inbox``, puts ``(box, score, seconds, lost)`` or an
    exception into ``outbox``."""

    def __init__(self, trk: Any, box: np.ndarray, number: int) -> None:
        super().__init__(name=f"metatrack-target-{number}", daemon=True)
        self.trk, self.box = trk, box
        self.inbox: "queue.Queue[Any]" = queue.Queue(maxsize=1)
        self.outbox: "queue.Queue[Any]" = queue.Queue()
        self._t0 = 0.0

    def _frames(self) -> Iterator[Any]:
        while True:
            item = self.inbox.get()
            if item is _STOP:
                return
            self._t0 = time.perf_counter()
            yield item

    def _done(self, f: int, image: Any, box: np.ndarray) -> None:
        self.outbox.put((box, _score(self.trk), time.perf_counter() - self._t0, bool(getattr(self.trk, "lost", False))))

    def run(self) -> None:
        from otb_eval.experiment import track_frames

        try:
            track_frames(self.trk, self._frames(), self.box, self._done)
        except BaseException as err:  # noqa: BLE001 - handed to the reading thread
            self.outbox.put(err)


def _trackers(tracker: Union[str, Callable[[], Any], Sequence[Any]], k: int, **options: Any) -> List[Any]:
    from otb_eval.experiment import is_tracker

    if isinstance(tracker, str):
        from .api import make

        return [make(tracker, **options) for _ in range(k)]
    if callable(tracker) and not is_tracker(tracker):
        return [tracker() for _ in range(k)]
    trackers = list(tracker)
    if len(trackers) != k or len(set(map(id, trackers))) != k:
        raise UserError(f"give one tracker object per target: {k} boxes, {len(trackers)} trackers")
    return trackers


def iter_video(source: Union[str, Iterable[Any]], boxes: Sequence[Sequence[float]],
               tracker: Union[str, Callable[[], Any], Sequence[Any]] = "metasdnet",
               **options: Any) -> Iterator[Step]:
    """Track every box of ``boxes`` (initial ``x, y, w, h`` on the first frame) through
    ``source`` (a path :func:`tracker.video.open_frames` reads, a source of
    :mod:`tracker.sources`, or any iterable of images), yielding one :class:`Step` per frame.

    ``tracker``: a registered name (built with ``options``, e.g. ``device=``), a factory called
    once per target, or one tracker object per target. Closing the generator early (``break``)
    stops the trackers."""
    init = np.asarray(boxes, dtype=float).reshape(-1, 4)
    if not len(init):
        raise UserError("no initial box: give at least one x,y,w,h")
    if isinstance(source, str):
        from .video import open_frames

        source = open_frames(source)
    lanes = [_Lane(t, b, i + 1) for i, (t, b) in enumerate(zip(_trackers(tracker, len(init), **options), init))]
    for lane in lanes:
        lane.start()
    try:
        for index, image in enumerate(source):
            for lane in lanes:
                lane.inbox.put(image)
            results = [lane.outbox.get() for lane in lanes]
            for r in results:
                if isinstance(r, BaseException):
                    raise r
            yield Step(index, np.array([r[0] for r in results], float).reshape(-1, 4),
                       [r[1] for r in results], image, [r[2] for r in results], [r[3] for r in results])
    finally:
        for lane in lanes:
            if lane.is_alive():
                lane.inbox.put(_STOP)
        for lane in lanes:
            lane.join(timeout=5.0)


def track_video(source: Union[str, Iterable[Any]], boxes: Sequence[Sequence[float]],
                tracker: Union[str, Callable[[], Any], Sequence[Any]] = "metasdnet",
                on_frame: Optional[Callable[[int, np.ndarray, List[Optional[float]]], Any]] = None,
                **options: Any) -> TrackResult:
    """:func:`iter_video` to the end; ``on_frame(index, boxes, scores)`` after each frame
    (returning False stops the run there). Returns every frame's boxes, scores and times."""
    steps: List[Step] = []
    gen = iter_video(source, boxes, tracker, **options)
    try:
        for step in gen:
            steps.append(Step(step.index, step.boxes, step.scores, None, step.seconds))
            if on_frame is not None and on_frame(*step) is False:
                break
    finally:
        gen.close()
    k = len(np.asarray(boxes, dtype=float).reshape(-1, 4))
    raw = [s.scores for s in steps]
    scores = np.array([[np.nan if v is None else v for v in row] for row in raw], float).reshape(-1, k).T
    return TrackResult(np.array([s.boxes for s in steps], float).reshape(-1, k, 4).transpose(1, 0, 2),
                       scores, np.array([s.seconds for s in steps], float).reshape(-1, k).T,
                       any(v is not None for row in raw for v in row))
