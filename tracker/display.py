"""Whether a window can be opened, and the scale between a frame's pixels and the screen's.

Both windows of ``metatrack track`` (the box selection and the live view) show a frame scaled by
:func:`display_scale`: small frames are enlarged by a whole factor (so one source pixel is a
square of screen pixels and a box can be drawn to the pixel), huge ones shrunk to fit. The mouse
works in screen pixels; :func:`drag_to_box` maps a drag back to source pixels.
"""
from __future__ import annotations

import math
import os
import socket
import sys
from typing import Tuple

import numpy as np

__all__ = ["has_display", "display_scale", "scaled", "drag_to_box"]

MIN_LONG_SIDE = 640      # frames whose longer side is shorter are enlarged towards this
MAX_SIZE = (1280, 900)   # and no window grows beyond this


def _x_server_answers(display: str) -> bool:
    """A quick connect to the X server ``display`` names (``:N`` or ``host:N``): Qt aborts the
    whole process when it cannot reach one, so this is asked before any window is opened."""
    host, _, rest = display.rpartition(":")
    try:
        number = int(rest.split(".")[0])
    except ValueError:
        return False
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            try:
                s.connect(path)
                return True
            except OSError:
                return False
    try:
        socket.create_connection((host, 6000 + number), timeout=1.0).close()
        return True
    except OSError:
        return False


def _gui_backend() -> str:
    """OpenCV's GUI backend as its build reports it (``NONE`` for the headless wheels)."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip() or "NONE"
    return "UNKNOWN"


def has_display() -> bool:
    """True when OpenCV can open a window here: a GUI build and, on X11 systems, a reachable
    server (``$DISPLAY``) or a Wayland session."""
    if _gui_backend() == "NONE":
        return False
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        if os.environ.get("WAYLAND_DISPLAY"):
            return True
        display = os.environ.get("DISPLAY", "")
        return bool(display) and _x_server_answers(display)
    return True


def display_scale(width: int, height: int, min_long_side: int = MIN_LONG_SIDE,
                  max_size: Tuple[int, int] = MAX_SIZE) -> float:
    """Screen pixels per source pixel: a whole factor >= 1 that brings the longer side to at
    least ``min_long_side``, or a factor < 1 that fits ``max_size``."""
    if width <= 0 or height <= 0:
        raise ValueError(f"empty frame {width}x{height}")
    scale = float(max(1, math.ceil(min_long_side / max(width, height))))
    while scale > 1 and (width * scale > max_size[0] or height * scale > max_size[1]):
        scale -= 1
    return min(scale, max_size[0] / width, max_size[1] / height)


def scaled(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resized by ``scale``: nearest neighbour when enlarging (crisp source pixels),
    area averaging when shrinking."""
    import cv2

    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)


def drag_to_box(start: Tuple[int, int], end: Tuple[int, int], scale: float,
                size: Tuple[int, int]) -> np.ndarray:
    """The source-pixel box ``(x, y, w, h)`` a drag between two screen pixels covers (both
    pixels included, in either order), clipped to the frame of ``size = (width, height)``."""
    (x0, y0), (x1, y1) = start, end
    left, right = sorted((x0, x1))
    top, bottom = sorted((y0, y1))
    width, height = size
    a = np.array([left / scale, top / scale], float).clip(0, [width, height])
    b = np.array([(right + 1) / scale, (bottom + 1) / scale], float).clip(0, [width, height])
    return np.round(np.concatenate([a, b - a]), 2)
