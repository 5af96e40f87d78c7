"""MetaCREST target model: correlation conv localises a shift, label, masked loss, Hann window,
template resizing and the official checkpoint import."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from foundation.errors import UserError
from tracker.crest import dcf, features as feat


def _identity_model(channels: int, template: torch.Tensor) -> dict:
    """conv1 = identity (no reduction), cf = the target's own features: a plain cross-correlation."""
    return {"conv1.weight": torch.eye(channels).reshape(channels, channels, 1, 1),
            "conv1.bias": torch.zeros(channels),
            "cf.weight": template.unsqueeze(0).clone(), "cf.bias": torch.zeros(1)}


@pytest.mark.parametrize("shift", [(0, 0), (3, -2), (-4, 5), (1, 1)])
def test_response_peaks_at_true_shift(shift: tuple) -> None:
    g = torch.Generator().manual_seed(0)
    c, h, w, k = 8, 25, 27, 5
    x0 = torch.randn(1, c, h, w, generator=g)
    cy, cx = h // 2, w // 2
    params = _identity_model(c, x0[0, :, cy - k // 2:cy + k // 2 + 1, cx - k // 2:cx + k // 2 + 1])
    assert dcf.response_peak(dcf.forward(params, x0)) == (0, 0)
    x1 = torch.roll(x0, shifts=shift, dims=(2, 3))
    resp = dcf.forward(params, x1)
    assert resp.shape == (1, 1, h, w)
    assert dcf.response_peak(resp) == shift


def test_translated_image_through_backbone() -> None:
    """End to end at the pixel level: a textured patch moved by 8 px (2 cells at stride 4)."""
    rng = np.random.default_rng(1)
    img = np.full((96, 96, 3), 120, np.uint8)
    tex = rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    img0, img1 = img.copy(), img.copy()
    img0[36:60, 36:60] = tex
    img1[44:68, 28:52] = tex                       # moved +8 px down, -8 px left
    fparams = feat.init_params(feat.FeatureConfig(channels=(4, 8, 8, 16)), torch.Generator().manual_seed(2))
    f0, f1 = (feat.extract(fparams, feat.preprocess(i)) for i in (img0, img1))
    mean = f0.mean(dim=(2, 3), keepdim=True)       # centre features so the background does not respond
    f0, f1 = f0 - mean, f1 - mean
    h, w = f0.shape[-2:]
    cy, cx = h // 2, w // 2
    params = _identity_model(16, f0[0, :, cy - 3:cy + 4, cx - 3:cx + 4])
    assert dcf.response_peak(dcf.forward(params, f1)) == (2, -2)


def test_forward_needs_odd_kernel_and_keeps_size() -> None:
    p = dcf.init_params(16, (5, 7), reduced=8, generator=torch.Generator().manual_seed(0))
    assert dcf.forward(p, torch.randn(2, 16, 11, 13)).shape == (2, 1, 11, 13)
    p["cf.weight"] = torch.zeros(1, 8, 4, 5)
    with pytest.raises(ValueError):
        dcf.forward(p, torch.randn(1, 16, 11, 13))
    assert dcf.kernel_size((4.0, 6.6)) == (5, 7)
    assert dcf.kernel_size((0.2, 3.0)) == (1, 3)
    assert dcf.param_shapes(512, (5, 7)) == {"conv1.weight": (64, 512, 1, 1), "conv1.bias": (64,),
                                             "cf.weight": (1, 64, 5, 7), "cf.bias": (1,)}


def test_label_peak_and_width() -> None:
    target = (10.0, 20.0)
    lab = dcf.gaussian_label((31, 41), target)
    assert lab.shape == (31, 41)
    assert lab[15, 20] == pytest.approx(1.0) and float(lab.max()) == pytest.approx(1.0)
    assert dcf.response_peak(lab) == (0, 0)
    sy, sx = 0.1 * target[0], 0.1 * target[1]     # 1 and 2 cells
    assert float(lab[15 + round(sy), 20]) == pytest.approx(math.exp(-0.3))        # y = sy
    assert float(lab[15, 20 + round(sx)]) == pytest.approx(math.exp(-0.3))        # x = sx
    assert float(lab[15 + 2, 20 + 4]) == pytest.approx(math.exp(-0.3 * (4 + 4)))
    wide = dcf.gaussian_label((31, 41), (20.0, 40.0))
    assert float(wide[15 + 2, 20]) == pytest.approx(math.exp(-0.3))       # twice the size, twice the width
    shifted = dcf.gaussian_label((31, 41), target, shift=(3, -4))
    assert dcf.response_peak(shifted) == (3, -4)


def test_masked_loss() -> None:
    c = dcf.gaussian_label((15, 15), (10.0, 10.0))
    assert float(dcf.masked_loss(c.clone(), c)) == 0.0
    assert float(dcf.masked_loss(c + 0.05, c)) == 0.0            # all within the 0.1 mask
    x = c.clone()
    x[0, 0] += 0.05                                               # ignored by the mask
    x[7, 7] += 0.5                                                # the peak cell, C = 1
    expected = (math.exp(1.0) * 0.5) ** 2 / (1 + 1)
    assert float(dcf.masked_loss(x, c)) == pytest.approx(expected, rel=1e-5)
    r = (c + 0.3).requires_grad_(True)
    loss = dcf.masked_loss(r, c)
    assert float(loss.detach()) > 0
    loss.backward()
    assert r.grad is not None and (r.grad > 0).all()


def test_hann2d() -> None:
    win = dcf.hann2d(9, 7)
    assert win.shape == (9, 7)
    assert float(win[4, 3]) == pytest.approx(1.0) and float(win[0, 0]) == 0.0
    assert torch.allclose(win, win.flip(0)) and torch.allclose(win, win.flip(1))


def test_resize_template_keeps_alpha_shape() -> None:
    w = torch.randn(1, 64, 5, 5)
    a = torch.full((1, 64, 5, 5), 1e-6)
    w2, a2 = dcf.resize_template(w, a, (7, 9))
    assert w2.shape == (1, 64, 7, 9) and a2.shape == w2.shape
    assert torch.allclose(a2, torch.full_like(a2, 1e-6))          # a constant rate stays constant
    w3, a3 = dcf.resize_template(w, a, (5, 5))
    assert w3 is w and a3 is a
    with pytest.raises(ValueError):
        dcf.resize_template(w, torch.ones(1, 64, 3, 3), (7, 7))
    wg = w.clone().requires_grad_(True)
    dcf.resize_template(wg, a, (3, 3))[0].sum().backward()       # meta-training differentiates through it
    assert wg.grad is not None


def _official(c: int = 32, r: int = 8, k: tuple = (5, 5)) -> dict:
    g = torch.Generator().manual_seed(5)
    init = {"conv1.weight": torch.randn(r, c, 1, 1, generator=g), "conv1.bias": torch.randn(r, generator=g),
            "cf.weight": torch.randn(1, r, *k, generator=g), "cf.bias": torch.randn(1, generator=g)}
    alpha = {key: torch.full_like(v, 1e-6) for key, v in init.items()}
    return {"meta_init": init, "meta_alpha": alpha}


def test_load_official_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "meta_crest.pth"
    ck = _official()
    torch.save(ck, path)
    init, alpha = dcf.load_official_crest(torch.load(path), in_channels=32)
    for key in dcf.PARAM_NAMES:
        assert torch.equal(init[key], ck["meta_init"][key])
        assert alpha[key].shape == init[key].shape
    resp = dcf.forward(init, torch.randn(1, 32, 13, 13))
    assert resp.shape == (1, 1, 13, 13)


def test_load_official_checkpoint_errors(tmp_path: Path) -> None:
    ck = _official()
    ck["meta_alpha"]["cf.weight"] = torch.ones(1, 8, 3, 3)
    torch.save(ck, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="meta_alpha cf.weight"):
        dcf.load_official_crest(torch.load(tmp_path / "bad.pth"))
    with pytest.raises(UserError, match="conv1.weight"):
        dcf.load_official_crest(_official(c=32), in_channels=512)
    ck = _official()
    del ck["meta_init"]["cf.bias"]
    with pytest.raises(UserError, match="cf.bias"):
        dcf.load_official_crest(ck)
    with pytest.raises(UserError, match="meta_alpha"):
        dcf.load_official_crest({"meta_init": _official()["meta_init"]})


@pytest.mark.parametrize("kernel, padding", [((9, 7), (4, 3)), ((3, 3), (1, 1)), ((5, 5), (0, 0))])
def test_one_map_conv_is_the_convolution_to_second_order(kernel, padding) -> None:
    """The depthwise-written correlation filter: same values, gradients and gradients of gradients
    as F.conv2d (meta-training differentiates the frame-1 step through it)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 11, 10, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 4, *kernel, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(dcf.one_map_conv(x, w, b, padding), F.conv2d(x, w, b, padding=padding))
    fn = lambda x, w, b: dcf.one_map_conv(x, w, b, padding)   # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))
