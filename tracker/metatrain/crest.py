"""Meta-training MetaCREST's target-model start theta0 and element-wise rates alpha (optionally L2F,
DropGrad), through the one engine (:class:`meta_learning.MetaLearner`) and the shared loop
(:func:`tracker.metatrain.loop.run_meta_training`).

An episode (Meta-Tracker): a random frame ``t`` of a training track gives the support pair (the
window centred on the target, features times the Hann window, the centred Gaussian label); a
look-ahead frame ``t + U{1..10}`` gives the query pair, its window cropped where the tracker would
crop it, at frame ``t``'s box, with the label shifted to where the target really is. Windows,
labels and kernel sizes come from :class:`tracker.crest.window.WindowGeometry`, exactly as the
tracker computes them. The filter template and its rates are resized to each episode's kernel
(:func:`tracker.crest.dcf.sized_start`) inside the differentiable step, so one template is learned
across target shapes.

Reference schedule: Adam lr 1e-6 for theta0 and alpha (raw VGG-16 features), alpha from 1e-6,
meta-batch 8, 10,000 iterations with both rates x0.1 at 5,000.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence as SequenceType

import numpy as np
import torch

from foundation.devices import resolve_device
from foundation.distributed import SINGLE, World
from foundation.errors import UserError
from foundation.images import read_bgr, to_rgb

from ..crest.backbone import DEFAULT_SDNET_LAYER, Backbone
from ..crest.dcf import REDUCED_CHANNELS, TargetModel, hann2d, init_params, response_loss, sized_start
from ..crest.online import CRESTOptions
from ..crest.weights import CRESTWeights, save_crest_weights
from ..crest.window import WindowGeometry, crop_windows
from .cache import FeatureCache, fingerprint
from .config import TrainConfig, training_learner
from .loop import TrainResult, learned_state, run_meta_training
from .sources import Track

__all__ = ["CRESTTrainConfig", "CRESTEpisode", "CRESTEpisodeDataset", "build_crest_learner",
           "crest_task_loss", "meta_train_crest"]

GEOMETRY_FIELDS = ("window_factor", "max_target_px", "min_target_px", "hann")


@dataclass
class CRESTTrainConfig(TrainConfig):
    """MetaCREST's meta-training settings: the common ones with Meta-Tracker's MetaCREST defaults
    (10,000 iterations, lrs 1e-6, x0.1 at half; losses averaged over the meta-batch) and the
    episodes' own."""

    iterations: int = 10000
    lr_start: float = 1e-6               # Adam lr of theta0
    lr_alpha: float = 1e-6               # Adam lr of the element-wise rates
    alpha_init: float = 1e-6
    decay_fraction: float = 0.5          # x0.1 at 5,000 of 10,000
    lookahead: int = 10                  # query frame t + U{1..lookahead} (20 for VOT-style data)
    reduced: int = REDUCED_CHANNELS      # 1x1 reduction width of a new start
    template: int = 0                    # filter template side; 0: the kernel of a max-size target
    # CRESTOptions the windows are made with; saved in the weights so the tracker uses the same
    tracking: dict = field(default_factory=lambda: {k: getattr(CRESTOptions(), k) for k in GEOMETRY_FIELDS})

    def validate(self) -> "CRESTTrainConfig":
        super().validate()
        if self.lookahead < 1:
            raise UserError(f"--lookahead must be at least 1, got {self.lookahead}")
        unknown = sorted(set(self.tracking) - CRESTOptions.known())
        if unknown:
            raise UserError(f"unknown MetaCREST tracking option(s): {', '.join(unknown)}")
        self.options().validate()
        return self

    def options(self) -> CRESTOptions:
        from dataclasses import replace

        return replace(CRESTOptions(), **{k: (tuple(v) if k == "scales" else v) for k, v in self.tracking.items()})

@dataclass
class CRESTEpisode:
    track: str
    frames: tuple
    support: tuple          # (features 1 x C x n x n, label 1 x n x n)
    query: tuple
    kernel: tuple           # the filter's (kh, kw) for this target


class CRESTEpisodeDataset(torch.utils.data.Dataset):
    """Episode ``i`` of a run seeded ``seed`` (deterministic); features by the frozen backbone.

    ``cache`` (a folder): every window is then "frame f centred on its own box", computed once
    per frame and kept on disk (keyed by the backbone's weights and the geometry), so the four
    variants and a resumed run share them. The query window the tracker would crop at frame t's
    centre is then the cached frame-t2 map shifted by the whole-cell displacement (the filter is
    a convolution, so this is the same up to the window's border cells and sub-cell rounding)
    and the label is placed at that shift. Without a cache, windows are cropped exactly.

    Episodes are made on the backbone's device (the training device when episodes are read in
    the training process; the CPU for loader worker processes, which must not touch a GPU).
    """

    def __init__(self, tracks: SequenceType[Track], seed: int, backbone: Backbone, options: CRESTOptions,
                 lookahead: int = 10, total: int = 10**9, cache: Optional[str] = None) -> None:
        self.tracks = list(tracks)
        if not self.tracks:
            raise UserError("no training tracks")
        self.seed, self.backbone, self.options, self.lookahead, self.total = seed, backbone, options, lookahead, total
        self.cache = None
        if cache:
            import json

            geometry = json.dumps({k: getattr(options, k) for k in GEOMETRY_FIELDS}, sort_keys=True)
            backbone_key = repr((backbone.kind, sorted(backbone.config.items()), backbone.feature_scale))
            self.cache = FeatureCache(cache, "crest-" + fingerprint(backbone.params, geometry, backbone_key),
                                      half=True, device=backbone.device)

    def __len__(self) -> int:
        return self.total

    def _pick(self, index: int):
        rng = np.random.default_rng([int(self.seed), int(index)])
        track = self.tracks[int(rng.integers(len(self.tracks)))]
        n = len(track)
        t = int(rng.integers(0, max(1, n - 1)))
        t2 = int(min(n - 1, t + rng.integers(1, self.lookahead + 1)))
        return track, t, t2

    def _geometry(self, box: np.ndarray) -> WindowGeometry:
        o = self.options
        return WindowGeometry.for_box(box[2:], self.backbone, o.window_factor, o.max_target_px, o.min_target_px)

    def windows(self, index: int):
        """(track, (t, t2), geometry, support patch, query patch, query offset in window px)."""
        track, t, t2 = self._pick(index)
        box, box2 = np.asarray(track.boxes[t], float), np.asarray(track.boxes[t2], float)
        g = self._geometry(box)
        centre, centre2 = box[:2] + box[2:] / 2, box2[:2] + box2[2:] / 2
        side = g.frame_side(box[2:])
        sup = crop_windows(to_rgb(read_bgr(track.frames[t])), centre, [side], g.window, g.border)
        qry = crop_windows(to_rgb(read_bgr(track.frames[t2])), centre, [side], g.window, g.border)
        dx, dy = (centre2 - centre) * g.window / side
        return track, (t, t2), g, sup, qry, (float(dy), float(dx))

    def _frame_features(self, frame: str, box: np.ndarray) -> torch.Tensor:
        """Features (no Hann) of the window centred on ``box`` in ``frame``, through the cache."""
        def compute() -> torch.Tensor:
            g = self._geometry(box)
            patch = crop_windows(to_rgb(read_bgr(frame)), box[:2] + box[2:] / 2, [g.frame_side(box[2:])],
                                 g.window, g.border)
            return self.backbone(patch)

        return self.cache.get(f"{os.path.abspath(frame)}|{','.join(f'{v:.4f}' for v in box)}", compute)

    def __getitem__(self, index: int) -> CRESTEpisode:
        if self.cache is None:
            track, frames, g, sup, qry, offset = self.windows(index)
            feats = self.backbone(np.concatenate([sup, qry]))
            fs, fq = feats[:1], feats[1:]
        else:
            track, t, t2 = self._pick(index)
            frames = (t, t2)
            box, box2 = np.asarray(track.boxes[t], float), np.asarray(track.boxes[t2], float)
            g, g2 = self._geometry(box), self._geometry(box2)
            fs, fq = self._frame_features(track.frames[t], box), self._frame_features(track.frames[t2], box2)
            if fq.shape != fs.shape:   # another normalised size: exact crop instead
                _, _, g, sup, qry, offset = self.windows(index)
                fq = self.backbone(qry)
            else:
                # window px of frame t2's target from frame t's centre, in whole cells
                side2 = g2.frame_side(box2[2:])
                d = (box2[:2] + box2[2:] / 2 - box[:2] - box[2:] / 2) * g2.window / side2
                cells = np.round(d / g.stride).astype(int)            # (dx, dy)
                fq = _shift(fq, int(cells[1]), int(cells[0]))
                offset = (float(cells[1] * g.stride), float(cells[0] * g.stride))
        if self.options.hann:
            hann = hann2d(g.map_size, g.map_size, fs.device)
            fs, fq = fs * hann, fq * hann
        return CRESTEpisode(track.name, frames, (fs, g.label(device=fs.device)[None]),
                            (fq, g.label(offset, fs.device)[None]), g.kernel)


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` moved by (dy, dx) cells, zeros where nothing moves in."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def build_crest_learner(config: CRESTTrainConfig, start: dict, alpha: Optional[dict] = None,
                        device: Any = "cpu"):
    """The engine holding the target-model start, its element-wise rates and g_phi, on ``device``
    (the model moves first, so what the engine builds from it is made there)."""
    return training_learner(TargetModel(start).to(resolve_device(device)), config, "all", "mean", alpha)


def crest_task_loss(learner, episode: CRESTEpisode, training: bool = True):
    """Query loss after one meta-SGD step on the support pair from the start resized to the
    episode's kernel (L2F and DropGrad inside ``learner.adapt``); returns (loss, info). The
    episode's tensors move to the learner's device (a no-op when made there)."""
    start, rates = sized_start(learner.start(), learner.inner_lr.rates(), episode.kernel)
    device = start["cf.weight"].device
    support, query = (tuple(t.to(device) for t in pair) for pair in (episode.support, episode.query))
    fast, info = learner.adapt(start, response_loss, support, training=training, rates=rates)
    return response_loss(fast, query), info


def _schedule(learner, config: CRESTTrainConfig, iteration: int) -> str:
    return "decayed" if config.apply_lrs(learner, iteration) < 1 else "all"


def crest_weights(learner, backbone: Backbone, config: CRESTTrainConfig, metadata: dict) -> CRESTWeights:
    """The learner's state as tracker weights."""
    return CRESTWeights(backbone=backbone, options=dict(config.tracking), l2f=learner.config.l2f,
                        metadata=metadata, **learned_state(learner))


EFFICIENTNET = "efficientnet-lite0"   # --backbone name of EfficientNet-Lite0's ImageNet features


def backbone_spec(backbone: Any = None, layer: Optional[str] = None,
                  stride: Optional[int] = None) -> tuple[str, Optional[int]]:
    """Check ``layer`` and ``stride`` against the backbone named (nothing is loaded): returns the
    layer to read and, for EfficientNet, its ``dilate_from``. Mismatches are a UserError."""
    from .. import efficientnet

    if backbone is None or str(backbone).lower() == EFFICIENTNET:   # the default, as shipped
        layer = layer or "block5"
        digits = layer[len("block"):] if layer.startswith("block") else ""
        blocks = int(digits) if digits.isdigit() else -1
        if not 1 <= blocks <= len(efficientnet.BLOCKS):
            raise UserError(f"--backbone-layer {layer}: EfficientNet-Lite0's layers are block1 .. "
                            f"block{len(efficientnet.BLOCKS)}")
        return layer, efficientnet.dilate_for_stride(blocks, 4 if stride is None else stride)
    layer = layer or DEFAULT_SDNET_LAYER
    if layer not in ("conv2", "conv3"):
        raise UserError(f"--backbone-layer {layer}: MetaSDNet's layers are conv2 and conv3 "
                        f"(blockN is for --backbone {EFFICIENTNET})")
    if stride is not None:
        raise UserError(f"--backbone-stride: only for --backbone {EFFICIENTNET}")
    return layer, None


def default_training_backbone(backbone: Any = None, layer: Optional[str] = None,
                              stride: Optional[int] = None) -> Backbone:
    """``backbone``: a :class:`Backbone`; ``"efficientnet-lite0"`` (ImageNet features after block
    ``layer`` = ``blockN``, default block5, at ``stride`` pixels, default 4); MetaSDNet weights (our
    .pt: its conv layers up to ``layer``, default conv2); or VGG-16 (.mat or state dict); None:
    EfficientNet-Lite0 as for ``"efficientnet-lite0"`` (the shipped weights' backbone)."""
    from ..sdnet.weights import load_weights

    if isinstance(backbone, Backbone):
        return backbone
    layer, dilate_from = backbone_spec(backbone, layer, stride)
    if backbone is None or str(backbone).lower() == EFFICIENTNET:
        return Backbone.efficientnet(int(layer[len("block"):]), dilate_from)
    path = str(backbone)
    if path.lower().endswith(".mat"):
        return Backbone.vgg16(path)
    try:
        return Backbone.from_sdnet(load_weights(path), layer)
    except UserError:
        return Backbone.vgg16(path)


def meta_train_crest(tracks: SequenceType[Track], config: CRESTTrainConfig, out: str,
                     resume: bool = False, val_tracks: SequenceType[Track] | None = None,
                     init: Any = None, backbone: Any = None, backbone_layer: Optional[str] = None,
                     backbone_stride: Optional[int] = None,
                     progress: bool = True, metadata: Optional[dict] = None,
                     world: World = SINGLE, device: Any = "cpu") -> TrainResult:
    """Meta-train MetaCREST on ``tracks``; writes ``out`` (weights), ``out.ckpt``, ``out.csv``
    (rank 0 of ``world`` alone under torchrun).

    ``init``: MetaCREST weights to continue from (its backbone is kept); else a seeded start on
    ``backbone`` (see :func:`default_training_backbone`). A MetaSDNet backbone gets a feature
    scale calibrated on 16 training windows (unit RMS), and so does EfficientNet; VGG-16 keeps its raw scale, which the
    reference learning rates are for. ``device``: where the engine runs, and the backbone too
    unless loader workers (``config.workers``) compute the features, on the CPU.
    """
    from ..crest.weights import load_crest_weights

    config.validate()
    device = resolve_device(device)
    # forked loader workers cannot use the parent's GPU: with workers, features are the CPU's
    features_on = device if config.workers == 0 else torch.device("cpu")
    opts = config.options()
    alpha = None
    if init is not None:
        w = init if isinstance(init, CRESTWeights) else load_crest_weights(init, backbone)
        bb, start, alpha = w.backbone.to(features_on), w.params, w.alpha
    else:
        bb = default_training_backbone(backbone, backbone_layer, backbone_stride).to(features_on)
        if bb.kind in ("sdnet", "efficientnet"):
            probe = CRESTEpisodeDataset(tracks, 10**7 + config.seed, bb, opts, config.lookahead)
            bb.calibrate([probe.windows(i)[3] for i in range(16)])
        side = config.template or WindowGeometry.for_box((opts.max_target_px,) * 2, bb, opts.window_factor,
                                                         opts.max_target_px, opts.min_target_px).kernel[0]
        start = init_params(bb.out_channels, (side, side), config.reduced,
                            generator=torch.Generator().manual_seed(config.seed))
    torch.manual_seed(config.seed)
    learner = build_crest_learner(config, start, alpha, device)
    dataset = CRESTEpisodeDataset(tracks, config.seed, bb, opts, config.lookahead, cache=config.feature_cache)
    val = (CRESTEpisodeDataset(val_tracks, 10**6 + config.seed, bb, opts, config.lookahead,
                               cache=config.feature_cache) if val_tracks else None)
    meta = {"train_config": asdict(config), "engine": learner.config.to_dict(), "tracker": "metacrest",
            **(metadata or {})}

    def save(learner_, iteration: int) -> None:
        save_crest_weights(out, crest_weights(learner_, bb, config, meta), {"iterations": iteration})

    return run_meta_training(learner, config, out, dataset,
                             lambda episode, training: crest_task_loss(learner, episode, training), save,
                             resume=resume, val_dataset=val,
                             schedule=lambda l, i: _schedule(l, config, i), metadata=meta,
                             progress=progress, world=world)
