"""Versioned checkpoint files: one torch file format for weights, training state and results.

A checkpoint is ``{"format": "metatrack-checkpoint", "version": N, "state": {...}, "metadata":
{...}}``; the metadata says how the file was made (the command, the date, and whatever the
writer adds). Tensors are stored on the CPU (a file written from a GPU run loads anywhere), files
are written atomically, read with ``weights_only=True`` onto the CPU (or the
``map_location`` given), and anything unreadable is a one-line :class:`UserError`.
"""
from __future__ import annotations

import copy
import os
import shlex
import sys
import time
from typing import Any, Dict, Mapping, Optional, Tuple

from .errors import UserError
from .fileio import atomic_path

__all__ = ["FORMAT", "VERSION", "command_line", "portable", "save_checkpoint", "load_checkpoint", "torch_load"]

FORMAT = "metatrack-checkpoint"
VERSION = 1


def command_line() -> str:
    """The command that is running, as a user would retype it (``metatrack ...``)."""
    prog = os.path.basename(sys.argv[0]) if sys.argv else ""
    return " ".join([prog or "python"] + [shlex.quote(a) for a in sys.argv[1:]])


def portable(obj: Any) -> Any:
    """``obj`` with every tensor inside dicts, lists and tuples moved to the CPU, so ``torch.save``
    writes a file any machine reads. What holds no tensor off the CPU is returned as it is (the
    same object), so CPU runs save exactly what they saved before."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj if obj.device.type == "cpu" else obj.cpu()
    if isinstance(obj, dict):
        items = {k: portable(v) for k, v in obj.items()}
        if all(items[k] is v for k, v in obj.items()):
            return obj
        out = copy.copy(obj)            # keeps the mapping's type and attributes (state_dict's _metadata)
        out.update(items)
        return out
    if isinstance(obj, (list, tuple)):
        values = [portable(v) for v in obj]
        if all(a is b for a, b in zip(values, obj)):
            return obj
        return type(obj)(*values) if hasattr(obj, "_fields") else type(obj)(values)
    return obj


def save_checkpoint(path: str, state: Mapping[str, Any], metadata: Optional[Mapping[str, Any]] = None,
                    ) -> str:
    """Write ``state`` and ``metadata`` atomically (a temporary file renamed over ``path``)."""
    import torch

    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": command_line()}
    meta.update(dict(metadata or {}))
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, "state": portable(dict(state)), "metadata": meta}, tmp)
    return path


def torch_load(path: str, map_location: Any = "cpu") -> Any:
    """Any torch file (ours or another project's), tensors only; a bad file is a UserError."""
    import torch

    if not os.path.isfile(path):
        raise UserError(f"weights file {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling problem is a bad file for the user
        raise UserError(f"cannot read weights file {path}: {str(err).splitlines()[0][:200]}") from None


def load_checkpoint(path: str, map_location: Any = "cpu") -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(state, metadata)`` of a file written by :func:`save_checkpoint`."""
    obj = torch_load(path, map_location)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{path} is not a metatrack checkpoint (no format={FORMAT!r} key)")
    if int(obj.get("version", 0)) > VERSION:
        raise UserError(f"{path} has checkpoint version {obj.get('version')}; this metatrack reads "
                        f"up to {VERSION}: upgrade metatrack")
    return dict(obj["state"]), dict(obj.get("metadata") or {})
