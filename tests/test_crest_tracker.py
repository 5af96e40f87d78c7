"""The MetaCREST tracker (tracker/crest): backbone and window geometry, crops, the scale search,
template resizing and the frame-1 meta step (with L2F), weights files, tracking a moving textured
patch, bad input and registration. Tiny untrained backbones throughout (seconds in all)."""
from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import tracker
from foundation.boxes import iou
from foundation.errors import UserError
from foundation.images import to_rgb
from meta_learning import MetaConfig, MetaLearner
from meta_learning.l2f import Attenuator, L2FSettings, task_embedding
from otb_eval.testing import patch_sequence
from tracker.crest import dcf
from tracker.crest.backbone import Backbone
from tracker.crest.features import FeatureConfig, init_params as vgg_init_params
from tracker.crest.online import CRESTTracker, MetaCRESTTracker
from tracker.crest.weights import CRESTWeights, load_crest_weights, save_crest_weights
from tracker.crest.window import WindowGeometry, crop_windows
from tracker.sdnet.model import MEAN_PIXEL, ModelConfig, conv_forward, init_params as sdnet_init_params
from tracker.sdnet.weights import save_weights, untrained_weights

# A CPU-cheap configuration that tracks patch_sequence's 28 x 24 patch with the tiny random
# backbone. A tiny MetaSDNet conv3 cell sees 75 px, so at the target's own size (28 px) every cell
# is mostly the static background and nothing tracks; min_target_px=52 upsamples the target so its
# cells see mostly the target. window_factor 3, 8 reduced channels and 50 Adam iterations keep the
# correlation filter (11 x 13 cells) cheap.
FAST = dict(min_target_px=52.0, window_factor=3.0, reduced=8, init_iters=50, init_lr=3e-3)
REDUCED = 8
TINY_VGG = (4, 4, 8, 8)


pytestmark = pytest.mark.usefixtures("one_thread")


def _sdnet_backbone(seed: int = 0) -> Backbone:
    cfg = ModelConfig.tiny()
    params = sdnet_init_params(cfg, seed)
    return Backbone("sdnet", {k: v for k, v in params.items() if k.startswith("features.")}, cfg.to_dict())


def _vgg_backbone(seed: int = 0) -> Backbone:
    params = vgg_init_params(FeatureConfig(TINY_VGG), torch.Generator().manual_seed(seed))
    return Backbone("vgg16", params, {"channels": list(TINY_VGG)})


def _backbone(kind: str) -> Backbone:
    return _sdnet_backbone() if kind == "sdnet" else _vgg_backbone()


def _weights(bb: Backbone, template=(9, 9), alpha=None, **kw) -> CRESTWeights:
    """An untrained start (seeded) with a ``template``-sized filter; ``alpha``: a constant per
    tensor (a dict) or one constant for all, or None (no meta step)."""
    start = dcf.init_params(bb.out_channels, template, REDUCED, generator=torch.Generator().manual_seed(3))
    rates = None
    if alpha is not None:
        value = alpha if isinstance(alpha, dict) else {k: alpha for k in start}
        rates = {k: torch.full_like(v, float(value[k])) for k, v in start.items()}
    kw.setdefault("trained", False)            # the tracker calibrates feature_scale on frame 1
    if kw.get("attenuator") is not None:       # the attenuator _attenuator makes
        kw.setdefault("l2f", L2FSettings(mode="identity", input="mean"))
    return CRESTWeights(backbone=bb, params=start, alpha=rates, **kw)


def _crest(bb: Backbone = None, **opts) -> CRESTTracker:
    """The crest baseline (init='train': Adam from a seeded random filter) in the FAST setting."""
    return CRESTTracker(weights=_weights(bb or _sdnet_backbone()), **{**FAST, **opts})


def _run(trk, frames, gt) -> np.ndarray:
    out = [gt[0]]
    trk.init(frames[0], gt[0])
    for f in frames[1:]:
        out.append(trk.update(f))
    return iou(np.array(out), gt)


def _features(trk: MetaCRESTTracker, image) -> torch.Tensor:
    """Frame-1 features recomputed from the public pieces (crop, backbone, Hann window)."""
    g = trk.geometry
    patches = crop_windows(to_rgb(image), trk.centre, [g.frame_side(trk.size)], g.window, g.border)
    return trk.backbone(patches) * dcf.hann2d(g.map_size, g.map_size)


# ---------------------------------------------------------------------------- backbone geometry
def test_sdnet_dense4_subsamples_to_the_plain_conv() -> None:
    bb = _sdnet_backbone()
    img = np.random.default_rng(0).integers(0, 256, (1, 131, 131, 3), dtype=np.uint8)
    dense = bb(img)
    x = torch.from_numpy(img).permute(0, 3, 1, 2).float() - MEAN_PIXEL
    plain = conv_forward(bb.params, x, ModelConfig.tiny())
    m = plain.shape[-1]
    assert m >= 3 and dense.shape[-1] >= 4 * (m - 1) + 1
    assert torch.allclose(dense[..., ::4, ::4][..., :m, :m], plain, atol=1e-4)
    assert not torch.allclose(dense[..., 1::4, 1::4][..., :m - 1, :m - 1], plain[..., :m - 1, :m - 1], atol=1e-2)


@pytest.mark.parametrize("kind", ["sdnet", "vgg16"])
def test_map_size_is_the_output_size(kind: str) -> None:
    bb = _backbone(kind)
    rng = np.random.default_rng(1)
    for window in (33, 57, 64, 101, 141):
        q = window + 2 * bb.border
        out = bb(rng.integers(0, 256, (1, q, q, 3), dtype=np.uint8))
        assert out.shape == (1, bb.out_channels, bb.map_size(window), bb.map_size(window)), window


@pytest.mark.parametrize("kind,half_rf", [("sdnet", 37.0), ("vgg16", 31.5)])
def test_cell_centre_is_the_receptive_field_centre(kind: str, half_rf: float) -> None:
    """Inverting one pixel column at window pixel u changes exactly the cells whose receptive field
    (``cell_centre(i) +- half_rf``; MetaSDNet conv1-3 sees 75 px, VGG conv1_1-conv4_3 64 px) holds
    u. Four consecutive u pin the offset to the pixel, not just to the cell."""
    bb = _backbone(kind)
    window = 121
    q = window + 2 * bb.border
    base = np.random.default_rng(2).integers(0, 256, (q, q, 3), dtype=np.uint8)
    f0 = bb(base[None])[0]
    n = f0.shape[-1]
    assert n == bb.map_size(window)
    centres = np.array([bb.cell_centre(i) for i in range(n)])
    assert np.allclose(np.diff(centres), bb.stride)
    for u in (52, 53, 54, 55, 61, 70):
        img = base.copy()
        img[:, u + bb.border] = 255 - img[:, u + bb.border]
        change = (bb(img[None])[0] - f0).abs().sum(dim=(0, 1)).numpy()
        changed = np.flatnonzero(change > 1e-3 * change.max())
        expected = np.flatnonzero(np.abs(centres - u) <= half_rf)
        assert np.array_equal(changed, expected), (u, changed, expected)


def test_calibrate_and_feature_scale() -> None:
    bb = _sdnet_backbone()
    patches = np.random.default_rng(3).integers(0, 256, (2, 120, 120, 3), dtype=np.uint8)
    raw = bb(patches)
    scale = bb.calibrate(patches)
    assert scale == bb.feature_scale and scale > 0
    out = bb(patches)
    assert float(out.pow(2).mean().sqrt()) == pytest.approx(1.0, rel=1e-4)
    assert torch.allclose(out, raw * scale, rtol=1e-5, atol=1e-7)
    again = Backbone.from_state(bb.state())
    assert again.feature_scale == scale and torch.equal(again(patches), out)


def test_from_sdnet_takes_the_conv_layers() -> None:
    w = untrained_weights(ModelConfig.tiny())
    bb = Backbone.from_sdnet(w)                                    # default: up to conv2
    assert bb.kind == "sdnet" and bb.out_channels == ModelConfig.tiny().channels[1]
    assert bb.params and all(k.startswith("features.") for k in bb.params)
    deep = Backbone.from_sdnet(w, "conv3")
    assert deep.out_channels == ModelConfig.tiny().channels[2] and deep.border > bb.border
    patches = np.random.default_rng(0).integers(0, 256, (1, 101, 101, 3), dtype=np.uint8)
    for b in (bb, deep):
        assert b(patches).shape[1:] == (b.out_channels, b.map_size(101 - 2 * b.border),
                                        b.map_size(101 - 2 * b.border))
    with pytest.raises(UserError, match="layer"):
        Backbone("sdnet", dict(w.params), {**ModelConfig.tiny().to_dict(), "layer": "fc4"})
    with pytest.raises(UserError, match="kind"):
        Backbone("resnet", {})


# ---------------------------------------------------------------------------- crops
def test_crop_at_unit_scale_is_the_image_slice() -> None:
    img = np.random.default_rng(4).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    # window 21 centred on frame coordinate (50.5, 40.5): the centre pixel is image pixel (40, 50)
    crops = crop_windows(img, (50.5, 40.5), [21.0, 21.0], 21)
    assert crops.shape == (2, 21, 21, 3) and crops.dtype == np.uint8
    assert np.array_equal(crops[0], img[30:51, 40:61]) and np.array_equal(crops[1], crops[0])
    bordered = crop_windows(img, (50.5, 40.5), [21.0], 21, border=3)
    assert bordered.shape == (1, 27, 27, 3)
    assert np.array_equal(bordered[0], img[27:54, 37:64])
    # a marker lands on the window pixel the coordinates predict
    marked = img.copy()
    marked[44, 57] = (255, 0, 255)
    crop = crop_windows(marked, (50.5, 40.5), [21.0], 21)[0]
    assert crop[44 - 30, 57 - 40].tolist() == [255, 0, 255]


@pytest.mark.parametrize("k,border", [(0.5, 0), (1.7, 2), (2.0, 5)])
def test_crop_scale_and_centre_on_a_ramp(k: float, border: int) -> None:
    """A linear ramp (value = our frame coordinate of the pixel centre) survives bilinear
    resampling exactly, so every window pixel's value is the frame coordinate it samples:
    ``centre + (u - border - (window - 1) / 2) * frame_side / window``."""
    H, W, window = 160, 200, 31
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([xs + 0.5, ys + 0.5, np.ones_like(xs)], axis=-1)
    centre = (97.3, 81.6)
    crop = crop_windows(img, centre, [window * k], window, border)[0]
    q = window + 2 * border
    assert crop.shape == (q, q, 3)
    coords = np.arange(q) - border - (window - 1) / 2.0
    ex, ey = centre[0] + coords * k, centre[1] + coords * k
    assert 0.5 < ex.min() and ex.max() < W - 0.5 and 0.5 < ey.min() and ey.max() < H - 0.5
    assert np.allclose(crop[..., 0], ex[None, :], atol=1e-3)
    assert np.allclose(crop[..., 1], ey[:, None], atol=1e-3)


def test_crop_repeats_the_edge_outside_the_frame() -> None:
    img = np.random.default_rng(5).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    crop = crop_windows(img, (0.5, 0.5), [5.0], 5)[0]        # centred on pixel (0, 0)
    rows = np.clip(np.arange(5) - 2, 0, None)
    assert np.array_equal(crop, img[rows][:, rows])


def test_frame_side_puts_the_target_at_target_px() -> None:
    """A white 60 x 30 box (larger than max_target_px = 40) fills target_hw_px of the window."""
    img = np.zeros((160, 200, 3), np.uint8)
    img[30:60, 40:100] = 255                                  # x 40..100, y 30..60
    g = WindowGeometry.for_box((60, 30), _sdnet_backbone(), window_factor=3.0, max_target_px=40.0)
    assert g.target_px == 40.0 and g.target_hw_px == pytest.approx((20.0, 40.0))
    assert g.frame_side((60, 30)) == pytest.approx(g.window * 60 / 40)
    crop = crop_windows(img, (70.0, 45.0), [g.frame_side((60, 30))], g.window)[0, ..., 0]
    c = (g.window - 1) // 2
    assert abs(int((crop[c] > 127).sum()) - 40) <= 1
    assert abs(int((crop[:, c] > 127).sum()) - 20) <= 1
    cols = np.flatnonzero(crop[c] > 127)
    assert abs((cols[0] + cols[-1]) / 2 - c) <= 0.5


# ---------------------------------------------------------------------------- window geometry
@pytest.mark.parametrize("kind", ["sdnet", "vgg16"])
def test_label_peaks_where_the_offset_says(kind: str) -> None:
    bb = _backbone(kind)
    g = WindowGeometry.for_box((28, 24), bb)
    n = g.map_size
    assert n == bb.map_size(g.window) and g.cell0 == bb.cell_centre(0) and g.window % 2 == 1
    c = (g.window - 1) / 2.0
    for a, b in ((0, 0), (3, -2), (-5, 4), (1, 7)):
        iy, ix = n // 2 + a, n // 2 + b                        # a cell; its offset from the centre:
        offset = (bb.cell_centre(iy) - c, bb.cell_centre(ix) - c)
        lab = g.label(offset)
        assert lab.shape == (n, n)
        assert divmod(int(torch.argmax(lab)), n) == (iy, ix) and float(lab.max()) == pytest.approx(1.0)
        assert g.peak_offset_px(a, b) == pytest.approx(offset)
        assert g.peak_offset_px(*dcf.response_peak(lab)) == pytest.approx(offset)
    for offset in ((5.3, -7.9), (-13.0, 2.2), (0.0, 0.0), (9.6, 9.6)):    # between cells
        coarse = g.peak_offset_px(*dcf.response_peak(g.label(offset)))
        fine = g.peak_offset_px(*dcf.response_peak(g.label(offset), subcell=True))
        assert np.abs(np.subtract(coarse, offset)).max() <= g.stride / 2 + 1e-6, (offset, coarse)
        assert np.abs(np.subtract(fine, offset)).max() <= np.abs(np.subtract(coarse, offset)).max() + 1e-6


def test_kernel_is_odd_and_about_the_target() -> None:
    bb = _sdnet_backbone()
    for box in ((28, 24), (10, 40), (64, 64), (100, 33), (7, 5)):
        g = WindowGeometry.for_box(box, bb)
        kh, kw = g.kernel
        assert kh % 2 == 1 and kw % 2 == 1
        th, tw = g.target_cells
        assert (th, tw) == pytest.approx((box[1] / 4, box[0] / 4))
        # rounded (<= 0.5 off), then bumped up to odd (+1 at most)
        assert abs(kh - th) <= 1.5 and abs(kw - tw) <= 1.5, (box, g.kernel)


def test_targets_are_normalised() -> None:
    bb = _sdnet_backbone()
    big = WindowGeometry.for_box((300, 150), bb, window_factor=5.0, max_target_px=100.0)
    assert big.target_px == 100.0 and big.target_hw_px == pytest.approx((50.0, 100.0))
    assert big.window == 501 and big.frame_side((300, 150)) == pytest.approx(1503.0)
    assert big.frame_side((330, 100)) == pytest.approx(1.1 * 1503.0)     # follows the larger side
    small = WindowGeometry.for_box((10, 8), bb, min_target_px=40.0)
    assert small.target_px == 40.0 and small.target_hw_px == pytest.approx((32.0, 40.0))
    assert small.frame_side((10, 8)) == pytest.approx(small.window / 4.0)
    same = WindowGeometry.for_box((60, 45), bb)
    assert same.target_px == 60.0 and same.target_hw_px == (45.0, 60.0) and same.window == 301
    assert same.frame_side((60, 45)) == pytest.approx(301.0)


# ---------------------------------------------------------------------------- scale search
def _zoom(img: np.ndarray, centre_xy, s: float) -> np.ndarray:
    """The whole image magnified by ``s`` about ``centre_xy`` (our coordinates: OpenCV's pixel i
    is centred at our i + 0.5)."""
    qx, qy = centre_xy[0] - 0.5, centre_xy[1] - 0.5
    m = np.array([[s, 0.0, (1 - s) * qx], [0.0, s, (1 - s) * qy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def _scale_setup():
    frames, gt = patch_sequence(n=1, seed=0)
    return frames[0], gt[0]


def _scale_tracker(image, box) -> CRESTTracker:
    trk = _crest(scale_smoothing=1.0)
    trk.init(image, box)
    return trk


def _recovered_scales(trk, image, box) -> dict:
    centre = box[:2] + box[2:] / 2
    out = {}
    for s in (1.05, 0.95):
        t = copy.deepcopy(trk)
        t.update(_zoom(image, centre, s))
        assert t.last_peak >= t.opts.min_peak
        assert np.abs(t.centre - centre).max() < 1.5           # zoomed about the centre: no motion
        out[s] = t.size / box[2:]
    return out


def test_scale_search_recovers_a_scale_change(_scale_setup) -> None:
    image, box = _scale_setup
    trk = _scale_tracker(image, box)
    unchanged = copy.deepcopy(trk)
    unchanged.update(image)
    assert np.array_equal(unchanged.size, box[2:])
    for s, ratio in _recovered_scales(trk, image, box).items():
        assert ratio == pytest.approx([s, s]), (s, ratio)


# ---------------------------------------------------------------------------- frame-1 meta step
ALPHA = {"conv1.weight": 1e-5, "conv1.bias": 1e-5, "cf.weight": 1e-4, "cf.bias": 1e-5}   # small enough to descend



def _expected_step(start, rates, kernel, feats, label, gamma=None):
    """One Meta-SGD step from the resized start (attenuated by gamma first), by hand."""
    p, a = dcf.sized_start(start, rates, kernel)
    if gamma is not None:
        p = {k: v * gamma[k] for k, v in p.items()}
    p = {k: v.detach().clone().requires_grad_(True) for k, v in p.items()}
    loss = dcf.response_loss(p, (feats, label[None]))
    grads = torch.autograd.grad(loss, list(p.values()))
    return {k: (v - a[k] * g).detach() for (k, v), g in zip(p.items(), grads)}, float(loss.detach())


def test_meta_step_resizes_the_template_and_its_rates() -> None:
    frames, gt = patch_sequence(n=3, seed=1)
    w = _weights(_sdnet_backbone(), template=(9, 9), alpha=ALPHA)
    trk = MetaCRESTTracker("metacrest", weights=w, **FAST)
    assert trk.opts.init == "meta"
    trk.init(frames[0], gt[0])
    g = trk.geometry
    assert g.kernel != (9, 9)
    start, rates = dcf.sized_start(w.params, w.alpha, g.kernel)
    assert start["cf.weight"].shape == rates["cf.weight"].shape == (1, REDUCED, *g.kernel)
    assert trk.params["cf.weight"].shape == (1, REDUCED, *g.kernel)
    for k in ("conv1.weight", "conv1.bias", "cf.bias"):
        assert trk.params[k].shape == w.params[k].shape
    assert trk.gamma is None
    feats = _features(trk, frames[0])
    label = g.label()
    expected, loss_before = _expected_step(w.params, w.alpha, g.kernel, feats, label)
    for k, v in expected.items():
        assert torch.allclose(trk.params[k].detach(), v, rtol=1e-4, atol=1e-6), k
    assert float(dcf.response_loss(trk.params, (feats, label[None])).detach()) < 0.5 * loss_before
    box = trk.update(frames[1])
    assert box.shape == (4,) and np.all(np.isfinite(box))


def test_head_start_keeps_the_meta_learned_reduction_and_trains_the_filter() -> None:
    """init="head": the start's 1x1 reduction is kept (frame 1 and every online update), the filter
    starts from CREST's seeded random start and is trained; without weights' rates it still runs."""
    frames, gt = patch_sequence(n=6, seed=0)
    w = _weights(_sdnet_backbone(), template=(9, 9), alpha=ALPHA)
    trk = MetaCRESTTracker("metacrest", weights=w, init="head", update_every=2, update_lr=1e-2,
                           **{**FAST, "init_iters": 30})
    trk.init(frames[0], gt[0])
    for k in ("conv1.weight", "conv1.bias"):
        assert torch.equal(trk.params[k].detach(), w.params[k]) and not trk.params[k].requires_grad
    crest = _crest(init_iters=0, reduced=w.params["conv1.weight"].shape[0])   # the untrained seeded start
    crest.init(frames[0], gt[0])
    assert trk.params["cf.weight"].shape == crest.params["cf.weight"].shape
    assert not torch.equal(trk.params["cf.weight"].detach(), crest.params["cf.weight"].detach())
    feats, label = _features(trk, frames[0]), trk.geometry.label()[None]
    untrained = {**crest.params, "conv1.weight": w.params["conv1.weight"], "conv1.bias": w.params["conv1.bias"]}
    assert (float(dcf.response_loss(trk.params, (feats, label)).detach())
            < 0.5 * float(dcf.response_loss(untrained, (feats, label)).detach()))
    for f in frames[1:5]:
        trk.update(f)
    assert all(torch.equal(trk.params[k].detach(), w.params[k]) for k in ("conv1.weight", "conv1.bias"))
    no_rates = _weights(_sdnet_backbone(), template=(9, 9), alpha=None)
    MetaCRESTTracker("metacrest", weights=no_rates, init="head", **FAST).init(frames[0], gt[0])


def _attenuator(w: CRESTWeights, scale: float) -> dict:
    cfg = MetaConfig(l2f=L2FSettings(mode="identity", input="mean"), lr_mode="elementwise", learn_lr=False, adapt="all")
    learner = MetaLearner(dcf.TargetModel(w.params), cfg)
    state = {k: v.clone() for k, v in learner.attenuator.state_dict().items()}
    state["scale"] = torch.tensor(scale)
    return state


def test_l2f_attenuates_the_start_before_the_step() -> None:
    frames, gt = patch_sequence(n=2, seed=2)
    bb = _sdnet_backbone()
    plain = MetaCRESTTracker("metacrest", weights=_weights(bb, alpha=ALPHA), **FAST)
    plain.init(frames[0], gt[0])
    base = _weights(bb, alpha=ALPHA)
    # identity mode with scale 0: gamma = 1 exactly, the same step as without L2F
    neutral = MetaCRESTTracker("metacrest-l2f", **FAST,
                               weights=_weights(bb, alpha=ALPHA, attenuator=_attenuator(base, 0.0)))
    neutral.init(frames[0], gt[0])
    assert neutral.gamma == {k: 1.0 for k in dcf.PARAM_NAMES}
    for k in dcf.PARAM_NAMES:
        assert torch.allclose(neutral.params[k], plain.params[k], atol=1e-7), k
    # scale 0.5: gamma = 1 - 0.5 sigmoid(g_phi(embedding)) in (0.5, 1) per tensor
    att = _attenuator(base, 0.5)
    l2f = MetaCRESTTracker("metacrest-l2f", weights=_weights(bb, alpha=ALPHA, attenuator=att), **FAST)
    l2f.init(frames[0], gt[0])
    assert set(l2f.gamma) == set(dcf.PARAM_NAMES)
    assert all(0.5 <= v < 1.0 for v in l2f.gamma.values()), l2f.gamma
    g = l2f.geometry
    feats, label = _features(l2f, frames[0]), g.label()
    sized, _ = dcf.sized_start(base.params, base.alpha, g.kernel)
    names = list(dcf.PARAM_NAMES)
    phi = Attenuator(len(names), "identity", 2)
    phi.load_state_dict(att)
    emb = task_embedding(dcf.response_loss, sized, (feats, label[None]), names)
    gamma = dict(zip(names, phi(emb).detach().tolist()))
    assert gamma == pytest.approx(l2f.gamma, rel=1e-4)
    expected, _ = _expected_step(base.params, base.alpha, g.kernel, feats, label, l2f.gamma)
    for k, v in expected.items():
        assert torch.allclose(l2f.params[k].detach(), v, rtol=1e-4, atol=1e-6), k
    for k in ("conv1.weight", "cf.weight"):                     # (the biases start at 0)
        assert not torch.allclose(l2f.params[k], plain.params[k], rtol=1e-3), k


# ---------------------------------------------------------------------------- weights files
def test_crest_weights_round_trip(tmp_path: Path) -> None:
    bb = _sdnet_backbone()
    bb.feature_scale = 0.37
    w = _weights(bb, alpha=ALPHA, trained=True, options={"min_target_px": 52.0, "scales": [1.0, 0.9, 1.1]},
                 metadata={"note": "round trip"})
    w.attenuator = _attenuator(w, 0.25)
    w.l2f = L2FSettings(mode="identity", input="mean", layers=2)
    path = str(tmp_path / "metacrest-test.pt")
    assert save_crest_weights(path, w) == path
    back = load_crest_weights(path)
    assert back.backbone.kind == "sdnet" and back.backbone.config == bb.config
    assert back.backbone.feature_scale == 0.37 and back.backbone.border == bb.border
    assert set(back.backbone.params) == set(bb.params)
    assert all(torch.equal(back.backbone.params[k], bb.params[k]) for k in bb.params)
    for got, want in ((back.params, w.params), (back.alpha, w.alpha), (back.attenuator, w.attenuator)):
        assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert back.l2f == w.l2f and back.trained is True
    assert back.options == w.options and back.metadata["note"] == "round trip" and back.source == path
    # the tracker takes the options the weights were trained with; keywords override them
    trk = MetaCRESTTracker("metacrest", weights=path)
    assert trk.opts.min_target_px == 52.0 and trk.opts.scales == (1.0, 0.9, 1.1)
    assert MetaCRESTTracker("metacrest", weights=path, scales=(1.0,)).opts.scales == (1.0,)
    # a file whose rates do not match the model is refused, naming them
    w.alpha = {**w.alpha, "cf.weight": torch.zeros(1, REDUCED, 3, 3)}
    save_crest_weights(str(tmp_path / "bad.pt"), w)
    with pytest.raises(UserError, match="alpha cf.weight"):
        load_crest_weights(str(tmp_path / "bad.pt"))
    with pytest.raises(UserError, match="alpha cf.weight"):
        MetaCRESTTracker("metacrest", weights=str(tmp_path / "bad.pt"))


def test_official_checkpoint_needs_its_backbone(tmp_path: Path) -> None:
    bb = _vgg_backbone()
    g = torch.Generator().manual_seed(7)
    init = {"conv1.weight": torch.randn(REDUCED, bb.out_channels, 1, 1, generator=g),
            "conv1.bias": torch.randn(REDUCED, generator=g),
            "cf.weight": torch.randn(1, REDUCED, 5, 5, generator=g) * 1e-2, "cf.bias": torch.zeros(1)}
    alpha = {k: torch.full_like(v, 1e-4) for k, v in init.items()}
    path = tmp_path / "meta_crest.pth"
    torch.save({"meta_init": init, "meta_alpha": alpha}, path)
    w = load_crest_weights(str(path), backbone=bb)
    assert w.backbone is bb and w.attenuator is None and w.metadata["format"] == "official"
    assert all(torch.equal(w.params[k], init[k]) and torch.equal(w.alpha[k], alpha[k]) for k in init)
    with pytest.raises(UserError, match="official MetaCREST checkpoint"):
        load_crest_weights(str(path))
    with pytest.raises(UserError, match="conv1.weight"):
        load_crest_weights(str(path), backbone=_sdnet_backbone())          # 32 channels, not 8
    # it tracks on the VGG-kind backbone, its 5 x 5 template resized to the target's kernel
    frames, gt = patch_sequence(n=2, seed=0)
    trk = MetaCRESTTracker("metacrest", weights=str(path), backbone=bb, **FAST)
    trk.init(frames[0], gt[0])
    assert trk.backbone is bb and trk.params["cf.weight"].shape == (1, REDUCED, *trk.geometry.kernel)
    assert np.all(np.isfinite(trk.update(frames[1])))


def test_metasdnet_weights_are_not_metacrest_weights(tmp_path: Path) -> None:
    path = str(tmp_path / "metasdnet.pt")
    save_weights(path, untrained_weights(ModelConfig.tiny()))
    with pytest.raises(UserError, match="not MetaCREST"):
        load_crest_weights(path)
    with pytest.raises(UserError, match="not MetaCREST"):
        MetaCRESTTracker("metacrest", weights=path)
    with pytest.raises(UserError, match="does not exist"):
        load_crest_weights(str(tmp_path / "missing.pt"))


# ---------------------------------------------------------------------------- tracking
@pytest.mark.parametrize("seed", [0, 1])
def test_crest_follows_a_textured_patch(seed: int) -> None:
    frames, gt = patch_sequence(n=20, seed=seed)
    identity = iou(np.repeat(gt[:1], len(gt), 0), gt)
    o = _run(_crest(residual=False), frames, gt)
    # the path depends on the CPU's float rounding by a few pixels (on one machine the last frame
    # came out at IoU 0.49, on another above 0.5): following means a high mean and no frame lost
    assert o.mean() >= 0.7 and o.min() >= 0.4, np.round(o, 2)
    assert o.mean() > identity.mean() + 0.3, (o.mean(), identity.mean())
    with_residual = _run(_crest(residual=True), frames, gt)
    assert with_residual.mean() > identity.mean() + 0.3, (with_residual.mean(), identity.mean())


def test_residual_branches_spatial_kept_temporal_updated() -> None:
    """CREST's residuals: the spatial branch is learned at frame 1 and then kept, the temporal one
    starts as its copy and moves with the online updates; without them the keys are absent."""
    frames, gt = patch_sequence(n=6, seed=0)
    plain = _crest(residual=False)
    plain.init(frames[0], gt[0])
    assert not any(k.startswith("res_") for k in plain.params)
    trk = _crest(residual=True, update_every=2, update_lr=1e-2)
    trk.init(frames[0], gt[0])
    spatial = {k: v.detach().clone() for k, v in trk.params.items() if k.startswith("res_s.")}
    assert len(spatial) == 4 and float(spatial["res_s.conv2.weight"].abs().sum()) > 0   # it was trained
    for k, v in spatial.items():
        assert torch.equal(trk.params["res_t." + k[len("res_s."):]].detach(), v)
    for f in frames[1:5]:
        trk.update(f)
    assert all(torch.equal(trk.params[k].detach(), v) for k, v in spatial.items())
    assert not torch.equal(trk.params["res_t.conv2.weight"].detach(), spatial["res_s.conv2.weight"])
    # the response is the base filter's plus both branches'
    feats = torch.randn(1, trk.backbone.out_channels, 9, 9)
    base = {k: v for k, v in trk.params.items() if not k.startswith("res_")}
    with torch.no_grad():
        total = dcf.forward(trk.params, feats)
        parts = dcf.forward(base, feats) + sum(dcf.residual_forward(trk.params, b, feats)
                                              for b in dcf.RESIDUAL_BRANCHES)
    assert torch.allclose(total, parts, atol=1e-6)


# ---------------------------------------------------------------------------- bad input
def test_bad_boxes_and_options() -> None:
    img = np.zeros((120, 160, 3), np.uint8)
    trk = _crest()
    with pytest.raises(UserError, match="outside"):
        trk.init(img, (200, 10, 30, 30))
    with pytest.raises(UserError, match="smaller than"):
        trk.init(img, (10, 10, 3, 30))
    with pytest.raises(UserError, match="4 numbers"):
        trk.init(img, (10, 10, 30))
    with pytest.raises(UserError, match="too small for the backbone"):
        MetaCRESTTracker("crest", weights=_weights(_sdnet_backbone()), init="train",
                         window_factor=1.2).init(img, (10, 10, 4, 4))
    w = _weights(_sdnet_backbone(), alpha=1e-3)
    with pytest.raises(UserError, match="unknown option.*no_such_option"):
        MetaCRESTTracker("metacrest", weights=w, no_such_option=1)
    for bad in (dict(window_factor=0.5), dict(scale_smoothing=1.5), dict(init="adam"), dict(scales=())):
        with pytest.raises(UserError):
            MetaCRESTTracker("metacrest", weights=w, **bad)
    with pytest.raises(UserError, match="alpha"):
        MetaCRESTTracker("metacrest", weights=_weights(_sdnet_backbone()))       # no rates: no meta step


# ---------------------------------------------------------------------------- registration
def test_registered_names_build_the_right_classes() -> None:
    w = _weights(_sdnet_backbone(), alpha=1e-3)
    crest = tracker.api.make("crest", weights=w)
    assert type(crest) is CRESTTracker and crest.name == "crest" and crest.opts.init == "train"
    meta = tracker.api.make("metacrest", weights=w)
    assert type(meta) is MetaCRESTTracker and meta.name == "metacrest" and meta.opts.init == "meta"
    assert meta.weights is w and meta.backbone is w.backbone
    for name in ("metacrest-l2f", "metacrest-dropgrad", "metacrest-l2f-dropgrad"):
        t = tracker.make(name, weights=w)
        assert type(t) is MetaCRESTTracker and t.name == name
    assert tracker.make("crest", weights=w, init_iters=7).opts.init_iters == 7


def test_shipped_metacrest_follows_a_moving_textured_patch() -> None:
    """The shipped meta-learned start (one meta-SGD step at frame 1, then online updates) follows
    a patch on same-statistics texture, which a tracker that never learns loses at once."""
    import tracker
    from foundation.boxes import iou
    from tracker.weights import find_weights

    if find_weights("metacrest") is None:
        pytest.skip("no shipped weights/metacrest.pt")
    means, still = [], []
    for seed in (0, 1, 2):
        frames, gt = patch_sequence(n=40, seed=seed)
        trk = tracker.make("metacrest")
        trk.init(frames[0], gt[0])
        boxes = np.array([gt[0]] + [trk.update(f) for f in frames[1:]])
        means.append(float(iou(boxes, gt).mean()))
        still.append(float(iou(np.repeat(gt[:1], len(gt), 0), gt).mean()))
    assert np.mean(means) > np.mean(still) + 0.25, (means, still)
