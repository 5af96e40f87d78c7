"""N-way K-shot episodes from a split of image classes.

A split is any :class:`ClassPool`: ``len()`` classes, ``count(c)`` images in class ``c``, and
``images(c, idx)`` -> float32 array (k, C, S, S) in [0, 1].  An episode draws ``ways`` classes, gives
them the labels 0..ways-1 in a random order, and ``shots`` support plus ``queries`` query images per
class, all distinct.  Draws come from a ``numpy`` generator, so an episode is fixed by its seed:
training episode ``i`` of a run uses ``(seed, i)``, evaluation task ``t`` uses ``(EVAL_SEED, t)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Protocol, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["ClassPool", "ArrayPool", "ConcatPool", "Episode", "sample_episode", "episode_rng", "EVAL_SEED", "VAL_SEED"]

EVAL_SEED = 20_261_201   # test tasks: shared by every run, never used for training
VAL_SEED = 20_261_202    # validation tasks (checkpoint selection)


class ClassPool(Protocol):
    """Images grouped by class (one split of a data set)."""

    channels: int
    image_size: int

    def __len__(self) -> int: ...

    def count(self, c: int) -> int: ...

    def images(self, c: int, idx: Sequence[int]) -> np.ndarray: ...

    def name(self, c: int) -> str: ...


class ArrayPool:
    """Classes held in memory: a list of uint8 arrays (n, S, S) or (n, S, S, C), one per class."""

    def __init__(self, arrays: Sequence[np.ndarray], names: Sequence[str]) -> None:
        if len(arrays) != len(names):
            raise ValueError("one name per class array")
        self.arrays = [a if a.ndim == 4 else a[..., None] for a in arrays]
        self.names = list(names)
        first = self.arrays[0] if self.arrays else np.zeros((1, 1, 1, 1), np.uint8)
        self.image_size = int(first.shape[1])
        self.channels = int(first.shape[3])

    def __len__(self) -> int:
        return len(self.arrays)

    def count(self, c: int) -> int:
        return int(self.arrays[c].shape[0])

    def images(self, c: int, idx: Sequence[int]) -> np.ndarray:
        x = self.arrays[c][np.asarray(idx)]
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0

    def name(self, c: int) -> str:
        return self.names[c]


class ConcatPool:
    """Several pools as one: the classes of each in turn (``--split all``: every class of a data
    set, for evaluating a model on all classes of another domain)."""

    def __init__(self, pools: Sequence[ClassPool]) -> None:
        self.pools = list(pools)
        self.index = [(p, c) for p in self.pools for c in range(len(p))]
        self.image_size = self.pools[0].image_size
        self.channels = self.pools[0].channels

    def __len__(self) -> int:
        return len(self.index)

    def count(self, c: int) -> int:
        pool, k = self.index[c]
        return pool.count(k)

    def images(self, c: int, idx: Sequence[int]) -> np.ndarray:
        pool, k = self.index[c]
        return pool.images(k, idx)

    def name(self, c: int) -> str:
        pool, k = self.index[c]
        return pool.name(k)


@dataclass
class Episode:
    """One task: support (ways*shots) and query (ways*queries) images with labels 0..ways-1, and
    the pool's class indices in label order."""

    support: Tuple[Tensor, Tensor]
    query: Tuple[Tensor, Tensor]
    classes: List[int]

    def to(self, device: torch.device) -> "Episode":
        """The same episode with its images and labels on ``device`` (itself when already there)."""
        if self.support[0].device == torch.device(device):
            return self
        return Episode((self.support[0].to(device), self.support[1].to(device)),
                       (self.query[0].to(device), self.query[1].to(device)), self.classes)


def episode_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of episode ``index`` of the stream ``seed``."""
    return np.random.default_rng([int(seed), int(index)])


def sample_episode(pool: ClassPool, ways: int, shots: int, queries: int,
                   rng: np.random.Generator) -> Episode:
    """An N-way K-shot episode with ``queries`` query images per class (labels in class order
    of the draw; support and query images of a class are distinct)."""
    if len(pool) < ways:
        raise ValueError(f"{ways}-way episodes need {ways} classes, the split has {len(pool)}")
    classes = [int(c) for c in rng.choice(len(pool), size=ways, replace=False)]
    xs, xq = [], []
    for c in classes:
        n = pool.count(c)
        if n < shots + queries:
            raise ValueError(f"class {pool.name(c)!r} has {n} images, an episode needs {shots + queries}")
        pick = rng.choice(n, size=shots + queries, replace=False)
        imgs = pool.images(c, pick)
        xs.append(imgs[:shots])
        xq.append(imgs[shots:])
    ys = torch.arange(ways).repeat_interleave(shots)
    yq = torch.arange(ways).repeat_interleave(queries)
    return Episode((torch.from_numpy(np.concatenate(xs)), ys), (torch.from_numpy(np.concatenate(xq)), yq),
                   classes)
