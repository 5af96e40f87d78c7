"""``metatrack track URL``: an MJPEG stream served on 127.0.0.1 by the test itself (a small
``http.server`` thread that sends a bounded number of frames and stops by itself).

Checked: frames are tracked as they arrive and every line is on disk before the run ends, Ctrl-C
keeps every tracked frame (and a playable video), a stream that ends is a warning with exit 0,
and a server that never answers is one line and exit 2 after --timeout.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from otb_eval.testing import patch_sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOX = "30,40,28,24"


class _MJPEG(BaseHTTPRequestHandler):
    """multipart/x-mixed-replace JPEG frames, ``server.frames`` of them, ``server.delay`` apart."""

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for jpeg in self.server.frames:
                if self.server.stop.is_set():
                    return
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                 % len(jpeg) + jpeg + b"\r\n")
                self.wfile.flush()
                time.sleep(self.server.delay)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """``serve(n, delay)`` -> the URL of an MJPEG stream of n frames on 127.0.0.1."""
    servers = []

    def start(n: int, delay: float) -> str:
        frames, _ = patch_sequence(n=n, seed=3)
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _MJPEG)
        srv.daemon_threads = True
        srv.frames = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for f in frames]
        srv.delay, srv.stop = delay, threading.Event()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/cam.mjpg"

    yield start
    for srv in servers:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()


def _metatrack(*args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", "import sys; from tracker.cli import main; sys.exit(main())",
                             "track", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _lines(path) -> int:
    try:
        with open(path) as f:
            return sum(1 for line in f if line.strip())
    except FileNotFoundError:
        return 0


def test_a_stream_that_ends_keeps_every_frame_and_warns(serve, tmp_path):
    url = serve(12, 0.02)
    out = tmp_path / "o"
    p = _metatrack(url, "--box", BOX, "--tracker", "mil", "--out", str(out), "--no-progress")
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    boxes = np.loadtxt(out / "cam.txt", delimiter=",")
    assert boxes.shape == (12, 4) and _lines(out / "cam_time.txt") == 12
    np.testing.assert_allclose(boxes[0], [30, 40, 28, 24])
    assert "stream http://127.0.0.1" in stderr and "stopped delivering frames after 12" in stderr
    assert all(line.startswith("metatrack track: warning") for line in stderr.strip().splitlines()), stderr
    cap = cv2.VideoCapture(str(out / "cam.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12


def test_ctrl_c_keeps_every_tracked_frame_of_a_live_stream(serve, tmp_path):
    """Lines are flushed as frames are tracked: they are on disk while the run goes on, and
    after Ctrl-C the file holds every frame tracked, the video is finalised."""
    url = serve(400, 0.05)
    out = tmp_path / "o"
    p = _metatrack(url, "--box", BOX, "--tracker", "identity", "--out", str(out), "--no-progress")
    deadline = time.time() + 60
    while _lines(out / "cam.txt") < 5 and time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert _lines(out / "cam.txt") >= 5 and p.poll() is None, "no line reached the disk while tracking"
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    n = _lines(out / "cam.txt")
    assert 5 <= n < 400 and _lines(out / "cam_time.txt") == n
    cap = cv2.VideoCapture(str(out / "cam.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n


def test_a_stream_that_does_not_answer_is_one_line_after_the_timeout(tmp_path):
    with socket.socket() as silent:          # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/cam.mjpg"
        start = time.time()
        p = _metatrack(url, "--box", BOX, "--timeout", "1.5", "--tracker", "identity", "--out", str(tmp_path / "o"))
        stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 2 and time.time() - start < 30
    assert stderr.strip().splitlines() == [f"metatrack track: error: stream {url} did not deliver a frame "
                                           "within 1.5 s (--timeout)"]
    assert not (tmp_path / "o").exists()
