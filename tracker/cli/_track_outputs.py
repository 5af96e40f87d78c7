"""The files ``metatrack track`` writes, and when.

Per target (stem ``<name>`` for one target, ``<name>.1``, ``<name>.2``... for several, as OTB names
Jogging's two): ``<stem>.txt`` (x,y,w,h per frame), ``<stem>_time.txt`` (seconds per frame) and,
when the tracker reports a score, ``<stem>_score.txt`` (one per frame, ``nan`` where it gave
none); one overlay video ``<name>.mp4`` for all targets.

A file or folder is tracked to the end and then written atomically (an interrupted run leaves
the earlier results as they were). A live source has no end to wait for: every line is written and
flushed as its frame is tracked, so Ctrl-C, q or a dropped stream keeps every tracked frame, and
the video is finalised whatever ends the run.
"""
from __future__ import annotations

import os
from typing import IO, Dict, List, Optional, Sequence

import numpy as np

from otb_eval.results import format_boxes

from ..overlay import VideoSink


def target_stems(name: str, k: int) -> List[str]:
    """``name`` for one target, ``name.1`` ... ``name.k`` for several."""
    return [name] if k == 1 else [f"{name}.{i + 1}" for i in range(k)]


def _score_text(value: Optional[float]) -> str:
    return "nan\n" if value is None else f"{value:.6f}\n"


class TrackOutputs:
    """Collects (files) or streams (live sources) one run's results; :meth:`finish` at the end,
    :meth:`abort` when the run fails or is interrupted."""

    def __init__(self, out: str, name: str, k: int, live: bool, video: bool, fps: float) -> None:
        self.out, self.name, self.live = out, name, live
        self.stems = target_stems(name, k)
        self.sink = VideoSink(os.path.join(out, f"{name}.mp4"), fps) if video else None
        self.boxes: List[List[str]] = [[] for _ in self.stems]
        self.times: List[List[str]] = [[] for _ in self.stems]
        self.scores: List[List[str]] = [[] for _ in self.stems]
        self.has_scores = [False] * k
        self.frames, self.seconds = 0, 0.0       # frames tracked, tracker seconds (all targets)
        self._open: Dict[str, IO[str]] = {}
        if live:       # truncate now: these files grow as the frames come
            for stem in self.stems:
                for kind in ("", "_time"):
                    self._file(stem + kind)

    def _file(self, stem: str) -> IO[str]:
        if stem not in self._open:
            self._open[stem] = open(os.path.join(self.out, f"{stem}.txt"), "w", encoding="utf-8")
        return self._open[stem]

    def add(self, boxes: np.ndarray, scores: Sequence[Optional[float]], seconds: Sequence[float],
            drawn: Optional[np.ndarray]) -> None:
        """One frame: every target's box, score and seconds, and the drawn frame for the video."""
        self.frames += 1
        self.seconds += float(sum(seconds))
        for i, stem in enumerate(self.stems):
            lines = (format_boxes(boxes[i][None]), f"{seconds[i]:.8f}\n", _score_text(scores[i]))
            for store, line in zip((self.boxes, self.times, self.scores), lines):
                store[i].append(line)
            if scores[i] is not None and not self.has_scores[i]:
                self.has_scores[i] = True
                if self.live:   # the score file starts late: the frames before had none
                    self._file(stem + "_score").write("".join(self.scores[i][:-1]))
            if self.live:
                self._file(stem).write(lines[0])
                self._file(stem + "_time").write(lines[1])
                if self.has_scores[i]:
                    self._file(stem + "_score").write(lines[2])
        for f in self._open.values():
            f.flush()
        if self.sink is not None and drawn is not None:
            self.sink.write(drawn)

    def finish(self) -> List[str]:
        """Write (files) or close (live) everything; returns the box files' names."""
        from foundation.fileio import atomic_write_text

        if self.live:
            self._close_files()
        else:
            for i, stem in enumerate(self.stems):
                path = os.path.join(self.out, stem)
                atomic_write_text(path + "_time.txt", "".join(self.times[i]))
                if self.has_scores[i]:
                    atomic_write_text(path + "_score.txt", "".join(self.scores[i]))
                atomic_write_text(path + ".txt", "".join(self.boxes[i]))
        if self.sink is not None:
            self.sink.close()
        return [f"{stem}.txt" for stem in self.stems]

    def abort(self) -> None:
        """A failed or interrupted run: a live run keeps what it wrote (and its video), a file run
        writes nothing, so earlier results stay as they were."""
        if self.live:
            self._close_files()
            if self.sink is not None:
                self.sink.close()
        elif self.sink is not None:
            self.sink.discard()

    def _close_files(self) -> None:
        for f in self._open.values():
            f.close()
        self._open = {}
