"""OpenCV's classic trackers behind the project's got10k-style interface.

``kcf``, ``csrt``, ``mil``, ``mosse``, ``medianflow`` and ``tld`` are registered in
:mod:`tracker.api` lazily (``"tracker.baselines:OpenCVTracker"``), so ``import tracker`` does not
import cv2. Whatever the installed OpenCV provides is used: ``cv2.Tracker<X>_create``,
``cv2.Tracker<X>.create`` or ``cv2.legacy.Tracker<X>_create``. The project depends on
``opencv-contrib-python``, which has all six; plain ``opencv-python`` has only MIL. The wheels (and
their ``-headless`` forms) all write the same ``cv2/`` folder, so with two installed the last one
installed wins and uninstalling either breaks ``cv2``. Asking for a tracker the installed cv2 lacks
is a :class:`~foundation.errors.UserError` that names the installed wheels and the one-line fix.

The wrapper converts every image to 8-bit BGR, gives OpenCV an integer box inside the image,
keeps the last box when OpenCV reports a failure, and returns float ``(x, y, w, h)``. Two guards
against OpenCV itself: a box with a side under :data:`MIN_SIDE` pixels is tracked as a box grown to
that side around the same centre and reported at its own size (OpenCV 5's MIL never returns from
``init`` on a 4 x 4 box), and a tracker whose ``init`` raises (MIL asserts on a box filling the
image) stays at the initial box, with a warning, instead of aborting a whole benchmark run.

MIL and TLD draw random samples, from OpenCV's RNG and from the C library's ``rand()``, which
nothing resets between runs: their boxes changed from one run of a table to the next (MIL's AUC on
the real clips by 0.04). Each ``init`` of those two seeds both generators with ``seed`` first, so a
run repeats exactly, whatever ran before it in the process (``seed=None``: leave them as they are).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from foundation.boxes import clip_to_image
from foundation.errors import UserError
from foundation.images import to_bgr

from .api import Tracker

# name -> (OpenCV class name, deterministic?, description)
BASELINES = {
    "kcf": ("TrackerKCF", True, "OpenCV KCF: kernelised correlation filter (contrib)"),
    "csrt": ("TrackerCSRT", True, "OpenCV CSRT: discriminative correlation filter with spatial "
                                  "reliability (contrib)"),
    "mil": ("TrackerMIL", False, "OpenCV MIL: multiple-instance learning boosting"),
    "mosse": ("TrackerMOSSE", True, "OpenCV MOSSE: minimum output sum of squared error filter "
                                    "(contrib, legacy)"),
    "medianflow": ("TrackerMedianFlow", True, "OpenCV MedianFlow: forward-backward optical flow "
                                              "(contrib, legacy)"),
    "tld": ("TrackerTLD", False, "OpenCV TLD: tracking-learning-detection (contrib, legacy)"),
}

OPENCV_WHEELS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                 "opencv-contrib-python-headless")
MIN_SIDE = 8  # smallest box side handed to OpenCV


def _constructor(class_name: str, cv2_module: Any = None):
    """A zero-argument callable creating the OpenCV tracker, or None if this cv2 lacks it."""
    if cv2_module is None:
        import cv2 as cv2_module
    places = [cv2_module, getattr(cv2_module, "legacy", None)]
    for place in places:
        if place is None:
            continue
        create = getattr(place, f"{class_name}_create", None)
        if callable(create):
            return create
        cls = getattr(place, class_name, None)
        if cls is not None and callable(getattr(cls, "create", None)):
            return cls.create
    return None


def available_baselines() -> list[str]:
    """The baseline names the installed cv2 can run (``["mil"]`` with plain opencv-python)."""
    return [name for name, (cls, _, _) in BASELINES.items() if _constructor(cls) is not None]


def installed_opencv_wheels() -> list[str]:
    """The OpenCV wheels pip has installed here (more than one means they overwrote each other)."""
    from importlib import metadata

    found = []
    for wheel in OPENCV_WHEELS:
        try:
            metadata.version(wheel)
        except metadata.PackageNotFoundError:
            continue
        found.append(wheel)
    return found


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    """The C library (found once: ``find_library`` runs a subprocess)."""
    import ctypes
    import ctypes.util
    import sys

    return ctypes.CDLL(ctypes.util.find_library("msvcrt" if sys.platform == "win32" else "c"))


def seed_generators(seed: int) -> None:
    """Seed the two generators OpenCV's randomised trackers draw from: cv2's RNG and the C
    library's ``rand()`` (process-wide, as ``random.seed`` is)."""
    import ctypes

    import cv2

    cv2.setRNGSeed(int(seed))
    _libc().srand(ctypes.c_uint(int(seed) & 0xFFFFFFFF))


def contrib_fix(wheels: Sequence[str]) -> str:
    """The one command that leaves exactly opencv-contrib-python installed."""
    others = [w for w in wheels if w != "opencv-contrib-python"]
    if not others:
        return "pip install opencv-contrib-python"
    return f"pip uninstall -y {' '.join(sorted(wheels))} && pip install opencv-contrib-python"


class OpenCVTracker(Tracker):
    """One of OpenCV's trackers (``algorithm`` in :data:`BASELINES`) under the got10k interface.
    ``device`` is accepted and ignored: OpenCV's trackers run on the CPU and hold no tensors.
    ``score`` is OpenCV's own success flag (1 found, 0 not), so ``lost`` is that flag's "not"."""

    lost_threshold = 0.5

    def __init__(self, name: str | None = None, algorithm: str | None = None, device: Any = None,
                 seed: int | None = 0):
        algorithm = (algorithm or name or "").lower()
        if algorithm not in BASELINES:
            raise UserError(f"unknown OpenCV tracker {algorithm!r}; known: {', '.join(BASELINES)}")
        class_name, deterministic, _ = BASELINES[algorithm]
        super().__init__(name or algorithm, is_deterministic=deterministic or seed is not None)
        self.algorithm = algorithm
        self.seed = None if deterministic else seed   # only the randomised ones are seeded
        self._create = _constructor(class_name)
        if self._create is None:
            import cv2

            wheels = installed_opencv_wheels()
            raise UserError(
                f"tracker {algorithm!r} needs OpenCV's contrib modules, which the installed cv2 "
                f"{cv2.__version__} lacks (installed: {', '.join(wheels) or 'no OpenCV wheel'}); "
                f"fix: {contrib_fix(wheels)}; available here: {', '.join(available_baselines()) or 'none'}")
        self._tracker = None
        self._box = np.zeros(4)

    @staticmethod
    def _int_box(box: Sequence[float], width: int, height: int,
                 min_side: int = 1) -> tuple[int, int, int, int]:
        """Round to whole pixels, grow sides under ``min_side`` about the centre, keep inside."""
        b = np.asarray(box, dtype=float).reshape(4)
        grow = np.maximum(min_side - b[2:], 0)
        b = np.concatenate([b[:2] - grow / 2, b[2:] + grow])
        x1, y1 = np.round(b[0]), np.round(b[1])
        x2, y2 = np.round(b[0] + b[2]), np.round(b[1] + b[3])
        w, h = max(x2 - x1, min_side, 1), max(y2 - y1, min_side, 1)
        clipped = clip_to_image(np.array([x1, y1, min(w, width), min(h, height)]), width, height)
        x, y, w, h = (int(round(v)) for v in clipped)
        return x, y, max(w, 1), max(h, 1)

    def init(self, image: Any, box: Sequence[float]) -> None:
        frame = to_bgr(image)
        h, w = frame.shape[:2]
        self._box = self._begin(frame, box).copy()
        ibox = self._int_box(self._box, w, h, MIN_SIDE)
        if self.seed is not None:
            seed_generators(self.seed)
        self._tracker = self._create()
        self._failed = False
        try:
            self._tracker.init(frame, ibox)
        except Exception as err:  # cv2.error: OpenCV refused this box; stay put, do not abort
            import warnings

            warnings.warn(f"OpenCV {self.algorithm} could not start on box {ibox} in a {w}x{h} "
                          f"image ({str(err).strip().splitlines()[-1]}); it will keep that box",
                          RuntimeWarning, stacklevel=2)
            self._failed = True
        self.score = 0.0 if self._failed else 1.0

    def update(self, image: Any) -> np.ndarray:
        self._next(image)
        if self._failed:
            self.score = 0.0
            return self._box.copy()
        ok, box = self._tracker.update(to_bgr(image))
        self.score = 1.0 if ok else 0.0
        if ok:
            new = np.asarray(box, dtype=float).reshape(4)
            if np.all(np.isfinite(new)) and new[2] > 0 and new[3] > 0:
                # report at our own size around OpenCV's centre (differs only for grown boxes)
                size = np.where(self._box[2:] < MIN_SIDE, self._box[2:], new[2:])
                self._box = np.concatenate([new[:2] + (new[2:] - size) / 2, size])
        return self._box.copy()
