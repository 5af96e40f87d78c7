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

from .errors import UserError


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


def ensure_writable_dir(path: str, what: str, shown: str | None = None) -> str:
    """Create folder ``path`` (with its parents) and check that a file can be written in it,
    before any work starts; otherwise a one-line :class:`UserError` naming ``what`` (the flag),
    and no folder of ours is left behind."""
    target = os.path.abspath(path)
    missing, p = [], target
    while not os.path.lexists(p):
        missing.append(p)
        p = os.path.dirname(p)
    shown = path if shown is None else shown
    if not os.path.isdir(p):
        raise UserError(f"{what} {shown}: {os.path.relpath(p)} exists and is not a folder")
    created = []
    try:
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:   # another process (a torchrun rank) made it meanwhile
                if not os.path.isdir(d):
                    raise
                continue
            created.append(d)
        fd, probe = tempfile.mkstemp(dir=target, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        for d in reversed(created):
            try:
                os.rmdir(d)
            except OSError:
                pass
        raise UserError(f"{what} {shown}: cannot write there ({err.strerror or err})") from None
    return path


def ensure_writable_file(path: str, what: str) -> str:
    """Check that file ``path`` can be written (its folder is created if missing)."""
    if os.path.isdir(path):
        raise UserError(f"{what} {path} is a folder; give a file name")
    ensure_writable_dir(os.path.dirname(os.path.abspath(path)) or ".", what, shown=path)
    return path


@contextmanager
def output_dir(path: str, what: str) -> Iterator[str]:
    """:func:`ensure_writable_dir` for a run's output folder: if the run fails and the folder
    did not exist before, it is removed again when empty, so a failed run leaves no debris."""
    existed = os.path.isdir(path)
    ensure_writable_dir(path, what)
    try:
        yield path
    except BaseException:
        if not existed:
            try:
                os.rmdir(path)
            except OSError:
                pass
        raise
