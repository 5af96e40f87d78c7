"""The online MetaSDNet / MDNet trackers end to end on synthetic sequences (tiny networks)."""
import warnings

import numpy as np
import pytest

import tracker
from foundation.boxes import iou
from foundation.errors import UserError
from otb_eval.testing import patch_sequence, write_otb_sequence
from tracker.sdnet.model import ModelConfig
from tracker.sdnet.weights import untrained_weights
from tracker.weights import UntrainedWeightsWarning

# Threshold: IoU >= 0.5 on EVERY frame (OTB's success threshold). The patch moves by more than
# its own width, over a background with the same texture statistics, so the first box (the
# identity tracker) and a network that never learns both fall to IoU 0 within a few frames (the
# control below); only the frame-1 step plus the online updates can keep it.
# The tracking tests run the untrained CPU configuration (ModelConfig.small(): seeded random conv
# filters, fc rates 1e-4): everything it tracks with, it learned from frame 1 on.
THRESHOLD = 0.5


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(config=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        return tracker.make(kw.pop("name", "metasdnet"),
                            weights=untrained_weights(config or ModelConfig.tiny()), **kw)


def _small(**kw):
    return _tiny(ModelConfig.small(), **kw)


def _run(trk, frames, gt):
    out = [gt[0]]
    trk.init(frames[0], gt[0])
    for f in frames[1:]:
        out.append(trk.update(f))
    return iou(np.array(out), gt)


@pytest.mark.parametrize("seed", [0, 1])
def test_metasdnet_follows_a_textured_patch(seed):
    frames, gt = patch_sequence(seed=seed)
    assert iou(np.repeat(gt[:1], len(gt), 0), gt).min() == 0      # the first box is useless
    o = _run(_small(), frames, gt)
    assert o.min() >= THRESHOLD, np.round(o, 2)


def test_without_learning_the_patch_is_lost():
    frames, gt = patch_sequence(seed=0)
    o = _run(_small(inner_steps=0, update_iters=0), frames, gt)
    assert o.min() < THRESHOLD


def test_mdnet_baseline_follows_a_textured_patch():
    frames, gt = patch_sequence(seed=0)
    o = _run(_small(name="mdnet", finetune_pos=200, finetune_neg=1000), frames, gt)
    assert o.min() >= THRESHOLD, np.round(o, 2)


def test_exact_mode_tracks_too():
    # the small network with the default candidates and memory negatives, as the fast-mode test:
    # with a quarter of them (64 candidates, 50 negatives) the untrained start kept the patch on
    # only some random streams
    frames, gt = patch_sequence(n=8, seed=0)
    o = _run(_small(mode="exact", bbreg_n=200), frames, gt)
    assert o.min() >= THRESHOLD, np.round(o, 2)


def test_deterministic_given_the_seed():
    frames, gt = patch_sequence(n=8, seed=2)
    a, b = _tiny(), _tiny()
    a.init(frames[0], gt[0]), b.init(frames[0], gt[0])
    for f in frames[1:]:
        np.testing.assert_array_equal(a.update(f), b.update(f))


@pytest.mark.parametrize("name", ["metasdnet", "mdnet"])
def test_box_regression_options_do_not_move_the_tracking_path(name):
    """The regressor's samples have a random stream of their own: with more, fewer or no box
    regression samples the tracker follows the same path (candidates, memory, updates); only the
    boxes it reports differ (here, since the regressor is fitted, in at least one frame)."""
    frames, gt = patch_sequence(n=6, seed=1)
    kw = {"finetune_pos": 100, "finetune_neg": 400} if name == "mdnet" else {}
    paths, outputs = [], []
    for opts in ({"bbreg_n": 200}, {"bbreg_n": 50}, {"bbreg": False}):
        trk = _tiny(name=name, **kw, **opts)
        trk.init(frames[0], gt[0])
        path, out = [], []
        for f in frames[1:]:
            out.append(trk.update(f))
            path.append(trk.box.copy())
        paths.append(np.array(path))
        outputs.append(np.array(out))
    np.testing.assert_array_equal(paths[0], paths[1])
    np.testing.assert_array_equal(paths[0], paths[2])
    assert not np.array_equal(outputs[0], outputs[1])


def test_make_without_weights_warns_once_and_runs(monkeypatch, tmp_path):
    import tracker.weights as W

    monkeypatch.setenv(W.ENV_VAR, str(tmp_path))          # an empty weights folder
    monkeypatch.setattr(W, "weights_dirs", lambda: [str(tmp_path)])
    monkeypatch.setattr(W, "_WARNED", set())
    with pytest.warns(UntrainedWeightsWarning, match="UNTRAINED"):
        trk = tracker.make("metasdnet", model_config=ModelConfig.tiny())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedWeightsWarning)    # second build: no warning
        tracker.make("metasdnet", model_config=ModelConfig.tiny())
    frames, gt = patch_sequence(n=3)
    trk.init(frames[0], gt[0])
    assert trk.update(frames[1]).shape == (4,)
    assert tracker.make("metasdnet").config == ModelConfig.small()   # the CPU default


def test_unknown_option_is_a_user_error():
    with pytest.raises(UserError, match="unknown option"):
        _tiny(n_candidatez=3)
    with pytest.raises(UserError, match="mode"):
        _tiny(mode="turbo")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("box, match", [
    ([500, 500, 30, 30], "outside"),
    ([-100, 10, 50, 20], "outside"),
    ([10, 10, 3, 30], "smaller than 4"),
    ([10, 10, 30, float("nan")], "non-finite"),
    ([10, 10, 30], "4 numbers"),
    ([158, 10, 30, 30], "less than 4 px inside"),
])
def test_bad_initial_box(box, match):
    frames, _ = patch_sequence(n=1)
    with pytest.raises(UserError, match=match):
        _tiny().init(frames[0], box)


def test_box_partly_outside_is_clipped():
    frames, _ = patch_sequence(n=2)
    trk = _tiny()
    trk.init(frames[0], [-10, -5, 40, 30])
    np.testing.assert_allclose(trk.box, [0, 0, 30, 25])


def test_grayscale_rgba_16bit_and_pil_frames():
    from PIL import Image

    frames, gt = patch_sequence(n=3, seed=3)
    gray = [f.mean(2).astype(np.uint8) for f in frames]
    rgba = [np.dstack([f, np.full(f.shape[:2], 255, np.uint8)]) for f in frames]
    deep = [f.astype(np.uint16) * 257 for f in frames]
    pil = [Image.fromarray(f[:, :, ::-1]) for f in frames]
    ref = None
    for seq in (frames, rgba, deep, pil, gray):
        trk = _tiny()
        trk.init(seq[0], gt[0])
        out = np.array([trk.update(f) for f in seq[1:]])
        assert np.isfinite(out).all() and out.shape == (2, 4)
        if ref is None:
            ref = out
        elif seq is not gray:                                  # same pixels -> same boxes
            np.testing.assert_allclose(out, ref, atol=1e-6)


# ---------------------------------------------------------------- got10k
def test_got10k_experiment_otb_runs_metasdnet(tmp_path, monkeypatch):
    import got10k.experiments.otb as got10k_otb
    from got10k.datasets import OTB

    root = str(tmp_path / "otb")
    for i, name in enumerate(["Car4", "Dog"]):
        frames, gt = patch_sequence(n=10, seed=10 + i)
        write_otb_sequence(root, name, frames, gt, ext=".jpg")       # got10k reads img/*.jpg
    monkeypatch.setattr(got10k_otb, "OTB", lambda r, v, download=True: OTB(r, v, download=False))
    monkeypatch.setattr(got10k_otb.ExperimentOTB, "plot_curves", lambda self, names: None)
    exp = got10k_otb.ExperimentOTB(root, version=2015, result_dir=str(tmp_path / "results"),
                                   report_dir=str(tmp_path / "reports"))
    trk = _tiny()
    exp.run(trk)
    for name in ("Car4", "Dog"):
        boxes = np.loadtxt(tmp_path / "results" / "OTB2015" / "metasdnet" / f"{name}.txt",
                           delimiter=",")
        assert boxes.shape == (10, 4)
    report = exp.report(["metasdnet"])["metasdnet"]["overall"]
    assert report["success_score"] > 0.5


@pytest.mark.slow
def test_fast_mode_is_nearly_as_accurate_as_exact_mode():
    """RoIAlign on the dense grid against MDNet's per-box crops, same frames (about 2 minutes)."""
    fast, exact = [], []
    for seed in (0, 1):
        frames, gt = patch_sequence(n=20, seed=seed)
        fast.append(_run(_small(mode="fast"), frames, gt).mean())
        exact.append(_run(_small(mode="exact"), frames, gt).mean())
    assert np.mean(fast) >= np.mean(exact) - 0.05, (fast, exact)
    assert min(fast) >= 0.8
