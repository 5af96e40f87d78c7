"""The live view of ``metatrack track --show``: each tracked frame with its boxes, as it is tracked.

``q`` (or Esc, or closing the window) asks the run to stop: the caller ends the frame loop and
keeps what was tracked. Frames are scaled as in the selection window (:mod:`tracker.display`).
"""
from __future__ import annotations

import sys
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from .display import display_scale, has_display, scaled

__all__ = ["LiveView", "WINDOW", "QUIT_KEYS"]

WINDOW = "metatrack: tracking (q quits)"
QUIT_KEYS = (ord("q"), ord("Q"), 27)


class LiveView:
    """A window showing frames; :meth:`show` returns False once the user asked to stop.

    Without a display it says so once (on stderr) and shows nothing: ``--show`` never stops a run
    that could go on without it."""

    def __init__(self, title: str = WINDOW, prefix: str = "metatrack track") -> None:
        self.title, self.prefix = title, prefix
        self.open = has_display()
        self.scale: Optional[float] = None
        if not self.open:
            print(f"{prefix}: --show: no display here (DISPLAY is unset or does not answer); "
                  "tracking without the live view", file=sys.stderr)

    def show(self, image: np.ndarray, boxes: Optional[Mapping[str, Sequence[float]]] = None,
             colors: Optional[Mapping[str, Tuple[int, int, int]]] = None, frame: Optional[int] = None,
             legend: bool = False, lost: Sequence[str] = (),
             scores: Optional[Mapping[str, Optional[float]]] = None) -> bool:
        """Show ``image`` (BGR) with ``boxes`` (source pixels; drawn after scaling, so lines and
        text stay sharp on enlarged frames); False when the user pressed q / Esc or closed the window."""
        if not self.open:
            return True
        import cv2

        from .overlay import draw_frame

        if self.scale is None:
            self.scale = display_scale(image.shape[1], image.shape[0])
            cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        view = scaled(image, self.scale)
        if boxes is not None:
            view = draw_frame(view, {n: np.asarray(b, float) * self.scale for n, b in boxes.items()},
                              colors or {}, frame=frame, legend=legend, lost=lost, scores=scores)
        cv2.imshow(self.title, view)
        key = cv2.waitKey(1)
        if key != -1 and (key & 0xFF) in QUIT_KEYS:
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        if self.open and self.scale is not None:
            import cv2

            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        self.open = False
