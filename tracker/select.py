"""The window in which a user draws the initial boxes (``metatrack track VIDEO`` without ``--box``).

Drag a box around each target (one tracker per box); Enter or Space starts tracking, Backspace
takes the last box back, Esc or ``c`` (or closing the window) cancels. Our own small window
(``cv2.setMouseCallback``) rather than ``cv2.selectROI``: several boxes, an enlarged view of small
frames with the boxes mapped back to source pixels (:mod:`tracker.display`), and the keys shown
in the window.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .display import display_scale, drag_to_box, scaled

__all__ = ["WINDOW", "select_boxes", "SelectionState", "CONFIRM_KEYS", "CANCEL_KEYS", "UNDO_KEYS"]

WINDOW = "metatrack: select targets"
CONFIRM_KEYS = (13, 10, 32, 141)              # Enter (CR, LF), Space, keypad Enter
CANCEL_KEYS = (27, ord("c"), ord("C"))        # Esc, c
UNDO_KEYS = (8, 127)                          # Backspace, Delete
MIN_SIDE = 4                                  # source pixels: a shorter drag is a stray click
HINT = "drag a box around each target | Enter/Space: start | Backspace: undo | Esc/c: cancel"


class SelectionState:
    """The boxes drawn so far and the drag in progress, in screen pixels; :meth:`boxes` gives
    them in source pixels. Kept apart from the window so that the mapping is tested without one."""

    def __init__(self, size: Tuple[int, int], scale: float) -> None:
        self.size, self.scale = size, scale
        self.done: List[np.ndarray] = []
        self.drag: Optional[Tuple[Tuple[int, int], Tuple[int, int]]] = None

    def _clamp(self, x: int, y: int) -> Tuple[int, int]:
        w, h = (int(round(v * self.scale)) for v in self.size)
        return min(max(int(x), 0), w - 1), min(max(int(y), 0), h - 1)

    def mouse(self, event: int, x: int, y: int) -> None:
        """A cv2 mouse event: press starts a drag, moving stretches it, release keeps it as a box
        when both sides are at least :data:`MIN_SIDE` source pixels."""
        import cv2

        p = self._clamp(x, y)
        if event == cv2.EVENT_LBUTTONDOWN:
            self.drag = (p, p)
        elif event == cv2.EVENT_MOUSEMOVE and self.drag is not None:
            self.drag = (self.drag[0], p)
        elif event == cv2.EVENT_LBUTTONUP and self.drag is not None:
            self.drag = (self.drag[0], p)
            self.keep_drag()

    def keep_drag(self) -> None:
        if self.drag is not None:
            box = drag_to_box(*self.drag, self.scale, self.size)
            if min(box[2], box[3]) >= MIN_SIDE:
                self.done.append(box)
            self.drag = None

    def undo(self) -> None:
        if self.drag is not None:
            self.drag = None
        elif self.done:
            self.done.pop()

    def boxes(self) -> List[np.ndarray]:
        return [b.copy() for b in self.done]

    def draw(self, view: np.ndarray) -> np.ndarray:
        """The scaled frame with the kept boxes (numbered, one colour each), the drag and the keys."""
        import cv2

        from .overlay import PALETTE, draw_box, draw_text

        img = view.copy()
        for i, b in enumerate(self.done):
            color = PALETTE[i % len(PALETTE)]
            draw_box(img, b * self.scale, color, 2)
            draw_text(img, str(i + 1), (int(b[0] * self.scale) + 4, int(b[1] * self.scale) + 18), color, 0.6)
        if self.drag is not None:
            (x0, y0), (x1, y1) = self.drag
            cv2.rectangle(img, (x0, y0), (x1, y1), (255, 255, 255), 1, cv2.LINE_AA)
        strip = np.full((28, img.shape[1], 3), 32, np.uint8)
        cv2.putText(strip, HINT if img.shape[1] >= 600 else "drag | Enter: start | Esc: cancel", (6, 19),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        return np.vstack([img, strip])


def select_boxes(image: np.ndarray, title: str = WINDOW) -> Optional[List[np.ndarray]]:
    """Show ``image`` (BGR) in a window until the user confirms at least one box (returned in
    source pixels) or cancels (None). Needs a display (:func:`tracker.display.has_display`)."""
    import cv2

    h, w = image.shape[:2]
    state = SelectionState((w, h), display_scale(w, h))
    view = scaled(image, state.scale)
    cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    cv2.setMouseCallback(title, lambda e, x, y, flags, param: state.mouse(e, x, y))
    try:
        while True:
            cv2.imshow(title, state.draw(view))
            key = cv2.waitKey(20)
            if key != -1:
                key &= 0xFF
            if key in CONFIRM_KEYS:
                state.keep_drag()
                if state.done:
                    return state.boxes()
            elif key in CANCEL_KEYS:
                return None
            elif key in UNDO_KEYS:
                state.undo()
            if cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1:
                return None
    finally:
        cv2.destroyWindow(title)
        cv2.waitKey(1)
