"""Atomic file writes: readers see the old file or the new one, never half of one.

Results, reports, plots, figures, checkpoints, weights and feature-cache entries are written
through :func:`atomic_path` (videos through ``tracker.overlay.VideoSink``, which does the same), so
an interrupted run never leaves a truncated file behind. Two kinds of file are not: a
meta-training run's CSV log is appended to row by row (and cut back atomically to the checkpoint
on resume), and a synthetic sequence is written into a hidden folder renamed when complete.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import Iterator


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path`` (with
    the permissions an ordinary ``open`` would give, not mkstemp's 0600), otherwise it is removed."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (flushed to disk before it replaces the old file)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
