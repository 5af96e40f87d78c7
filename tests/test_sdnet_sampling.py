"""MDNet's samplers against their definitions (../shared/reference/tracking.md)."""
import numpy as np
import pytest
from scipy import stats

from foundation.boxes import iou, xywh_to_cxcywh
from tracker.sdnet.sampling import MIN_SIZE, Sampler, episode_samples, gaussian, sample_iou, uniform, whole

BOX = np.array([200.0, 150.0, 60.0, 40.0])   # s = mean(w, h) = 50
IMG = (640, 480)
N = 20000


def _rel(boxes, box=BOX):
    c, c0 = xywh_to_cxcywh(boxes), xywh_to_cxcywh(box)
    s = box[2:].mean()
    return (c[:, :2] - c0[:2]) / s, np.log(c[:, 2:] / c0[2:])


def _clipped_half_normal_moments():
    # E[clip(0.5 N, -1, 1)^2] and P(|0.5 N| >= 1)
    p_out = 2 * stats.norm.sf(2.0)
    inner = 0.25 * (stats.norm.cdf(2) - stats.norm.cdf(-2) - 2 * 2 * stats.norm.pdf(2))
    return inner + p_out, p_out


def test_gaussian_shift_is_clipped_half_normal_times_trans_s():
    rng = np.random.default_rng(0)
    d, logs = _rel(gaussian(rng, BOX, IMG, N, trans=0.6, scale=1.05))
    u = d / 0.6
    var, p_out = _clipped_half_normal_moments()
    assert np.abs(u).max() <= 1 + 1e-9
    assert u.mean(0) == pytest.approx([0, 0], abs=0.02)
    assert (u ** 2).mean(0) == pytest.approx([var, var], rel=0.04)
    assert (np.abs(u) > 1 - 1e-9).mean() == pytest.approx(p_out, abs=0.006)   # mass at the clip
    # one scale factor for both sides (aspect 1), scale ** clip(0.5 N, -1, 1)
    e = logs / np.log(1.05)
    assert np.allclose(e[:, 0], e[:, 1])
    assert np.abs(e).max() <= 1 + 1e-9
    assert (e[:, 0] ** 2).mean() == pytest.approx(var, rel=0.05)
    # x and y shifts independent
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03


def test_uniform_shift_and_scale_are_uniform():
    rng = np.random.default_rng(1)
    d, logs = _rel(uniform(rng, BOX, IMG, N, trans=1.0, scale=2.0))
    for col in range(2):
        assert stats.kstest((d[:, col] + 1) / 2, "uniform").pvalue > 1e-3
    e = logs[:, 0] / np.log(2.0)
    assert np.allclose(logs[:, 0], logs[:, 1])
    assert stats.kstest((e + 1) / 2, "uniform").pvalue > 1e-3


def test_aspect_jitter_changes_shape_not_area():
    rng = np.random.default_rng(2)
    b = uniform(rng, BOX, IMG, N, trans=0.0, scale=1.0, aspect=1.1)
    _, logs = _rel(b)
    assert np.allclose(logs[:, 0], -logs[:, 1])                  # w * a^u, h * a^-u
    u = logs[:, 0] / np.log(1.1)
    assert stats.kstest((u + 1) / 2, "uniform").pvalue > 1e-3


def test_sizes_clipped_to_10_and_image_minus_10():
    rng = np.random.default_rng(3)
    tiny = uniform(rng, [50, 50, 6, 6], IMG, 500, trans=0.5, scale=1.2)
    assert tiny[:, 2:].min() >= MIN_SIZE - 1e-9
    big = uniform(rng, [0, 0, 630, 470], IMG, 500, trans=0.1, scale=1.5)
    assert big[:, 2].max() <= IMG[0] - MIN_SIZE + 1e-9
    assert big[:, 3].max() <= IMG[1] - MIN_SIZE + 1e-9


def test_valid_keeps_boxes_inside_the_image():
    rng = np.random.default_rng(4)
    b = uniform(rng, [5, 5, 80, 60], IMG, 2000, trans=2.0, scale=1.3, valid=True)
    assert b[:, 0].min() >= -1e-9 and b[:, 1].min() >= -1e-9
    assert (b[:, 0] + b[:, 2]).max() <= IMG[0] + 1e-9
    assert (b[:, 1] + b[:, 3]).max() <= IMG[1] + 1e-9
    free = uniform(np.random.default_rng(4), [5, 5, 80, 60], IMG, 2000, trans=2.0, scale=1.3)
    assert free[:, 0].min() < 0                                   # without valid they may stick out


def test_whole_covers_the_image_on_a_grid():
    rng = np.random.default_rng(5)
    b = whole(rng, BOX, IMG, 400, scale=1.2, aspect=1.1)
    c = xywh_to_cxcywh(b)
    # boxes inside, centres spread over the whole image: every 4x4 cell of the image gets some
    assert b[:, 0].min() >= -1e-6 and (b[:, 0] + b[:, 2]).max() <= IMG[0] + 1e-6
    gx = (c[:, 0] - c[:, 2] / 2) / (IMG[0] - c[:, 2])              # position in the free range
    gy = (c[:, 1] - c[:, 3] / 2) / (IMG[1] - c[:, 3])
    hist, _, _ = np.histogram2d(gx, gy, bins=4, range=[[0, 1], [0, 1]])
    assert hist.min() >= 10
    # stratified: far more even than independent uniform draws (Poisson std sqrt(25) = 5)
    assert hist.std() < 0.5 * np.sqrt(hist.mean())
    # restricted to an area
    a = whole(rng, BOX, IMG, 200, area=(100, 100, 300, 250))
    assert a[:, 0].min() >= 100 - 10 and (a[:, 0] + a[:, 2]).max() <= 300 + 10


def test_rejection_to_iou_ranges():
    rng = np.random.default_rng(6)
    pos = sample_iou(rng, Sampler("gaussian", 0.1, 1.2, 1.1), BOX, IMG, 500, (0.7, 1.0))
    neg = sample_iou(rng, Sampler("uniform", 1.0, 2.0, 1.1), BOX, IMG, 500, (0.0, 0.3))
    assert len(pos) == 500 and len(neg) == 500
    assert iou(pos, BOX[None]).min() >= 0.7
    assert iou(neg, BOX[None]).max() <= 0.3
    # the sampler alone would have produced some outside the range: rejection really ran
    raw = gaussian(np.random.default_rng(6), BOX, IMG, 2000, 0.1, 1.2, 1.1)
    assert iou(raw, BOX[None]).min() < 0.7


def test_rejection_gives_up_gracefully():
    rng = np.random.default_rng(7)
    out = sample_iou(rng, Sampler("gaussian", 0.01, 1.01), BOX, IMG, 50, (0.0, 0.1), max_rounds=3)
    assert len(out) == 0


def test_episode_samples_match_the_reference_support_set():
    rng = np.random.default_rng(8)
    pos, neg = episode_samples(rng, BOX, IMG)
    assert pos.shape == (32, 4) and neg.shape == (96, 4)
    assert iou(pos, BOX[None]).min() >= 0.7 and iou(neg, BOX[None]).max() <= 0.5
    pos2, _ = episode_samples(np.random.default_rng(8), BOX, IMG)
    np.testing.assert_array_equal(pos, pos2)                     # seeded
