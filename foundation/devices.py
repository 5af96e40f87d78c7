"""Where tensors live: one parser for ``--device auto|cpu|cuda|cuda:N`` used by every command.

``auto`` means CUDA when a CUDA device is usable, else the CPU. Under torchrun each process of a
CUDA run takes the GPU of its ``LOCAL_RANK`` (``cuda`` and ``auto`` there mean "my GPU"; ``cuda:N``
is kept as given). A device that is not there is one :class:`UserError` line, raised before any
work starts.
"""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Optional, Union

from .errors import UserError

if TYPE_CHECKING:  # torch is imported where a device is resolved: `metatrack --help` needs only the text
    import torch

__all__ = ["DEVICE_CHOICES_HELP", "resolve_device", "describe_device"]

DEVICE_CHOICES_HELP = ("where tensors live: auto (CUDA when available, else CPU; the default), cpu, "
                       "cuda or cuda:N; under torchrun, auto/cuda take the GPU of LOCAL_RANK")

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def _local_rank() -> Optional[int]:
    text = os.environ.get("LOCAL_RANK")
    return int(text) if text is not None and text.isdigit() else None


def resolve_device(spec: Union[str, torch.device, None] = "auto") -> torch.device:
    """The ``torch.device`` a user asked for, checked to exist.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        text = "cuda"
    match = _CUDA.match(text)
    if match is None:
        raise UserError(f"--device {spec!r} is not a device: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise UserError(f"--device {spec}: {why}; use --device cpu (or auto)")
    count = torch.cuda.device_count()
    index = int(match.group(1)) if match.group(1) is not None else (_local_rank() or 0)
    if index >= count:
        raise UserError(f"--device {spec}: cuda:{index} does not exist ({count} CUDA device"
                        f"{'s' if count != 1 else ''} visible)")
    return torch.device("cuda", index)


def describe_device(device: torch.device) -> str:
    """A short human name for logs and results (``cpu``, ``cuda:0 (NVIDIA H200)``)."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
