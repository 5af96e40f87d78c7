"""The one feature cache of meta-training: features of frames at FIXED weights, each computed once.

Both families meta-train on features of frozen layers (MetaSDNet's conv1-3 with ``--adapt fc``,
MetaCREST's backbone), and a frame's features do not depend on the episode that reads them. So
entries live in memory (up to ``capacity``) and on disk under ``folder/<fingerprint>/``, keyed by
what they are computed from; the fingerprint of the frozen weights (and settings) keeps runs from
different weights apart while runs from the same weights (the four variants, a resumed run)
share the files. Entries are written atomically; a damaged one is recomputed.
"""
from __future__ import annotations

import hashlib
import os
from typing import Callable, Dict, Mapping, Optional

import torch
from torch import Tensor

from foundation.fileio import atomic_path

__all__ = ["FeatureCache", "fingerprint"]


def fingerprint(tensors: Mapping[str, Tensor], *extra: str) -> str:
    """A short hash of named tensors (and any settings strings) that features depend on."""
    h = hashlib.sha1()
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].detach().float().contiguous().cpu().numpy().tobytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()[:16]


class FeatureCache:
    """``get(key, compute)``: the tensor ``compute()`` returns for ``key``, computed once.

    ``half`` stores fp16 on disk (MetaCREST's large maps) and returns what a later read returns,
    so a first visit and a resumed run see the same numbers. ``folder=None`` keeps memory only.
    Files hold CPU tensors, so runs on any device share them; ``device`` is where a read puts
    them (that of the features ``compute`` makes; None: where they were saved, the CPU).
    """

    def __init__(self, folder: Optional[str], weights_key: str, capacity: int = 0,
                 half: bool = False, device: Optional[torch.device] = None) -> None:
        self.folder = os.path.join(folder, weights_key) if folder else None
        self.capacity, self.half, self.device = capacity, half, device
        self._store: Dict[str, Tensor] = {}

    def _path(self, key: str) -> str:
        return os.path.join(self.folder, hashlib.sha1(key.encode()).hexdigest() + ".pt")

    def _load_or_compute(self, key: str, compute: Callable[[], Tensor]) -> Tensor:
        path = self._path(key) if self.folder else None
        if path and os.path.isfile(path):
            try:
                feats = torch.load(path, weights_only=True, map_location=self.device)
                return feats.float() if self.half else feats
            except Exception:  # noqa: BLE001 - a damaged entry is recomputed
                pass
        with torch.no_grad():
            feats = compute()
        stored = feats.half() if self.half else feats
        if path:
            with atomic_path(path) as tmp:
                torch.save(stored.cpu(), tmp)
        return stored.float() if self.half else stored

    def get(self, key: str, compute: Callable[[], Tensor]) -> Tensor:
        feats = self._store.get(key)
        if feats is None:
            feats = self._load_or_compute(key, compute)
            if self.capacity:
                if len(self._store) >= self.capacity:
                    self._store.pop(next(iter(self._store)))
                self._store[key] = feats
        return feats
