"""Meta-training episodes for MetaSDNet, as Meta-Tracker defines them.

An episode is one tracking task: a random frame ``t`` of a training track gives the support set
(32 positives with IoU in [0.7, 1] from the gaussian sampler, 96 negatives with IoU in [0, 0.5]
from the uniform sampler) and a look-ahead frame ``t + U{1..10}`` gives the query set, sampled the
same way. With probability 0.5 the labels are swapped in both sets ("label shuffling"), so the
start cannot solve the task by encoding objectness and has to learn to adapt.

Samples are turned into the network's input exactly as the fast tracker does at frame 1: one
search region per frame warped so that the target's crop is ``input_size`` pixels, conv features
once, boxes pooled by RoIAlign. Meta-training therefore optimises the very computation the tracker
runs. Episode ``i`` of a run depends only on ``(seed, i)``, so any number of loader workers and
any resume point give the same episodes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence as SequenceType

import numpy as np
import torch

from foundation.images import read_bgr, to_rgb

from ..sdnet import roi_align as R
from ..sdnet.model import ModelConfig
from ..sdnet.sampling import episode_samples
from .sources import Track


@dataclass(frozen=True)
class EpisodeConfig:
    """Episode sampling; the defaults are Meta-Tracker's (reference facts)."""

    n_pos: int = 32
    n_neg: int = 96
    pos_iou: tuple[float, float] = (0.7, 1.0)
    neg_iou: tuple[float, float] = (0.0, 0.5)
    lookahead: int = 10           # query frame t + U{1..lookahead}
    shuffle_prob: float = 0.5     # label shuffling
    max_side: int = 480           # search-region size cap (pixels), as the tracker's

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FrameSet:
    """One frame's samples: where they are, their labels, and how to make the network input.
    Its tensors are on the CPU (episodes are read in loader worker processes, which must not
    touch a GPU); the trainer moves them to its device.

    The search region depends only on the ground-truth box (it covers every box the episode
    samplers can draw), so a frame's conv features are the same in every episode that uses it:
    with fixed conv layers, meta-training computes them once per frame and caches them. Pixels
    are read only when asked for (:meth:`pixels`).
    """

    frame: str              # image path
    region: "R.Region"      # the search region (image -> network input)
    grid: torch.Tensor      # RoIAlign sampling grid of the boxes in the region's features
    labels: torch.Tensor    # N, 1 = positive (after shuffling)
    boxes: np.ndarray       # N x 4 image boxes (for inspection and tests)
    ious: np.ndarray        # N IoU with the ground truth

    def pixels(self) -> torch.Tensor:
        """The warped region, ``1 x 3 x H x W`` minus the mean pixel."""
        return R.to_tensor(R.warp(to_rgb(read_bgr(self.frame)), self.region))

    def batch(self):
        """``(region pixels, grid, labels)``: what :func:`tracker.sdnet.losses.region_loss` takes."""
        return self.pixels(), self.grid, self.labels


@dataclass
class Episode:
    track: str
    frames: tuple[int, int]
    shuffled: bool
    support: FrameSet
    query: FrameSet

    def batches(self):
        """(support, query) in the form the loss function takes: (region, grid, labels)."""
        return self.support.batch(), self.query.batch()


def frame_region(gt: np.ndarray, image_size: tuple[int, int], model: ModelConfig,
                 max_side: int) -> "R.Region":
    """The region covering the crops of the farthest, largest boxes the episode samplers draw
    around ``gt`` (uniform: shift up to 1 x mean size, scale 1.2, aspect 1.1)."""
    from foundation.boxes import cxcywh_to_xywh, xywh_to_cxcywh

    c = xywh_to_cxcywh(np.asarray(gt, dtype=float))
    s = c[2:].mean()
    big = c[2:] * 1.2 * 1.1
    corners = np.array([[c[0] + dx * s, c[1] + dy * s, big[0], big[1]]
                        for dx in (-1, 1) for dy in (-1, 1)])
    return R.region_for_boxes(cxcywh_to_xywh(corners), gt, model, max_side)


def _image_size(path: str) -> tuple[int, int]:
    from PIL import Image

    from foundation.errors import UserError

    try:
        with Image.open(path) as im:   # reads the header only
            return im.size
    except OSError as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def _frame_set(frame: str, image_size: tuple[int, int], gt: np.ndarray, pos: np.ndarray,
               neg: np.ndarray, shuffled: bool, config: ModelConfig, max_side: int) -> FrameSet:
    from foundation.boxes import iou

    boxes = np.concatenate([pos, neg], 0)
    region = frame_region(gt, image_size, config, max_side)
    grid = R.roi_grid(boxes, region, config)
    labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).long()   # device: CPU, see FrameSet
    if shuffled:
        labels = 1 - labels
    return FrameSet(frame, region, grid, labels, boxes, iou(boxes, gt[None, :]))


def sample_episode(tracks: SequenceType[Track], index: int, seed: int, model: ModelConfig,
                   config: EpisodeConfig = EpisodeConfig(),
                   weights: np.ndarray | None = None) -> Episode:
    """Episode number ``index`` of a run seeded with ``seed`` (deterministic)."""
    rng = np.random.default_rng([int(seed), int(index)])
    track = tracks[int(rng.choice(len(tracks), p=weights))]
    n = len(track)
    t = int(rng.integers(0, max(1, n - 1)))
    t2 = int(min(n - 1, t + rng.integers(1, config.lookahead + 1)))
    shuffled = bool(rng.random() < config.shuffle_prob)
    sets = []
    for f in (t, t2):
        size = _image_size(track.frames[f])
        gt = track.boxes[f]
        pos, neg = episode_samples(rng, gt, size, config.n_pos, config.n_neg, config.pos_iou, config.neg_iou)
        sets.append(_frame_set(track.frames[f], size, gt, pos, neg, shuffled, model, config.max_side))
    return Episode(track.name, (t, t2), shuffled, sets[0], sets[1])


class EpisodeDataset(torch.utils.data.Dataset):
    """Map-style view of a run's episodes (``dataset[i]`` is episode ``i``), for a DataLoader
    whose workers read frames lazily in parallel."""

    def __init__(self, tracks: SequenceType[Track], seed: int, model: ModelConfig,
                 config: EpisodeConfig = EpisodeConfig(), total: int = 10**9,
                 weights: np.ndarray | None = None):
        self.tracks = list(tracks)
        self.seed = seed
        self.model = model
        self.config = config
        self.total = total
        self.weights = weights

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: int) -> Episode:
        return sample_episode(self.tracks, index, self.seed, self.model, self.config, self.weights)


def episode_loader(dataset: EpisodeDataset, indices: SequenceType[int] | range, workers: int = 0):
    """Episodes ``indices`` in order, read by ``workers`` processes."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, sampler=indices, num_workers=workers,
        collate_fn=lambda e: e, persistent_workers=False, prefetch_factor=2 if workers else None,
        # its own generator: creating the iterator must not consume the global torch RNG that
        # DropGrad draws from, or a resumed run would diverge from an uninterrupted one
        generator=torch.Generator().manual_seed(0))
