"""The MetaSDNet network, RoIAlign against exact crops, the frame-1 meta step, box regression."""

import cv2
import numpy as np
import pytest
import torch

from tracker.sdnet import roi_align as R
from tracker.sdnet.bbreg import BBoxRegressor, decode, encode
from tracker.sdnet.model import (
    MetaSDNet,
    ModelConfig,
    binary_loss,
    conv_forward,
    fc_forward,
    init_params,
    lrn,
    param_shapes,
)


def test_vgg_m_shapes_and_official_names():
    cfg = ModelConfig()
    net = MetaSDNet(cfg)
    names = [n for n, _ in net.named_parameters()]
    assert names == list(param_shapes(cfg))
    assert names[0] == "features.conv1.weight" and names[-1] == "fc.fc6.bias"
    shapes = dict((n, tuple(p.shape)) for n, p in net.named_parameters())
    assert shapes["features.conv1.weight"] == (96, 3, 7, 7)
    assert shapes["features.conv3.weight"] == (512, 256, 3, 3)
    assert shapes["fc.fc4.weight"] == (512, 4608) and shapes["fc.fc6.weight"] == (2, 512)
    with torch.no_grad():
        f = net.conv(torch.zeros(2, 3, 107, 107))
        assert f.shape == (2, 512, 3, 3)
        assert net(torch.zeros(2, 3, 107, 107)).shape == (2, 2)
    assert R.grid_cells(cfg) == 3 and cfg.crop_scale == pytest.approx(139 / 107)


def test_lrn_is_matconvnet_vgg_m():
    x = torch.randn(2, 7, 4, 5) * 40
    out = lrn(x)
    ref = torch.empty_like(x)
    for c in range(7):
        s = sum(x[:, j] ** 2 for j in range(max(0, c - 2), min(7, c + 3)))
        ref[:, c] = x[:, c] / (2 + 1e-4 * s) ** 0.75
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # not torch's LocalResponseNorm defaults
    other = torch.nn.LocalResponseNorm(5)(x)
    assert (other - ref).abs().max() > 1


def test_summed_binary_loss():
    logits = torch.tensor([[0.2, 1.0], [2.0, -1.0], [0.0, 0.5]])
    labels = torch.tensor([1, 0, 0])
    ls = torch.log_softmax(logits, 1)
    expected = -(ls[0, 1] + ls[1, 0] + ls[2, 0])
    assert float(binary_loss(logits, labels)) == pytest.approx(float(expected))


def test_init_is_seeded_and_independent_of_global_rng():
    torch.manual_seed(123)
    a = init_params(ModelConfig.tiny(), seed=5)
    torch.manual_seed(999)
    b = init_params(ModelConfig.tiny(), seed=5)
    c = init_params(ModelConfig.tiny(), seed=6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.conv1.weight"], c["features.conv1.weight"])


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 1.5)
    return img


def test_roi_align_equals_exact_crops_on_the_grid(scene):
    """Boxes whose crop is 107 region pixels and starts on a multiple of 16: no interpolation,
    the pooled features are the exact crop's features; off-grid boxes stay close."""
    cfg = ModelConfig.tiny()
    p = init_params(cfg, 0)
    ref = np.array([100.0, 80.0, 60.0, 50.0])
    crop = R.crops_of(ref, cfg)[0]
    sx, sy = 107 / crop[2], 107 / crop[3]
    region = R.make_region(ref, (crop[0] - 48 / sx, crop[1] - 32 / sy, crop[0] + crop[2] + 64 / sx,
                                 crop[1] + crop[3] + 40 / sy), cfg)
    with torch.no_grad():
        feats = conv_forward(p, R.to_tensor(R.warp(scene, region)), cfg)
        on_grid = np.array([ref, ref + [16 / sx, 0, 0, 0], ref + [32 / sx, 16 / sy, 0, 0]])
        off_grid = np.array([ref + [5 / sx, 7 / sy, 0, 0], ref * [1, 1, 1.05, 0.95]])
        boxes = np.concatenate([on_grid, off_grid])
        pooled = R.roi_align(feats, R.roi_grid(boxes, region, cfg))
        exact = conv_forward(p, R.to_tensor(R.crop_boxes(scene, boxes, cfg)), cfg)
    assert pooled.shape == exact.shape == (5, 32, 3, 3)
    scale = float(exact.abs().mean())
    for i in range(3):
        assert float((pooled[i] - exact[i]).abs().max()) < 1e-2 * scale
    for i in range(3, 5):
        corr = np.corrcoef(pooled[i].flatten(), exact[i].flatten())[0, 1]
        assert corr > 0.9
        assert float((pooled[i] - exact[i]).abs().mean()) < 0.3 * scale
    # and not trivially: a box shifted by one cell has different features
    assert float((pooled[0] - pooled[1]).abs().mean()) > 0.1 * scale


def test_dense_roi_align_is_exact_on_the_8_pixel_grid(scene):
    """The dense forward (pool2 stride 1, dilated conv3) is the plain one at even cells, and boxes
    on an 8-region-pixel grid pool their exact crop's features."""
    from tracker.sdnet.model import conv_forward_dense

    cfg = ModelConfig.tiny()
    p = init_params(cfg, 0)
    ref = np.array([100.0, 80.0, 60.0, 50.0])
    region = R.region_for_boxes(ref[None], ref, cfg, margin=40)
    with torch.no_grad():
        x = R.to_tensor(R.warp(scene, region))
        dense, plain = conv_forward_dense(p, x, cfg), conv_forward(p, x, cfg)
        assert dense.shape[2:] == (R.feature_size(region.height, True),
                                   R.feature_size(region.width, True))
        torch.testing.assert_close(dense[..., ::2, ::2], plain)
        u0 = (ref[0] + ref[2] / 2 - 107 / 2 / region.sx - region.ox) * region.sx   # crop start
        v0 = (ref[1] + ref[3] / 2 - 107 / 2 / region.sy - region.oy) * region.sy
        shift = [(8 - u0 % 8) / region.sx, (8 - v0 % 8) / region.sy]             # onto the grid
        boxes = np.array([ref + [shift[0], shift[1], 0, 0],
                          ref + [shift[0] + 8 / region.sx, shift[1] + 24 / region.sy, 0, 0]])
        pooled = R.roi_align(dense, R.roi_grid(boxes, region, cfg, dense=True))
        exact = conv_forward(p, R.to_tensor(R.crop_boxes(scene, boxes, cfg)), cfg)
    assert float((pooled - exact).abs().max()) < 1e-2 * float(exact.abs().mean())


def test_exact_crop_pixels_match_cv2_crop_resize(scene):
    """A crop is the box enlarged by 16/107 per side, resized to 107 x 107 (out-of-image = 128)."""
    cfg = ModelConfig.tiny()
    box = np.array([60.0, 40.0, 107.0 * 107 / 139, 107.0 * 107 / 139])   # crop = 107 px: no resize
    crop = R.crops_of(box, cfg)[0]
    assert crop[2] == pytest.approx(107)
    box = box - [crop[0] - round(crop[0]), crop[1] - round(crop[1]), 0, 0]  # integer crop origin
    out = R.crop_boxes(scene, box[None], cfg)[0]
    x0, y0 = int(round(R.crops_of(box, cfg)[0][0])), int(round(R.crops_of(box, cfg)[0][1]))
    np.testing.assert_array_equal(out, scene[y0:y0 + 107, x0:x0 + 107])
    # a box reaching out of the image: padding is the mean pixel
    edge = R.crop_boxes(scene, np.array([[-30.0, -30.0, 60.0, 60.0]]), cfg)[0]
    assert (edge[:5, :5] == 128).all()
    # a box twice the crop size: a cv2 area resize of the same crop agrees closely
    big = np.array([[40.0, 30.0, 2 * 107 * 107 / 139, 2 * 107 * 107 / 139]])
    c = R.crops_of(big, cfg)[0]
    x0, y0 = int(round(c[0])), int(round(c[1]))
    shift = big - [[c[0] - x0, c[1] - y0, 0, 0]]
    ours = R.crop_boxes(scene, shift, cfg)[0].astype(float)
    theirs = cv2.resize(scene[y0:y0 + 214, x0:x0 + 214], (107, 107),
                        interpolation=cv2.INTER_LINEAR).astype(float)
    assert np.abs(ours - theirs).mean() < 3.0


def test_roi_align_is_differentiable_to_the_conv_layers(scene):
    cfg = ModelConfig.tiny()
    p = {k: v.requires_grad_(True) for k, v in init_params(cfg, 0).items()}
    box = np.array([100.0, 80.0, 40.0, 40.0])
    region = R.region_for_boxes(box[None], box, cfg)
    feats = conv_forward(p, R.to_tensor(R.warp(scene, region)), cfg)
    pooled = R.roi_align(feats, R.roi_grid(box[None], region, cfg))
    fc_forward(p, pooled).sum().backward()
    assert p["features.conv1.weight"].grad.abs().sum() > 0


def test_frame1_step_is_the_engine_meta_sgd_step(scene):
    """theta1 = theta0 - alpha * grad(L_support(theta0)) over ALL layers, element-wise alpha."""
    from tracker.sdnet.online import MetaSDNetTracker
    from tracker.sdnet.weights import untrained_weights

    cfg = ModelConfig.tiny()
    w = untrained_weights(cfg, seed=1)
    g = torch.Generator().manual_seed(0)
    w.alpha = {k: torch.rand(v.shape, generator=g) * 1e-4 for k, v in w.params.items()}
    w.adapted = tuple(w.params)                      # the weights say: every layer adapts
    for mode in ("fast", "exact"):
        trk = MetaSDNetTracker(weights=w, mode=mode, bbreg=False)
        trk.init(scene, [120, 90, 40, 36])
        theta0 = {k: v.clone().requires_grad_(True) for k, v in w.params.items()}
        loss = trk._loss_fn(theta0, trk._batch)
        grads = torch.autograd.grad(loss, list(theta0.values()))
        for (name, t0), gr in zip(theta0.items(), grads):
            expected = t0.detach() - w.alpha[name] * gr
            torch.testing.assert_close(trk.params[name].detach(), expected, rtol=1e-5, atol=1e-8)
            assert not torch.equal(trk.params[name].detach(), t0.detach()), name  # really moved
        # support set: 32 positives and 96 negatives (48 uniform + 48 whole)
        labels = trk._batch[-1]
        assert int(labels.sum()) == 32 and len(labels) == 128


def test_frame1_step_applies_the_l2f_attenuator(scene):
    """With an attenuator in the weights the engine starts from gamma * theta0."""
    from meta_learning import SEED_PAPER_L2F, Attenuator
    from tracker.sdnet.online import MetaSDNetTracker
    from tracker.sdnet.weights import untrained_weights

    cfg = ModelConfig.tiny()
    w = untrained_weights(cfg, seed=1, alpha=0.0)
    att = Attenuator(len(w.params), "sigmoid")
    w.attenuator, w.adapted, w.l2f = att.state_dict(), tuple(w.params), SEED_PAPER_L2F
    trk = MetaSDNetTracker(weights=w, bbreg=False)
    trk.init(scene, [120, 90, 40, 36])
    ratio = trk.params["fc.fc5.weight"].detach() / w.params["fc.fc5.weight"]
    assert 0 < float(ratio.mean()) < 1 and float(ratio.std()) < 1e-4   # one gamma per tensor


def test_box_regression_recovers_a_known_offset():
    rng = np.random.default_rng(0)
    gt = np.array([50.0, 60.0, 40.0, 30.0])
    boxes = np.concatenate([gt + rng.normal(0, 4, (300, 4)) * [1, 1, 0.5, 0.5]])
    t = encode(boxes, gt)
    np.testing.assert_allclose(decode(boxes, t), np.repeat(gt[None], 300, 0), atol=1e-9)
    feats = np.concatenate([t * 100, rng.normal(0, 1, (300, 20))], axis=1)   # informative features
    reg = BBoxRegressor(alpha=1.0).fit(feats, boxes, gt)
    pred = reg.predict(feats, boxes)
    before = np.abs(boxes - gt).mean()
    assert np.abs(pred - gt).mean() < 0.1 * before
    # the dual form (N < D) gives the same answer as the primal
    wide = np.concatenate([feats, np.zeros((300, 400))], axis=1)
    np.testing.assert_allclose(BBoxRegressor(alpha=1.0).fit(wide, boxes, gt).predict(wide, boxes),
                               pred, atol=1e-6)


def test_fc_only_weights_take_the_same_step_without_a_conv_backward(scene):
    """Weights that adapt fc4-6 only (``meta-train --adapt fc``): the engine adapts those, conv
    features are computed once, and the step equals the all-layer step with (practically) zero
    conv rates."""
    from tracker.sdnet.online import MetaSDNetTracker
    from tracker.sdnet.weights import untrained_weights

    cfg = ModelConfig.tiny()
    w = untrained_weights(cfg, seed=2)
    g = torch.Generator().manual_seed(1)
    w.alpha = {k: (torch.zeros_like(v) if k.startswith("features.") else
                   torch.rand(v.shape, generator=g) * 1e-4) for k, v in w.params.items()}
    fc_only = MetaSDNetTracker(weights=w, bbreg=False)
    assert fc_only.learner().inner_names == [k for k in w.params if k.startswith("fc.")]
    w2 = untrained_weights(cfg, seed=2)
    w2.alpha = {k: (torch.full_like(v, 1e-30) if k.startswith("features.") else w.alpha[k])
                for k, v in w.params.items()}
    w2.adapted = tuple(w2.params)
    full = MetaSDNetTracker(weights=w2, bbreg=False)
    assert len(full.learner().inner_names) == 12
    for trk in (fc_only, full):
        trk.init(scene, [120, 90, 40, 36])
    for k in w.params:
        torch.testing.assert_close(fc_only.params[k].detach(), full.params[k].detach(),
                                   rtol=1e-4, atol=1e-7)
    assert not torch.equal(fc_only.params["fc.fc6.weight"].detach(), w.params["fc.fc6.weight"])
    # later frames agree too (same features, same memory)
    np.testing.assert_allclose(fc_only.update(scene), full.update(scene), atol=1e-3)


def test_fc_only_attenuator_is_recognised(scene):
    from foundation.errors import UserError
    from meta_learning import SEED_PAPER_L2F, Attenuator
    from tracker.sdnet.online import MetaSDNetTracker
    from tracker.sdnet.weights import untrained_weights

    w = untrained_weights(ModelConfig.tiny(), seed=1, alpha=0.0)
    w.attenuator, w.l2f = Attenuator(6, "sigmoid").state_dict(), SEED_PAPER_L2F
    trk = MetaSDNetTracker(weights=w, bbreg=False)
    trk.init(scene, [120, 90, 40, 36])
    assert torch.equal(trk.params["features.conv1.weight"], w.params["features.conv1.weight"])
    ratio = trk.params["fc.fc4.weight"].detach() / w.params["fc.fc4.weight"]
    assert 0 < float(ratio.mean()) < 1
    w.attenuator = Attenuator(5, "sigmoid").state_dict()
    with pytest.raises(UserError, match="attenuator takes 5 inputs"):
        MetaSDNetTracker(weights=w)


@pytest.mark.parametrize("alpha", [1000.0, 1e-9])
def test_ridge_solve_gives_the_float64_solution(alpha):
    """The float32 Gram + refinement equals the float64 solve, also where float32 cannot solve
    the system (near-collinear rows, no ridge to speak of: condition ~1e8, so it solves in float64)."""
    from tracker.sdnet.bbreg import _ridge_solve

    g = torch.Generator().manual_seed(0)
    F = torch.rand(40, 300, generator=g, dtype=torch.float64) * 3
    F[-1] = F[0] + 1e-3 * torch.randn(300, generator=g, dtype=torch.float64)
    B = F @ torch.randn(300, 4, generator=g, dtype=torch.float64)
    A = F @ F.T
    A.diagonal().add_(alpha)
    exact = torch.linalg.solve(A, B)
    got = _ridge_solve(F, B, alpha)
    assert got.dtype == torch.float64
    assert float((got - exact).abs().max() / exact.abs().max()) < 1e-6
