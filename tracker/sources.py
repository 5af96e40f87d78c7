"""Live inputs: a camera (``--camera N``) or a network stream OpenCV opens (``rtsp://``, ``http://``).

A live source is read once, as frames arrive: there is no frame count and no rewinding, so
``metatrack track`` writes its results line by line instead of atomically at the end. Opening
waits at most ``timeout`` seconds for the first frame (in a helper thread, so a server that
accepts and never answers cannot hang the command); a camera that does not exist or a stream that
does not answer is a one-line :class:`~foundation.errors.UserError`. A stream that stops
delivering frames later ends the iteration with a warning: what was tracked is kept.
"""
from __future__ import annotations

import re
import threading
import warnings
from typing import Any, Iterator, Optional, Tuple, Union

import numpy as np

from foundation.errors import UserError

from .video import FrameSource, open_frames

__all__ = ["LiveSource", "STREAM_SCHEMES", "is_stream_url", "open_live", "open_input"]

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


def is_stream_url(text: str) -> bool:
    """``scheme://...`` with a scheme OpenCV's FFmpeg backend streams from."""
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", text or "")
    return bool(m) and m.group(1).lower() in STREAM_SCHEMES


def _stream_name(url: str) -> str:
    """A file stem for a URL's results: its path's last part, else its host (``stream`` if none)."""
    rest = url.split("://", 1)[1].split("?", 1)[0].rstrip("/")
    host, _, path = rest.partition("/")
    stem = (path.rsplit("/", 1)[-1].rsplit(".", 1)[0] if path else "") or host.split("@")[-1].split(":")[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "stream"


def _quiet_opencv() -> None:
    """OpenCV logs its own lines for a missing camera; the one-line error says it all."""
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:   # pragma: no cover - older builds
        pass


class LiveSource:
    """An opened camera or stream; iterate once for 8-bit BGR frames as they arrive."""

    live = True
    gt = None
    count = 0

    def __init__(self, cap: Any, first: np.ndarray, what: str, name: str, fps: float) -> None:
        self._cap, self._first, self.what, self.name, self.fps = cap, first, what, name, fps
        self.kind = "camera" if what.startswith("camera") else "stream"
        self.path = what
        self.read = 0

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def frames(self, start: int = 0) -> Iterator[np.ndarray]:
        """Frames as they arrive (``start`` must be 0: a live source cannot skip ahead)."""
        from foundation.images import to_bgr

        if start:
            raise UserError(f"{self.what} is live: --start-frame needs a video file or a folder")
        if self._cap is None:
            raise UserError(f"{self.what} was already read: a live source is read once")
        cap, frame = self._cap, self._first
        try:
            while frame is not None:
                self.read += 1
                yield to_bgr(frame)
                ok, frame = cap.read()
                frame = frame if ok else None
        finally:
            self.close()
        warnings.warn(f"{self.what} stopped delivering frames after {self.read}: the frames "
                      "tracked so far are kept", stacklevel=2)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _open_capture(target: Union[int, str], timeout: float) -> Tuple[Any, Optional[np.ndarray]]:
    """The capture and its first frame, or ``(None, None)``; OpenCV's own timeouts are asked for
    and the call is also bounded from outside, since not every backend honours them."""
    import cv2

    _quiet_opencv()
    box: dict = {}

    def work() -> None:
        ms = int(timeout * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        cap = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        box["result"] = (cap, frame if ok else None)

    t = threading.Thread(target=work, name="metatrack-open", daemon=True)
    t.start()
    t.join(timeout + 1.0)
    if "result" not in box:      # still waiting: leave the daemon thread behind
        return None, None
    cap, frame = box["result"]
    if frame is None:
        cap.release()
        return None, None
    return cap, frame


def open_live(target: Union[int, str], timeout: float = 10.0) -> LiveSource:
    """Open camera ``target`` (an index) or stream ``target`` (a URL) and read its first frame."""
    if timeout <= 0:
        raise UserError("--timeout must be > 0 seconds")
    if isinstance(target, int):
        if target < 0:
            raise UserError(f"--camera must be an index >= 0, got {target}")
        what, name = f"camera {target}", f"camera{target}"
    else:
        if not is_stream_url(target):
            raise UserError(f"{target} is not a stream URL ({', '.join(s + '://' for s in STREAM_SCHEMES)})")
        what, name = f"stream {target}", _stream_name(target)
    cap, first = _open_capture(target, timeout)
    if cap is None:
        why = ("does not exist or is busy" if isinstance(target, int)
               else f"did not deliver a frame within {timeout:g} s (--timeout)")
        raise UserError(f"{what} {why}")
    import cv2

    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return LiveSource(cap, first, what, name, fps if 1.0 <= fps <= 240.0 else 25.0)


def open_input(path: Optional[str], camera: Optional[int] = None,
               timeout: float = 10.0) -> Union[FrameSource, LiveSource]:
    """What ``metatrack track`` reads: a camera, a stream URL, or a file / folder / OTB sequence."""
    if (path is None) == (camera is None):
        raise UserError("give INPUT (a video, a folder or a stream URL) or --camera N, not both"
                        if path is not None else "give INPUT (a video, a folder or a stream URL) or --camera N")
    if camera is not None:
        return open_live(int(camera), timeout)
    if is_stream_url(path):
        return open_live(path, timeout)
    return open_frames(path)
