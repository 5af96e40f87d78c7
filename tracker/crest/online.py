"""The MetaCREST tracker (and its ``crest`` baseline) under got10k's ``init`` / ``update`` interface.

Frame 1: the window around the box goes through the frozen backbone once; ``metacrest`` adapts the
target model with ONE meta-SGD step from the meta-learned start through
:meth:`meta_learning.MetaLearner.adapt` (L2F attenuation first when the weights have an
attenuator; the filter template and its rates resized to the target), ``crest`` instead trains a
seeded random start for ``init_iters`` Adam iterations (CREST's ordinary start).

Every later frame (reference facts, section MetaCREST): windows at the previous centre and at the
scales ``{1, 0.95, 1.05}``, features times a Hann window, response times a Gaussian motion prior,
arg-max shift times the stride; the best scale's peak moves the box, and its size follows
``new = 0.4 old + 0.6 best`` unless the peak is below 0.15. Up to 5 (features, shifted label)
pairs are remembered, and every 10 frames the target model takes 2 Adam steps on them (CREST:
10 pairs, every 5 frames; the CPU budget, see ``memory``). These
online updates are ordinary training of the adapted model, not meta-learning: the one inner loop
lives in ``meta_learning``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from foundation.boxes import MIN_BOX, check_init_box, clip_to_image
from foundation.devices import resolve_device
from foundation.errors import UserError
from foundation.images import to_rgb

from ..api import Tracker
from ..options import check_option_types
from ..weights import frame1_learner
from .backbone import Backbone
from .dcf import (
    REDUCED_CHANNELS,
    TargetModel,
    forward,
    gaussian_label,
    hann2d,
    init_params,
    peak_to_sidelobe,
    residual_params,
    response_loss,
    response_peak,
    sized_start,
)
from .weights import CRESTWeights, default_backbone, resolve_crest_weights
from .window import WindowGeometry, crop_windows

__all__ = ["CRESTOptions", "MetaCRESTTracker", "CRESTTracker"]

_TEMPLATE = (13, 13)   # template of an untrained start (a 48-pixel target at stride 4)


@dataclass
class CRESTOptions:
    """Tracking settings; defaults are the reference's (VGG-16 scale). Weights carry the values
    they were trained with (``CRESTWeights.options``), which replace these defaults."""

    window_factor: float = 5.0            # window side = 5 x the target's larger side
    max_target_px: float = 100.0          # larger targets are scaled down to this (CREST: 100)
    min_target_px: float = 0.0            # smaller targets are scaled up to this (CREST: none)
    hann: bool = True                     # features x 2-D Hann window
    subcell: bool = True                  # parabolic sub-cell peak (ours; CREST: whole cells)
    motion_sigma: float = 0.6             # motion prior: Gaussian, s = 0.6 x target size (cells)
    scales: Tuple[float, ...] = (1.0, 0.95, 1.05)
    scale_smoothing: float = 0.6          # new size = 0.4 old + 0.6 best
    min_peak: float = 0.15                # no scale change (and no memory) below this peak
    # CPU: 5 pairs, an update every 10 frames (CREST: 10 and 5, here half of a frame's time): on the
    # real clips and the synthetic val split every variant and crest tracked as well (-0.012 to
    # +0.030 AUC, within the intervals) at 1.23-1.92x the fps (docs/results/online_budget.md)
    memory: int = 5                       # remembered (features, label) pairs
    update_every: int = 10                # frames between online updates
    update_steps: int = 2                 # Adam steps per update
    update_lr: float = 7e-6               # Adam lr of the online updates
    residual: bool = True                 # CREST's spatial and temporal residual branches (they pay:
                                          # docs/results/crest_residual.md, chosen on the validation split)
    residual_iters: int = 10              # metacrest: Adam iterations of the spatial branch at frame 1
    residual_lr: float = 1e-3             # their lr (init="train" trains it with the base instead)
    init: str = "meta"                    # meta: one meta-SGD step; train: Adam from a seeded start;
                                          # head: train's, with the start's 1x1 reduction kept frozen
    inner_steps: int = 1                  # meta-SGD steps at frame 1
    init_iters: int = 100                 # init="train" / "head": Adam iterations at frame 1
    init_lr: float = 1e-3                 # init="train" / "head": their Adam lr
    reduced: int = REDUCED_CHANNELS       # init="train" / untrained: 1x1 reduction width
    seed: int = 0
    # ---- confidence and the lost flag (docs/tracker.md "Confidence"): the score is the best
    # scale's response peak ("peak") or its peak-to-sidelobe ratio ("psr"); below lost_threshold
    # the frame is flagged lost (calibrated on the val split, docs/results/lost_calibration.md).
    # redetect: while lost, no memory and no online update, and 8 more windows, redetect_shift
    # window sides away around the centre, are searched without the motion prior.
    confidence: str = "peak"
    lost_threshold: float = 0.662       # val split, peak: docs/results/lost_calibration.md (its 0.662035)
    redetect: bool = False
    redetect_shift: float = 0.5

    def validate(self) -> "CRESTOptions":
        def check(ok: bool, msg: str) -> None:
            if not ok:
                raise UserError(msg)
        check_option_types(self, "MetaCREST")
        check(self.window_factor > 1, f"window_factor must exceed 1, got {self.window_factor}")
        check(self.max_target_px >= max(self.min_target_px, 4.0),
              f"max_target_px ({self.max_target_px}) must be >= min_target_px and >= 4")
        check(len(self.scales) >= 1 and all(s > 0 for s in self.scales), f"bad scales {self.scales}")
        check(0.0 <= self.scale_smoothing <= 1.0, f"scale_smoothing must be in [0, 1], got {self.scale_smoothing}")
        check(self.memory >= 1, f"memory must be >= 1, got {self.memory}")
        check(self.update_every >= 0 and self.update_steps >= 0, "update_every/update_steps must be >= 0")
        check(self.init in ("meta", "train", "head"), f"init must be meta, train or head, got {self.init!r}")
        check(self.inner_steps >= 0 and self.init_iters >= 0, "inner_steps/init_iters must be >= 0")
        check(self.confidence in ("peak", "psr"), f"confidence must be peak or psr, got {self.confidence!r}")
        check(self.redetect_shift > 0, f"redetect_shift must be > 0, got {self.redetect_shift}")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scales"] = list(self.scales)
        return d

    @classmethod
    def known(cls) -> set:
        return {f.name for f in fields(cls)}


class MetaCRESTTracker(Tracker):
    """MetaCREST (``init="meta"``), CREST (``init="train"``) or CREST's training with the meta-learned
    1x1 reduction kept (``init="head"``).

    ``weights``: our MetaCREST ``.pt``, an official MetaCREST checkpoint (then ``backbone`` =
    ``imagenet-vgg-verydeep-16.mat`` or a VGG-16 state dict), a :class:`CRESTWeights`, or None for
    the shipped ``weights/<name>.pt``. Other keywords are :class:`CRESTOptions` fields.

    ``device`` (``cpu``, ``cuda``, ``cuda:N`` or ``auto``) holds every tensor: the backbone, the
    target model, its start, labels, windows and the online updates. Default: the CPU
    (bit-reproducible; docs/tracker.md, "Devices").
    """

    weights_fallback: Tuple[str, ...] = ()

    def __init__(self, name: str = "metacrest", weights: Any = None, backbone: Any = None,
                 options: Optional[CRESTOptions] = None, device: Union[str, torch.device] = "cpu",
                 **overrides: Any) -> None:
        unknown = sorted(set(overrides) - CRESTOptions.known())
        if unknown:
            raise UserError(f"unknown option(s) for {name}: {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(CRESTOptions.known()))}")
        self.device = resolve_device(device)
        # on a GPU, cuDNN's backward convolutions may reorder sums from run to run
        super().__init__(name, is_deterministic=self.device.type == "cpu")
        w = resolve_crest_weights(name, weights, backbone, self.weights_fallback, map_location=self.device)
        if w is None:
            bb = default_backbone(name, backbone)
            start = init_params(bb.out_channels, _TEMPLATE, generator=torch.Generator().manual_seed(0))
            w = CRESTWeights(backbone=bb, params=start, alpha={k: torch.full_like(v, 1e-6)
                                                               for k, v in start.items()}, trained=False)
        self.weights = w
        self.backbone: Backbone = w.backbone.to(self.device)
        trained_with = {k: (tuple(v) if k == "scales" else v) for k, v in w.options.items()
                        if k in CRESTOptions.known()}
        self.opts = replace(options or replace(CRESTOptions(), **trained_with), **overrides).validate()
        if self.opts.init == "meta" and w.alpha is None:
            raise UserError(f"{name}: the weights have no meta-learned rates (alpha); use init='train'")
        self.start = {k: v.detach().float().to(self.device) for k, v in w.params.items()}
        self.lost_threshold = self.opts.lost_threshold
        self._learner = None      # learner() builds it on first use
        if self.opts.init == "meta":
            self.learner()
        self.gamma: Optional[Dict[str, float]] = None
        self.l2f_embedding: Optional[List[float]] = None   # g_phi's input at the last frame 1

    # ------------------------------------------------------------------ engine
    def learner(self):
        """The engine holding the start, the element-wise rates and the L2F attenuator (if any)."""
        if self._learner is None:
            self._learner = frame1_learner(self.weights, TargetModel(self.start).to(self.device),
                                           self.opts.inner_steps, initial_rate=1e-6)
        return self._learner

    # ------------------------------------------------------------------ features
    def _window_features(self, rgb: np.ndarray, centre: np.ndarray, sides: Sequence[float]) -> torch.Tensor:
        g = self.geometry
        patches = crop_windows(rgb, centre, sides, g.window, g.border)
        feats = self.backbone(patches)
        return feats * self._hann if self._hann is not None else feats

    def _fit(self, steps: int, optimizer: torch.optim.Optimizer) -> None:
        """``steps`` Adam steps of the target model on the memory (ordinary training)."""
        if steps <= 0 or not self._memory:
            return
        feats = torch.cat([f for f, _ in self._memory])
        labels = torch.stack([l for _, l in self._memory])
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = response_loss(self.params, (feats, labels))
            loss.backward()
            optimizer.step()

    # ------------------------------------------------------------------ got10k interface
    def init(self, image: Any, box: Sequence[float]) -> None:
        o = self.opts
        self._begin(image, box)
        rgb = to_rgb(image)
        H, W = rgb.shape[:2]
        box = check_init_box(box, W, H)
        self.centre = box[:2] + box[2:] / 2.0
        self.size = box[2:].copy()
        self.frame = 0
        g = self.geometry = WindowGeometry.for_box(self.size, self.backbone, o.window_factor,
                                                   o.max_target_px, o.min_target_px)
        n = g.map_size
        if n < 3:
            raise UserError(f"the window ({g.window} px) is too small for the backbone: raise "
                            "min_target_px or window_factor")
        self._hann = hann2d(n, n, self.device)[None, None] if o.hann else None
        # motion prior: a Gaussian on the response around the window's centre, s = 0.6 x target size
        centre_shift = (g.cell_of((g.window - 1) / 2.0) - n // 2,) * 2
        self._prior = gaussian_label((n, n), g.target_cells, centre_shift, a=0.5, sigma_factor=o.motion_sigma,
                                     device=self.device)
        if not self.weights.trained and self.backbone.feature_scale == 1.0:
            patches = crop_windows(rgb, self.centre, [g.frame_side(self.size)], g.window, g.border)
            self.backbone.calibrate(patches)
        feats = self._window_features(rgb, self.centre, [g.frame_side(self.size)])
        label = g.label(device=self.device)
        support = (feats, label[None])
        torch.manual_seed(o.seed)
        if o.init == "meta":
            learner = self.learner()
            rates = learner.inner_lr.rates()
            start, sized_rates = sized_start(learner.start(), rates, g.kernel)
            adapted, info = learner.adapt(start, response_loss, support, steps=o.inner_steps,
                                          training=False, rates=sized_rates)
            self.gamma = (None if info["gamma"] is None else
                          dict(zip(info["names"], info["gamma"].detach().tolist())))
            self.l2f_embedding = None if info["embedding"] is None else info["embedding"].detach().cpu().tolist()
            params = {k: v.detach().clone() for k, v in adapted.items()}
        else:
            gen = torch.Generator().manual_seed(o.seed)   # on the CPU: the same start on every device
            reduced = self.start["conv1.weight"].shape[0] if o.init == "head" else o.reduced
            params = {k: v.to(self.device) for k, v in
                      init_params(self.backbone.out_channels, g.kernel, reduced, generator=gen).items()}
            if o.init == "head":   # the meta-learned 1x1 reduction, kept; the filter trained as CREST's
                params.update({k: self.start[k].clone() for k in ("conv1.weight", "conv1.bias")})
        if o.residual:
            params.update({k: v.to(self.device) for k, v in residual_params(
                self.backbone.out_channels, "res_s", generator=torch.Generator().manual_seed(o.seed + 1)).items()})
        frozen = ("conv1.weight", "conv1.bias") if o.init == "head" else ()
        self.params = {k: v.requires_grad_(k not in frozen) for k, v in params.items()}
        self._memory: List[Tuple[torch.Tensor, torch.Tensor]] = [(feats, label)]
        if o.init in ("train", "head"):
            self._fit(o.init_iters, torch.optim.Adam([v for v in self.params.values() if v.requires_grad],
                                                     lr=o.init_lr))
        elif o.residual:   # the meta-learned base is kept; the spatial branch fits what it misses
            self._fit(o.residual_iters, torch.optim.Adam(
                [v for k, v in self.params.items() if k.startswith("res_s.")], lr=o.residual_lr))
        if o.residual:
            # the spatial branch is kept from here on; the temporal one starts as its copy and
            # follows the online updates together with the base filter
            for k in [k for k in self.params if k.startswith("res_s.")]:
                self.params[k].requires_grad_(False)
                self.params["res_t." + k[len("res_s."):]] = self.params[k].detach().clone().requires_grad_(True)
        self._optimizer = torch.optim.Adam([v for v in self.params.values() if v.requires_grad], lr=o.update_lr)
        self.last_peak = 1.0
        with torch.no_grad():   # frame 1's score: the adapted model's response on its own window
            self._confidence((forward(self.params, feats)[:, 0] * self._prior)[0])
        self.searching = False

    def update(self, image: Any) -> np.ndarray:
        self._next(image)
        o, g = self.opts, self.geometry
        rgb = to_rgb(image)
        H, W = rgb.shape[:2]
        self.frame += 1
        base = g.frame_side(self.size)
        sides = [base * s for s in o.scales]
        feats = self._window_features(rgb, self.centre, sides)
        centres = [self.centre] * len(sides)
        if self.searching:   # re-detection: 8 more windows around, no motion prior
            step = o.redetect_shift * base
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if dx or dy:
                        centres.append(self.centre + step * np.array([dx, dy]))
                        feats = torch.cat([feats, self._window_features(rgb, centres[-1], [base])])
            sides = sides + [base] * (len(centres) - len(sides))
        with torch.no_grad():
            response = forward(self.params, feats)[:, 0]
            response = response if self.searching else response * self._prior
        peaks = response.flatten(1).max(1).values
        best = int(torch.argmax(peaks))
        peak = float(peaks[best])
        dy, dx = response_peak(response[best], o.subcell)
        oy, ox = g.peak_offset_px(dy, dx)
        k = sides[best] / g.window                   # frame pixels per window pixel
        self.centre = centres[best] + np.array([ox, oy]) * k
        self.centre = np.clip(self.centre, 0.0, [float(W), float(H)])
        self._confidence(response[best])
        # re-detection: a lost frame teaches the model nothing and widens the next frame's search
        hold = o.redetect and self.lost
        self.searching = hold
        if peak >= o.min_peak and not hold:
            if best < len(o.scales) and o.scales[best] != 1.0:
                self.size = self.size * ((1.0 - o.scale_smoothing) + o.scale_smoothing * o.scales[best])
                self.size = np.maximum(self.size, MIN_BOX)
            # the target now sits (oy, ox) from that window's centre: remember it there
            self._memory.append((feats[best:best + 1], g.label((oy, ox), self.device)))
            self._memory = self._memory[-o.memory:]
        if o.update_every and self.frame % o.update_every == 0 and not hold:
            self._fit(o.update_steps, self._optimizer)
        self.last_peak = peak
        box = np.concatenate([self.centre - self.size / 2.0, self.size])
        return clip_to_image(box, W, H, min_size=MIN_BOX)


    def _confidence(self, response: torch.Tensor) -> None:
        """Set ``peak``, ``psr`` (sidelobe: beyond half the target's cells from the peak) and the
        ``score`` the options pick, from one ``H x W`` response."""
        self.peak = float(response.max())
        self.psr = peak_to_sidelobe(response, max(1, int(round(max(self.geometry.target_cells) / 2))))
        self.score = self.peak if self.opts.confidence == "peak" else self.psr


class CRESTTracker(MetaCRESTTracker):
    """The ``crest`` baseline: the same tracker and backbone, started by ``init_iters`` Adam
    iterations from a seeded random target model instead of the meta-learned step. It uses the
    backbone (and trained-with options) of the shipped ``metacrest`` weights."""

    weights_fallback = ("metacrest",)

    def __init__(self, name: str = "crest", **kwargs: Any) -> None:
        kwargs.setdefault("init", "train")
        super().__init__(name, **kwargs)
