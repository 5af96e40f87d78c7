"""The online MetaSDNet tracker (``metasdnet``) and its MDNet baseline (``mdnet``).

Frame 1 (``init``): positives, negatives and bounding-box-regression samples are drawn around the
given box; ``metasdnet`` adapts ALL layers with ONE meta-SGD step ``theta1 = theta0 - alpha * grad``
(element-wise learned rates, L2F attenuation first when the weights carry an attenuator) through
:meth:`meta_learning.MetaLearner.adapt`; ``mdnet`` instead fine-tunes fc4-6 for ``finetune_iters``
iterations of ordinary SGD with hard negative mining. The ridge box regressor is fitted on conv3
features of the adapted network.

Each later frame (``update``): 256 gaussian candidates around the previous box, the mean of the
top 5 by positive score is the new box if their mean score is > 0 (then box regression refines the
output and positives/negatives are stored), otherwise the previous box is kept and the search is
widened. fc4-6 are updated with plain SGD (``torch.optim.SGD``, not the meta inner loop) on the
memory: short-term on failure, long-term every 10 frames, 10 iterations of 32 positives and 96
hard negatives mined from 512 (MDNet: 15 and 1024; the CPU budget, see ``update_iters``).

``mode="fast"`` (default) computes conv features once per frame on a search region and pools boxes
with RoIAlign; ``mode="exact"`` crops every box to 107 x 107 like MDNet (:mod:`.features`: one
extractor object per mode, so the tracker itself has no mode branches).
Every number is an option of :class:`SDNetOptions` (defaults: the reference values; the few CPU
departures are marked "CPU:" and listed in docs/tracker.md).
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
from .bbreg import BBoxRegressor
from .features import make_features
from .losses import fc_loss
from .model import ModelConfig, binary_loss, fc_forward
from .sampling import Sampler, sample_iou
from .weights import resolve_weights

__all__ = ["SDNetOptions", "MetaSDNetTracker", "MDNetTracker", "check_init_box", "MIN_BOX"]



@dataclass
class SDNetOptions:
    """Every knob of the online tracker. Samplers are ``(kind, trans, scale, aspect)``."""

    mode: str = "fast"                    # fast (RoIAlign on one region) | exact (107x107 crops)
    init: str = "meta"                    # meta (one meta-SGD step) | finetune (MDNet baseline)
    seed: int = 0
    # ---- frame 1
    init_pos: int = 32
    init_pos_sampler: Tuple = ("gaussian", 0.1, 1.2, 1.1)
    init_pos_iou: float = 0.7
    init_neg_uniform: int = 48
    init_neg_uniform_sampler: Tuple = ("uniform", 1.0, 2.0, 1.1)
    init_neg_whole: int = 48
    init_neg_whole_sampler: Tuple = ("whole", 0.0, 1.2, 1.1)
    init_neg_iou: float = 0.5
    # CPU (fast mode): whole-image negatives are drawn inside a window of +- this many target
    # sizes around the box (clipped to the image) so frame 1 needs one modest conv pass;
    # None = the whole image (the reference; exact mode always uses the whole image).
    init_whole_window: Optional[float] = 3.0
    inner_steps: int = 1                  # meta-SGD steps at frame 1 (the reference: ONE)
    # ---- mdnet baseline (init="finetune"): fc4-6 fine-tuned on frame 1 like MDNet
    finetune_iters: int = 30
    finetune_pos: int = 500
    finetune_neg: int = 5000
    finetune_lr: float = 5e-4
    # ---- bounding-box regression
    bbreg: bool = True
    # CPU: 250 boxes instead of MDNet's 1000. The ridge fit is most of the frame-1 work that every
    # start shares (its Gram matrix grows with the square of the boxes); with a quarter of them the
    # val AUC is the same (docs/results/metasdnet_bbreg.md: the tracking path is the same, only the reported
    # boxes differ), and MetaSDNet's frame 1 went from 3.1x to 5.7x faster than mdnet's
    # (docs/results/tracker_speed.md, before and after)
    bbreg_n: int = 250
    bbreg_sampler: Tuple = ("uniform", 0.3, 1.5, 1.1)
    bbreg_iou: float = 0.6
    bbreg_alpha: float = 1000.0
    # ---- candidates
    n_candidates: int = 256
    cand_trans: float = 0.6
    cand_scale: float = 1.05
    cand_trans_limit: float = 1.5         # failure: trans <- min(limit, trans * expand)
    cand_trans_expand: float = 1.1
    top_k: int = 5
    success_threshold: float = 0.0
    # ---- confidence and the lost flag (docs/tracker.md "Confidence"): the score is the mean
    # positive score (fc6 class 1) of the top_k candidates, the same number success compares;
    # below lost_threshold the frame is flagged lost (calibrated on the val split,
    # docs/results/lost_calibration.md). redetect: while lost, no memory and no online update, and the
    # candidates spread redetect_trans target sizes (redetect_candidates of them) until it recovers.
    lost_threshold: float = 0.6189      # val split: docs/results/lost_calibration.md (its 0.618863)
    redetect: bool = False
    redetect_trans: float = 1.8
    redetect_candidates: int = 512
    # ---- memory (per successful frame) and online updates (fc4-6, plain SGD)
    update_pos: int = 50
    update_pos_sampler: Tuple = ("gaussian", 0.1, 1.3, 1.0)
    update_pos_iou: float = 0.7
    update_neg: int = 200
    # CPU (fast mode): trans 0.6 (the candidates' own reach) keeps these negatives inside the
    # search region the candidates need anyway: a region ~2x smaller in area than with MDNet's
    # farther negatives, ~1.5x faster per frame and no less accurate on our synthetic benchmark.
    update_neg_sampler: Tuple = ("uniform", 0.6, 1.3, 1.0)
    update_neg_iou: float = 0.3
    pos_frames_long: int = 100
    pos_frames_short: int = 20
    neg_frames: int = 20
    long_interval: int = 10
    # CPU: 10 iterations mining 512 (MDNet: 15 mining 1024, here 35-40% of a frame's time): on the
    # real clips and the synthetic val split every variant and mdnet tracked as well (-0.016 to
    # +0.019 AUC, within the intervals) at 1.15-1.43x the fps (docs/results/online_budget.md)
    update_iters: int = 10
    batch_pos: int = 32
    batch_neg: int = 96
    batch_neg_pool: int = 512             # hard negatives mined from this many
    lr_update: float = 2e-4
    fc6_lr_mult: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float = 10.0
    # ---- fast mode
    # stride-8 map (conv3: pool2 s1 + dilated conv3; EfficientNet: its last strided layer a trous)
    # instead of 16; None: dense for our conv layers, not for a frozen EfficientNet backbone, whose
    # stride-16 map is both faster and better there (docs/tracker.md, val split)
    dense: Optional[bool] = None
    max_region: int = 400                 # search-region side cap, region pixels
    max_region_init: int = 480
    chunk: int = 128                      # exact mode: crops per conv batch

    def validate(self) -> "SDNetOptions":
        check_option_types(self, "MetaSDNet")
        if self.mode not in ("fast", "exact"):
            raise UserError(f"mode must be 'fast' or 'exact', got {self.mode!r}")
        if self.init not in ("meta", "finetune"):
            raise UserError(f"init must be 'meta' or 'finetune', got {self.init!r}")
        for name in ("n_candidates", "top_k", "init_pos", "update_iters", "batch_pos", "batch_neg"):
            if int(getattr(self, name)) < 0:
                raise UserError(f"{name} must be >= 0")
        if self.dense not in (None, True, False):
            raise UserError(f"dense must be true, false or None, got {self.dense!r}")
        if self.top_k < 1 or self.n_candidates < self.top_k or self.redetect_candidates < self.top_k:
            raise UserError("need n_candidates >= top_k >= 1 and redetect_candidates >= top_k")
        if self.redetect_trans <= 0:
            raise UserError(f"redetect_trans must be > 0, got {self.redetect_trans}")
        return self

    def dense_for(self, config: ModelConfig) -> bool:
        """Whether fast mode reads the stride-8 map for this network (``dense=None``: only for our
        own conv layers)."""
        return config.learned_conv if self.dense is None else bool(self.dense)

    def to_dict(self) -> dict:
        return asdict(self)


def _sampler(spec: Tuple) -> Sampler:
    kind, trans, scale, *rest = spec
    return Sampler(str(kind), float(trans), float(scale), float(rest[0]) if rest else 1.0)


class _Memory:
    """Per-frame feature sets with their frame numbers."""

    def __init__(self) -> None:
        self.items: List[Tuple[int, torch.Tensor]] = []

    def add(self, frame: int, feats: torch.Tensor) -> None:
        if len(feats):
            self.items.append((frame, feats))

    def trim(self, frame: int, keep: int) -> None:
        self.items = [(f, x) for f, x in self.items if frame - f < keep]

    def recent(self, frame: int, frames: int) -> Optional[torch.Tensor]:
        sel = [x for f, x in self.items if frame - f < frames]
        return torch.cat(sel, 0) if sel else None


class MetaSDNetTracker(Tracker):
    """MetaSDNet (``init="meta"``) or MDNet (``init="finetune"``) under got10k's interface.

    ``weights``: a path (our ``.pt``, an official Meta-Tracker checkpoint, ``imagenet-vgg-m.mat``),
    an :class:`~tracker.sdnet.weights.SDNetWeights`, or None for the shipped ``weights/<name>.pt``
    (untrained seeded start with one warning if there is none). Other keywords are
    :class:`SDNetOptions` fields; ``options=SDNetOptions(...)`` passes them at once.

    ``device`` (``cpu``, ``cuda``, ``cuda:N`` or ``auto``) holds every tensor of the tracker: the
    weights load onto it, and the frame-1 step, the features and the online updates run there.
    The default is the CPU, whose results are bit-reproducible (docs/tracker.md, "Devices").
    """

    # other shipped names whose weights serve when ``<name>.pt`` is missing (none: a variant such
    # as metasdnet-l2f must never silently run the baseline's weights)
    weights_fallback: Tuple[str, ...] = ()

    def __init__(self, name: str = "metasdnet", weights: Any = None,
                 options: Optional[SDNetOptions] = None, model_config: Optional[ModelConfig] = None,
                 device: Union[str, torch.device] = "cpu", **overrides: Any) -> None:
        opts = options or SDNetOptions()
        known = {f.name for f in fields(SDNetOptions)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise UserError(f"unknown option(s) for {name}: {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
        self.opts = replace(opts, **overrides).validate()
        self.device = resolve_device(device)
        # on a GPU, atomics in the backward passes (RoIAlign's grid_sample, cuDNN) reorder sums
        super().__init__(name, is_deterministic=self.device.type == "cpu")
        self.lost_threshold = self.opts.lost_threshold
        self.weights = resolve_weights(name, weights, model_config, self.opts.seed,
                                       self.weights_fallback, map_location=self.device)
        self.config = self.weights.config
        self.start = {k: v.detach().to(self.device).float() for k, v in self.weights.params.items()}
        self.extractor = make_features(self.opts.mode, self.config, self.opts.dense_for(self.config),
                                       self.opts.chunk, self.device)
        self._learner = None
        self.regressor = BBoxRegressor(self.opts.bbreg_alpha)
        # Built now, not on the first frame: the first torch optimiser of a process imports
        # torch._dynamo (seconds), which would otherwise be billed to frame 1.
        self.learner()

    # ------------------------------------------------------------------ engine
    def learner(self):
        """The engine holding the start, the element-wise rates and the L2F attenuator (if any);
        the weights say which tensors the frame-1 step adapts."""
        if self._learner is None:
            from .model import MetaSDNet

            model = MetaSDNet(self.config, self.start).to(self.device)
            self._learner = frame1_learner(self.weights, model, self.opts.inner_steps, initial_rate=1e-4)
        return self._learner

    # ------------------------------------------------------------------ features
    def _features(self, params, groups: Sequence[np.ndarray], ref_box: np.ndarray,
                  max_side: int, also: Sequence[np.ndarray] = ()) -> List[torch.Tensor]:
        """conv3 features (flattened) of several box sets of the current frame, no grad; ``also``
        are pooled from the same region without widening it (the region follows ``groups``)."""
        cover = np.concatenate([g for g in groups if len(g)], 0)
        frame = self.extractor.frame(params, self._rgb, cover, ref_box, max_side)
        return [frame.pool(g).flatten(1) for g in list(groups) + list(also)]

    # ------------------------------------------------------------------ frame 1
    def init(self, image: Any, box: Sequence[float]) -> None:
        o = self.opts
        self.gamma = None
        self._begin(image, box)
        self._rgb = to_rgb(image)
        H, W = self._rgb.shape[:2]
        self._size = (W, H)
        box = check_init_box(box, W, H)
        self.box = box.copy()
        self.frame = 0
        self.trans = o.cand_trans
        self.rng = np.random.default_rng(o.seed)
        torch.manual_seed(o.seed)
        rng, size = self.rng, self._size

        area = None
        if o.mode == "fast" and o.init_whole_window is not None:
            s = box[2:].mean() * o.init_whole_window
            cx, cy = box[:2] + box[2:] / 2
            area = (max(0.0, cx - s), max(0.0, cy - s), min(float(W), cx + s), min(float(H), cy + s))
        n_pos = o.finetune_pos if o.init == "finetune" else o.init_pos
        n_neg = o.finetune_neg if o.init == "finetune" else o.init_neg_uniform + o.init_neg_whole
        n_uni = n_neg * o.init_neg_uniform // max(1, o.init_neg_uniform + o.init_neg_whole)
        pos = sample_iou(rng, _sampler(o.init_pos_sampler), box, size, n_pos, (o.init_pos_iou, 1.0))
        neg = np.concatenate([
            sample_iou(rng, _sampler(o.init_neg_uniform_sampler), box, size, n_uni, (0.0, o.init_neg_iou)),
            sample_iou(rng, _sampler(o.init_neg_whole_sampler), box, size, n_neg - n_uni,
                       (0.0, o.init_neg_iou), area=area)])
        # the box regressor's samples come from a stream of their own, so that its options never
        # move the tracking path (the memory samples and candidates drawn after them)
        bb = (sample_iou(np.random.default_rng([o.seed, 1]), _sampler(o.bbreg_sampler), box, size,
                         o.bbreg_n, (o.bbreg_iou, 1.0))
              if o.bbreg else np.zeros((0, 4)))
        mpos, mneg = self._memory_samples(box)

        self._frame1 = None
        if o.init == "meta":
            params = self._meta_step(pos, neg, np.concatenate([pos, neg, bb, mpos, mneg], 0), box)
        else:
            params = {k: v.clone() for k, v in self.start.items()}
        self._set_params(params)
        groups = [bb, mpos, mneg] + ([pos, neg] if o.init == "finetune" else [])
        if self._frame1 is not None:   # conv did not change: pool from the step's features
            feats = [self._frame1.pool(g).flatten(1) for g in groups + [box[None]]]
            self._frame1 = None
        else:
            feats = self._features(self.params, groups, box, o.max_region_init, also=[box[None]])
        given = feats.pop()
        if o.bbreg and len(bb):
            self.regressor.fit(feats[0].cpu().numpy(), bb, box)
        self.pos_mem, self.neg_mem = _Memory(), _Memory()
        self.pos_mem.add(0, feats[1])
        self.neg_mem.add(0, feats[2])
        if o.init == "finetune":
            self._train(feats[3], feats[4], o.finetune_iters, o.finetune_lr)
        with torch.no_grad():   # frame 1's score: the adapted model's positive score of the given box
            self.score = float(fc_forward(self.params, given)[0, 1])
        self.searching = False
        self._rgb = None

    def _meta_step(self, pos: np.ndarray, neg: np.ndarray, cover: np.ndarray, box: np.ndarray):
        """ONE meta-SGD step through the engine (L2F first if configured) over the tensors the
        weights adapt: all layers, or fc4-6 (then conv features are constants of the step,
        computed once and reused for the rest of frame 1)."""
        o = self.opts
        boxes = np.concatenate([pos, neg], 0)
        labels = torch.cat([torch.ones(len(pos), device=self.device),
                            torch.zeros(len(neg), device=self.device)]).long()
        learner = self.learner()
        if not any(n.startswith("features.") for n in learner.inner_names):
            self._frame1 = self.extractor.frame(self.start, self._rgb, cover, box, o.max_region_init)
            loss_fn, batch = fc_loss, (self._frame1.pool(boxes), labels)
        else:
            loss_fn, batch = self.extractor.loss(self._rgb, boxes, labels, cover, box, o.max_region_init)
        self._loss_fn, self._batch = loss_fn, batch  # kept for inspection (tests)
        adapted, info = learner.adapt(None, loss_fn, batch, steps=o.inner_steps, training=False)
        # L2F's per-tensor attenuation of this target's start (None without an attenuator)
        self.gamma = None if info["gamma"] is None else dict(zip(info["names"], info["gamma"].detach().tolist()))
        return {k: v.detach() for k, v in adapted.items()}

    def _set_params(self, params: Dict[str, torch.Tensor]) -> None:
        o = self.opts
        self.params = {k: (v.detach().clone().requires_grad_(k.startswith("fc.")))
                       for k, v in params.items()}
        fc = [self.params[f"fc.{n}.{t}"] for n in ("fc4", "fc5") for t in ("weight", "bias")]
        fc6 = [self.params["fc.fc6.weight"], self.params["fc.fc6.bias"]]
        self.optimizer = torch.optim.SGD(
            [{"params": fc, "lr": o.lr_update}, {"params": fc6, "lr": o.lr_update * o.fc6_lr_mult}],
            lr=o.lr_update, momentum=o.momentum, weight_decay=o.weight_decay)

    def _memory_samples(self, box: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        o = self.opts
        pos = sample_iou(self.rng, _sampler(o.update_pos_sampler), box, self._size, o.update_pos,
                         (o.update_pos_iou, 1.0))
        neg = sample_iou(self.rng, _sampler(o.update_neg_sampler), box, self._size, o.update_neg,
                         (0.0, o.update_neg_iou))
        return pos, neg

    # ------------------------------------------------------------------ online training
    def _train(self, pos: torch.Tensor, neg: torch.Tensor, iters: int,
               lr: Optional[float] = None) -> None:
        """``iters`` SGD iterations on fc4-6: ``batch_pos`` positives and ``batch_neg`` hard
        negatives (highest positive score among ``batch_neg_pool``) per iteration."""
        o = self.opts
        if pos is None or neg is None or not len(pos) or not len(neg) or iters <= 0:
            return
        if lr is not None:
            for g, mult in zip(self.optimizer.param_groups, (1.0, o.fc6_lr_mult)):
                g["lr"] = lr * mult
        g = torch.Generator().manual_seed(int(self.rng.integers(2 ** 31)))
        pool = min(max(o.batch_neg, o.batch_neg_pool), len(neg))
        # shuffled once; each iteration takes the next contiguous slice (cycling, like MDNet)
        # shuffled once (one gather), then consecutive slices are views: MDNet's cycling order
        # (a CPU generator: the same order on every device)
        pos = pos[torch.randperm(len(pos), generator=g).to(pos.device)]
        neg = neg[torch.randperm(len(neg), generator=g).to(neg.device)]
        labels = torch.cat([torch.ones(o.batch_pos, device=pos.device),
                            torch.zeros(min(o.batch_neg, pool), device=pos.device)]).long()
        params = [p for grp in self.optimizer.param_groups for p in grp["params"]]
        for it in range(iters):
            pb = _rows(pos, it * o.batch_pos, o.batch_pos)
            nb = _rows(neg, it * pool, pool)
            if pool > o.batch_neg:
                with torch.no_grad():
                    score = fc_forward(self.params, nb)[:, 1]
                nb = nb[score.topk(o.batch_neg).indices]
            loss = binary_loss(fc_forward(self.params, torch.cat([pb, nb], 0)), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if o.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
            self.optimizer.step()
        if lr is not None:
            for g, mult in zip(self.optimizer.param_groups, (1.0, o.fc6_lr_mult)):
                g["lr"] = o.lr_update * mult

    # ------------------------------------------------------------------ later frames
    def update(self, image: Any) -> np.ndarray:
        self._next(image)
        o = self.opts
        self._rgb = to_rgb(image)
        H, W = self._rgb.shape[:2]
        self._size = (W, H)
        self.frame += 1
        t = self.frame
        prev = self.box
        trans, n = ((max(self.trans, o.redetect_trans), o.redetect_candidates) if self.searching
                    else (self.trans, o.n_candidates))
        cands = _sampler(("gaussian", trans, o.cand_scale, 1.0))(self.rng, prev, self._size, n)
        # the search region also holds the crops of this frame's memory samples
        frame = self.extractor.frame(self.params, self._rgb, np.concatenate([cands, _reach(prev, o)], 0),
                                     prev, o.max_region)
        feats = frame.pool(cands).flatten(1)
        with torch.no_grad():
            scores = fc_forward(self.params, feats)[:, 1]
        top = scores.topk(o.top_k).indices
        score = float(scores[top].mean())
        success = score > o.success_threshold
        self.score = score
        # re-detection: a lost frame teaches the model nothing (no memory, no update) and widens
        # the next frame's search; off, the flag is only reported
        hold = o.redetect and self.lost
        self.searching = hold
        if success:
            new = cands[top.cpu().numpy()].mean(0)
            self.box = clip_to_image(new, W, H, min_size=MIN_BOX)
            self.trans = o.cand_trans
            out = self.box
            if o.bbreg and self.regressor.fitted:
                top_boxes = cands[top.cpu().numpy()]
                reg = self.regressor.predict(feats[top].cpu().numpy(), top_boxes).mean(0)
                out = clip_to_image(reg, W, H, min_size=MIN_BOX)
            if not hold:
                mpos, mneg = self._memory_samples(self.box)
                self.pos_mem.add(t, frame.pool(mpos).flatten(1))
                self.neg_mem.add(t, frame.pool(mneg).flatten(1))
                self.pos_mem.trim(t, o.pos_frames_long)
                self.neg_mem.trim(t, o.neg_frames)
        else:
            self.trans = min(o.cand_trans_limit, self.trans * o.cand_trans_expand)
            out = self.box
        if not success and not hold:
            self._train(self.pos_mem.recent(t, o.pos_frames_short), self.neg_mem.recent(t, o.neg_frames),
                        o.update_iters)
        elif success and not hold and o.long_interval and t % o.long_interval == 0:
            self._train(self.pos_mem.recent(t, o.pos_frames_long), self.neg_mem.recent(t, o.neg_frames),
                        o.update_iters)
        self._rgb = None
        return np.asarray(out, dtype=float).copy()


def _rows(x: torch.Tensor, start: int, n: int) -> torch.Tensor:
    """``n`` consecutive rows of ``x`` from ``start``, wrapping around (a view when it can)."""
    m = len(x)
    start %= m
    if start + n <= m:
        return x[start:start + n]
    return x[torch.arange(start, start + n, device=x.device) % m]


def _reach(box: np.ndarray, o: SDNetOptions) -> np.ndarray:
    """Two boxes bounding this frame's memory samples (for the search region's extent)."""
    kind, trans, scale, *rest = o.update_neg_sampler
    s = box[2:].mean() * float(trans)
    big = box[2:] * float(scale) * (float(rest[0]) if rest else 1.0)
    c = box[:2] + box[2:] / 2
    return np.array([[c[0] - s - big[0] / 2, c[1] - s - big[1] / 2, big[0], big[1]],
                     [c[0] + s - big[0] / 2, c[1] + s - big[1] / 2, big[0], big[1]]])


class MDNetTracker(MetaSDNetTracker):
    """The MDNet baseline: the same network started by ``finetune_iters`` iterations of ordinary
    fine-tuning of fc4-6 at frame 1 instead of the meta-SGD step. Without ``mdnet.pt`` it starts
    from ``metasdnet.pt`` (the same network; only the frame-1 start differs)."""

    weights_fallback = ("metasdnet",)

    def __init__(self, name: str = "mdnet", **kwargs: Any) -> None:
        kwargs.setdefault("init", "finetune")
        super().__init__(name=name, **kwargs)
