"""MetaCREST meta-training (tracker/metatrain/crest.py, the shared loop, `meta-train --tracker
metacrest`): episodes against the boxes, the per-frame feature cache against exact crops, the
meta-gradient through the template resize, L2F / DropGrad, weights the tracker runs with, resume
and the CLI. A tiny untrained MetaSDNet backbone (conv2, 16 channels) and targets normalised to
16 px (an 81-px window, 21 x 21 cells) keep it all to a few seconds on one CPU thread."""
from __future__ import annotations

import csv
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

import tracker.metatrain.crest as crest_mod
from foundation.errors import UserError
from foundation.images import read_bgr
from meta_learning.l2f import L2FSettings
from otb_eval.testing import block_texture, patch_sequence, write_otb_sequence
from tracker.cli import main
from tracker.crest.backbone import Backbone
from tracker.crest.dcf import init_params
from tracker.crest.online import CRESTOptions, MetaCRESTTracker
from tracker.crest.weights import load_crest_weights
from tracker.crest.window import WindowGeometry
from tracker.metatrain.crest import (
    GEOMETRY_FIELDS,
    CRESTEpisodeDataset,
    CRESTTrainConfig,
    build_crest_learner,
    crest_task_loss,
    meta_train_crest,
)
from tracker.metatrain.sources import load_tracks
from tracker.sdnet.model import ModelConfig
from tracker.sdnet.weights import save_weights, untrained_weights

PX = 16.0                                     # normalised target size (min = max)
TRACKING = dict(window_factor=5.0, max_target_px=PX, min_target_px=PX, hann=True)
OPTS = replace(CRESTOptions(), **TRACKING)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three moving-patch tracks (28 x 24 targets: kernel 3 x 5, template 5 x 5), one track whose
    16 x 16 target moves by whole cells (4 px), and a tiny MetaSDNet weights file (the backbone)."""
    root = tmp_path_factory.mktemp("crest_meta")
    train = str(root / "train")
    for s in range(3):
        frames, boxes = patch_sequence(14, (112, 96), box=(30, 30, 28, 24), amplitude=12.0, drift=1.0, seed=s)
        write_otb_sequence(train, f"patch{s}", frames, boxes)
    # whole-cell motion: window px = frame px (16-px target at 16 px), every move a multiple of 4
    rng = np.random.default_rng(7)
    bg, tex = block_texture(rng, 96, 112), block_texture(rng, 16, 16)
    steps = [(0, 0), (1, 0), (2, 1), (3, 1), (2, 2), (1, 2), (0, 1), (-1, 1), (-2, 0), (-1, -1)]
    frames, boxes = [], []
    for sx, sy in steps:
        x, y = 44 + 4 * sx, 40 + 4 * sy
        fr = bg.copy()
        fr[y:y + 16, x:x + 16] = tex
        frames.append(fr)
        boxes.append([x, y, 16, 16])
    grid = str(root / "grid")
    write_otb_sequence(grid, "grid", frames, np.array(boxes, float))
    sdnet = str(root / "sdnet.pt")
    save_weights(sdnet, untrained_weights(ModelConfig.tiny()))
    return {"train": train, "tracks": load_tracks(train, "otb"), "grid": load_tracks(grid, "otb"),
            "sdnet": sdnet, "root": root}


def _backbone(data) -> Backbone:
    return crest_mod.default_training_backbone(data["sdnet"], "conv2")


def _track(tracks, name):
    return next(t for t in tracks if t.name == name)


def _argmax2d(m: torch.Tensor):
    m = m.reshape(m.shape[-2:])
    i = int(torch.argmax(m))
    return i // m.shape[1], i % m.shape[1]


def _config(**kw) -> CRESTTrainConfig:
    base = dict(iterations=6, meta_batch=1, checkpoint_every=3, reduced=8, lr_start=1e-3, lr_alpha=1e-4,
                alpha_init=1e-2, seed=1, tracking=dict(TRACKING))
    base.update(kw)
    return CRESTTrainConfig(**base)


# ---------------------------------------------------------------------------- episodes
def test_episodes_are_deterministic_and_labelled_from_the_boxes(data):
    bb = _backbone(data)
    a = CRESTEpisodeDataset(data["tracks"], 5, bb, OPTS, lookahead=4)
    b = CRESTEpisodeDataset(data["tracks"], 5, bb, OPTS, lookahead=4)
    moved = 0
    picks = set()
    for i in range(10):
        ea, eb = a[i], b[i]
        assert (ea.track, ea.frames, ea.kernel) == (eb.track, eb.frames, eb.kernel)
        for x, y in ((ea.support, eb.support), (ea.query, eb.query)):
            assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
        picks.add((ea.track, ea.frames))
        track = _track(data["tracks"], ea.track)
        t, t2 = ea.frames
        assert 1 <= t2 - t <= 4 or t2 == len(track) - 1
        box, box2 = track.boxes[t], track.boxes[t2]
        g = WindowGeometry.for_box(box[2:], bb, 5.0, PX, PX)
        assert ea.kernel == g.kernel == (3, 5)            # 24 x 28 px -> 13.7 x 16 normalised px
        n = g.map_size
        assert ea.support[0].shape == ea.query[0].shape == (1, bb.out_channels, n, n)
        assert ea.support[1].shape == ea.query[1].shape == (1, n, n)
        # support: the target at the window's centre -> the label peaks (1) at the centre cell
        assert _argmax2d(ea.support[1]) == (n // 2, n // 2)
        assert float(ea.support[1].max()) == pytest.approx(1.0)
        # query: frame t2's target seen from frame t's centre, in window px (16 / 28 per frame px)
        off = (box2[:2] + box2[2:] / 2 - box[:2] - box[2:] / 2) * PX / max(box[2:])
        c = (g.window - 1) / 2.0
        want_y, want_x = ((c + off[1] - bb.cell_centre(0)) / bb.stride, (c + off[0] - bb.cell_centre(0)) / bb.stride)
        got_y, got_x = _argmax2d(ea.query[1])
        assert abs(got_y - want_y) <= 0.5 + 1e-6 and abs(got_x - want_x) <= 0.5 + 1e-6, (i, off)
        moved += (got_y, got_x) != (n // 2, n // 2)
    assert moved >= 3                               # the query labels really are shifted
    assert len(picks) >= 5                          # and episodes differ by index
    other = CRESTEpisodeDataset(data["tracks"], 6, bb, OPTS, lookahead=4)
    assert [other[i].frames for i in range(10)] != [a[i].frames for i in range(10)]


class _Counting:
    """A backbone that counts its forward passes (geometry delegated)."""

    def __init__(self, bb):
        self.bb, self.calls = bb, 0

    def __getattr__(self, name):
        return getattr(self.bb, name)

    def __call__(self, patches):
        self.calls += 1
        return self.bb(patches)


def test_feature_cache_matches_the_exact_crops(data, tmp_path):
    bb = _backbone(data)
    bb.calibrate([CRESTEpisodeDataset(data["grid"], 0, bb, OPTS).windows(i)[3] for i in range(4)])
    exact = CRESTEpisodeDataset(data["grid"], 2, bb, OPTS, lookahead=5)
    cached = CRESTEpisodeDataset(data["grid"], 2, bb, OPTS, lookahead=5, cache=str(tmp_path))
    shifted = 0
    for i in range(8):
        first = cached[i]
        assert os.listdir(tmp_path) == [os.path.basename(cached.cache.folder)]      # one keyed folder
        assert all(f.endswith(".pt") for f in os.listdir(cached.cache.folder)) and os.listdir(cached.cache.folder)
        counting = _Counting(bb)
        cached.backbone = counting
        again = cached[i]                     # both frames now come from the disk
        cached.backbone = bb
        assert counting.calls == 0
        ref = exact[i]
        assert ref.frames == again.frames == first.frames and ref.kernel == again.kernel
        scale = float(ref.support[0].abs().max())
        # a frame's first visit (computed) and later ones (read back) give the same features, so
        # a run does not depend on what the cache held when it started (resume, shared caches)
        assert torch.equal(first.support[0], again.support[0]) and torch.equal(first.query[0], again.query[0])
        assert torch.allclose(again.support[0], ref.support[0], atol=2e-3 * scale)      # fp16 on disk
        assert not torch.equal(again.support[0], ref.support[0]) or scale == 0
        # whole-cell motion: the cached frame-t2 map moved by the displacement IS the exact crop
        # at frame t's centre wherever the shift brings data in, and the labels are the same
        assert torch.allclose(again.query[1], ref.query[1], atol=1e-6)
        dy, dx = (a - b for a, b in zip(_argmax2d(ref.query[1]), _argmax2d(ref.support[1])))
        shifted += (dy, dx) != (0, 0)
        n = ref.query[0].shape[-1]
        inside = torch.zeros(n, n, dtype=torch.bool)
        inside[max(dy, 0):n + min(dy, 0), max(dx, 0):n + min(dx, 0)] = True
        q, r = again.query[0][..., inside], ref.query[0][..., inside]
        assert torch.allclose(q, r, atol=2e-3 * scale), float((q - r).abs().max()) / scale
        assert torch.count_nonzero(again.query[0][..., ~inside]) == 0
    assert shifted >= 4


def test_cached_query_labels_are_within_a_cell_of_the_exact_ones(data, tmp_path):
    bb = _backbone(data)
    exact = CRESTEpisodeDataset(data["tracks"], 4, bb, OPTS, lookahead=6)
    cached = CRESTEpisodeDataset(data["tracks"], 4, bb, OPTS, lookahead=6, cache=str(tmp_path))
    for i in range(8):
        e, c = exact[i], cached[i]
        assert e.frames == c.frames and e.kernel == c.kernel
        (ey, ex), (cy, cx) = _argmax2d(e.query[1]), _argmax2d(c.query[1])
        assert abs(ey - cy) <= 1 and abs(ex - cx) <= 1, (i, (ey, ex), (cy, cx))


def test_cache_key_follows_backbone_and_geometry(data, tmp_path):
    bb = _backbone(data)
    a = CRESTEpisodeDataset(data["tracks"], 0, bb, OPTS, cache=str(tmp_path)).cache.folder
    assert a == CRESTEpisodeDataset(data["tracks"], 9, bb, OPTS, cache=str(tmp_path)).cache.folder
    assert a != CRESTEpisodeDataset(data["tracks"], 0, bb, replace(OPTS, max_target_px=20.0),
                                    cache=str(tmp_path)).cache.folder
    bb2 = _backbone(data)
    bb2.feature_scale = 2.0
    assert a != CRESTEpisodeDataset(data["tracks"], 0, bb2, OPTS, cache=str(tmp_path)).cache.folder


# ---------------------------------------------------------------------------- the meta step
def _episodes(data, n=2):
    ds = CRESTEpisodeDataset(data["tracks"], 3, _backbone(data), OPTS, lookahead=4)
    return [ds[i] for i in range(n)]


def _learner(data, **kw):
    cfg = _config(**kw)
    start = init_params(_backbone(data).out_channels, (7, 7), cfg.reduced, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    return build_crest_learner(cfg, start)


def test_meta_gradient_reaches_the_template_through_the_resize(data):
    eps = _episodes(data)
    assert all(ep.kernel != (7, 7) for ep in eps)
    learner = _learner(data)
    before = {k: v.detach().clone() for k, v in learner.model.named_parameters()}
    rates0 = {k: v.detach().clone() for k, v in learner.inner_lr.rates().items()}
    losses = [crest_task_loss(learner, ep)[0] for ep in eps]
    grads = torch.autograd.grad(sum(losses), [learner.model.cf.weight, learner.inner_lr.rates()["cf.weight"]],
                                retain_graph=True)
    assert all(g is not None and float(g.abs().max()) > 0 for g in grads)
    learner.outer_step(losses)
    cf = learner.model.cf.weight.detach()
    assert cf.shape == (1, 8, 7, 7)                      # the template keeps its size
    assert not torch.equal(cf, before["cf.weight"])
    rate = learner.inner_lr.rates()["cf.weight"].detach()
    assert rate.shape == (1, 8, 7, 7) and not torch.equal(rate, rates0["cf.weight"])
    assert not torch.equal(learner.model.conv1.weight.detach(), before["conv1.weight"])


def test_l2f_gamma_and_dropgrad_noise(data):
    ep = _episodes(data, 1)[0]
    learner = _learner(data, l2f=L2FSettings(mode="identity"))
    loss, info = crest_task_loss(learner, ep)
    assert info["gamma"] is not None and info["gamma"].numel() == 4
    assert list(info["names"]) == ["conv1.weight", "conv1.bias", "cf.weight", "cf.bias"]
    assert torch.allclose(info["gamma"], torch.ones(4))   # identity mode starts untouched
    loss.backward()
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in learner.attenuator.parameters())

    learner = _learner(data, dropgrad="binary", dropgrad_rate=0.5)
    eval_loss = float(crest_task_loss(learner, ep, training=False)[0].detach())
    assert float(crest_task_loss(learner, ep, training=False)[0].detach()) == eval_loss
    torch.manual_seed(11)
    train_a = float(crest_task_loss(learner, ep, training=True)[0].detach())
    torch.manual_seed(11)
    train_b = float(crest_task_loss(learner, ep, training=True)[0].detach())
    train_c = float(crest_task_loss(learner, ep, training=True)[0].detach())
    assert train_a == train_b                            # seeded
    assert train_a != eval_loss and train_c != train_a   # the noise is applied in training only
    plain = _learner(data)
    assert float(crest_task_loss(plain, ep, training=True)[0].detach()) == pytest.approx(eval_loss, rel=1e-6)


# ---------------------------------------------------------------------------- meta_train_crest
def _rows(path):
    with open(path + ".csv", newline="") as f:
        return list(csv.DictReader(f))


def test_meta_train_writes_weights_the_tracker_runs_with(data, tmp_path):
    out = str(tmp_path / "mc.pt")
    tracking = dict(TRACKING, update_lr=1e-4, memory=4)
    cfg = _config(tracking=tracking, l2f=L2FSettings())
    result = meta_train_crest(data["tracks"], cfg, out, backbone=data["sdnet"], progress=False,
                              metadata={"note": "test"})
    assert result.iterations == 6 and not result.skipped and np.isfinite(result.last_query_loss)
    assert os.path.isfile(out) and os.path.isfile(out + ".ckpt")
    rows = _rows(out)
    assert [int(r["iteration"]) for r in rows] == list(range(1, 7))
    assert all(r["skipped"] == "0" and np.isfinite(float(r["query_loss"])) for r in rows)
    assert [r["phase"] for r in rows] == ["all"] * 3 + ["decayed"] * 3        # x0.1 at half way
    assert all(r["gamma_mean"] for r in rows)
    w = load_crest_weights(out)
    assert w.metadata["tracker"] == "metacrest" and w.metadata["note"] == "test"
    assert w.options == tracking and w.attenuator is not None
    assert w.params["cf.weight"].shape == (1, 8, 5, 5)     # template: a 16-px target's kernel
    assert all(w.alpha[k].shape == w.params[k].shape for k in w.params)
    assert w.backbone.kind == "sdnet" and w.backbone.layer == "conv2" and w.backbone.feature_scale != 1.0
    trk = MetaCRESTTracker(weights=out)
    assert (trk.opts.max_target_px, trk.opts.min_target_px, trk.opts.update_lr, trk.opts.memory) == (PX, PX, 1e-4, 4)
    track = data["tracks"][0]
    trk.init(read_bgr(track.frames[0]), track.boxes[0])
    assert trk.geometry.target_px == PX and trk.geometry.window == 81
    assert trk._optimizer.param_groups[0]["lr"] == 1e-4
    for f in track.frames[1:6]:
        box = trk.update(read_bgr(f))
        assert box.shape == (4,) and np.all(np.isfinite(box))
    assert len(trk._memory) <= 4
    assert trk.gamma is not None and set(trk.gamma) == {"conv1.weight", "conv1.bias", "cf.weight", "cf.bias"}


def _interrupt_at(monkeypatch, call):
    """Make the ``call``-th task loss (0-based; meta-batch 1: the iteration) raise Ctrl-C."""
    real, n = crest_mod.crest_task_loss, [0]

    def task(learner, episode, training=True):
        n[0] += 1
        if n[0] - 1 == call:
            raise KeyboardInterrupt
        return real(learner, episode, training)

    monkeypatch.setattr(crest_mod, "crest_task_loss", task)


def _same_weights(a_path, b_path):
    a, b = load_crest_weights(a_path), load_crest_weights(b_path)
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), k
        assert torch.equal(a.alpha[k], b.alpha[k]), k
    assert a.backbone.feature_scale == b.backbone.feature_scale
    assert _rows(a_path) and [r["query_loss"] for r in _rows(a_path)] == [r["query_loss"] for r in _rows(b_path)]


@pytest.mark.parametrize("cache", [False, True])
def test_resume_after_an_interrupt_is_bit_identical(data, tmp_path, monkeypatch, cache):
    def cfg(tag):
        return _config(dropgrad="binary", dropgrad_rate=0.3,
                       feature_cache=str(tmp_path / f"cache-{tag}") if cache else None)

    straight = str(tmp_path / "a.pt")
    meta_train_crest(data["tracks"], cfg("a"), straight, backbone=data["sdnet"], progress=False)
    resumed = str(tmp_path / "b.pt")
    with monkeypatch.context() as m:
        _interrupt_at(m, 4)                            # killed in iteration 5, checkpoint at 3
        with pytest.raises(KeyboardInterrupt):
            meta_train_crest(data["tracks"], cfg("b"), resumed, backbone=data["sdnet"], progress=False)
    assert [int(r["iteration"]) for r in _rows(resumed)] == [1, 2, 3, 4]   # row 4: after the checkpoint
    meta_train_crest(data["tracks"], cfg("b"), resumed, resume=True, backbone=data["sdnet"], progress=False)
    assert [int(r["iteration"]) for r in _rows(resumed)] == list(range(1, 7))   # row 4 once
    _same_weights(straight, resumed)


def test_extending_a_finished_run_and_changed_settings(data, tmp_path):
    # no decay within either run (decay_at = iterations), so 3 + 3 is 6 straight
    straight, extended = str(tmp_path / "a.pt"), str(tmp_path / "b.pt")
    meta_train_crest(data["tracks"], _config(dropgrad="gaussian", decay_fraction=1.0), straight,
                     backbone=data["sdnet"], progress=False)
    meta_train_crest(data["tracks"], _config(iterations=3, dropgrad="gaussian", decay_fraction=1.0), extended,
                     backbone=data["sdnet"], progress=False)
    assert load_crest_weights(extended).metadata.get("iterations") == 3
    meta_train_crest(data["tracks"], _config(dropgrad="gaussian", decay_fraction=1.0), extended, resume=True,
                     backbone=data["sdnet"], progress=False)
    _same_weights(straight, extended)
    assert load_crest_weights(extended).metadata.get("iterations") == 6
    for changed in (dict(dropgrad="binary"), dict(meta_batch=2),
                    dict(tracking=dict(TRACKING, max_target_px=20.0))):
        with pytest.raises(UserError, match="other settings"):
            meta_train_crest(data["tracks"], _config(decay_fraction=1.0, **{"dropgrad": "gaussian", **changed}),
                             extended, resume=True, backbone=data["sdnet"], progress=False)


def test_non_finite_loss_is_skipped(data, tmp_path, monkeypatch):
    real, n = crest_mod.crest_task_loss, [0]

    def poisoned(learner, episode, training=True):
        n[0] += 1
        loss, info = real(learner, episode, training)
        return (loss * float("nan"), info) if n[0] == 2 else (loss, info)

    monkeypatch.setattr(crest_mod, "crest_task_loss", poisoned)
    out = str(tmp_path / "n.pt")
    with pytest.warns(UserWarning, match="iteration 2 has a non-finite loss"):
        result = meta_train_crest(data["tracks"], _config(iterations=3), out, backbone=data["sdnet"],
                                  progress=False)
    assert result.skipped == [2]
    w = load_crest_weights(out)
    assert all(torch.isfinite(v).all() for v in (*w.params.values(), *w.alpha.values()))
    assert [r["skipped"] for r in _rows(out)] == ["0", "1", "0"]


def test_init_continues_from_metacrest_weights(data, tmp_path):
    first = str(tmp_path / "first.pt")
    meta_train_crest(data["tracks"], _config(iterations=2), first, backbone=data["sdnet"], progress=False)
    w0 = load_crest_weights(first)
    more = str(tmp_path / "more.pt")
    meta_train_crest(data["tracks"], _config(iterations=2, lr_start=0.0, lr_alpha=0.0), more, init=first,
                     progress=False)
    w1 = load_crest_weights(more)
    assert w1.backbone.feature_scale == w0.backbone.feature_scale        # the backbone is kept
    for k in w0.params:                                                   # lr 0: nothing moves
        assert torch.equal(w0.params[k], w1.params[k]) and torch.equal(w0.alpha[k], w1.alpha[k]), k


def test_bad_settings_are_user_errors(data, tmp_path):
    for kw, needle in ((dict(iterations=0), "--iterations"), (dict(lookahead=0), "--lookahead"),
                       (dict(dropgrad="nope"), "--dropgrad"),
                       (dict(tracking=dict(TRACKING, bogus=1)), "unknown MetaCREST tracking option"),
                       (dict(tracking=dict(TRACKING, min_target_px=40.0)), "max_target_px"),
                       (dict(tracking=dict(TRACKING, update_every="5")), "update_every must be an integer"),
                       (dict(tracking=dict(TRACKING, scales=[1.0, "x"])), "scales must be numbers"),
                       (dict(tracking=dict(TRACKING, init=1)), "init must be a word")):
        with pytest.raises(UserError, match=needle):
            _config(**kw).validate()
    ok = _config(tracking=dict(TRACKING, scales=[1, 0.9, 1.1], update_lr=1, subcell=False)).validate()
    assert ok.options().scales == (1, 0.9, 1.1) and ok.options().update_lr == 1
    with pytest.raises(UserError, match="no training tracks"):
        meta_train_crest([], _config(), str(tmp_path / "x.pt"), backbone=data["sdnet"], progress=False)


# ---------------------------------------------------------------------------- CLI
def _cli(data, out, *extra):
    return ["meta-train", "--tracker", "metacrest", "--dataset", data["train"], "--backbone", data["sdnet"],
            "--max-target-px", "16", "--min-target-px", "16", "--iterations", "2", "--meta-batch", "1",
            "--lookahead", "3", "--alpha-init", "1e-3", "--dropgrad", "binary", "--out", out, "--no-progress",
            *extra]


def test_cli_meta_trains_metacrest(data, tmp_path, capsys):
    out = str(tmp_path / "cli.pt")
    # (the options --help gives as its example)
    assert main(_cli(data, out, "--tracker-option", "update_lr=1e-4", "--tracker-option", "subcell=false",
                     "--tracker-option", "hann=false")) == 0
    assert "meta-trained 2 iterations" in capsys.readouterr().out
    w = load_crest_weights(out)
    assert w.options["max_target_px"] == 16.0 and w.options["min_target_px"] == 16.0
    assert w.options["update_lr"] == 1e-4 and w.options["hann"] is False and w.options["subcell"] is False
    assert set(GEOMETRY_FIELDS) <= set(w.options)
    cfg = w.metadata["train_config"]
    assert cfg["lookahead"] == 3 and cfg["alpha_init"] == 1e-3 and cfg["dropgrad"] == "binary"
    assert cfg["iterations"] == 2 and cfg["lr_start"] == 1e-6       # MetaCREST's default, not MetaSDNet's
    assert torch.allclose(w.alpha["cf.weight"], torch.full_like(w.alpha["cf.weight"], 1e-3), rtol=0.1)
    assert len(_rows(out)) == 2
    trk = MetaCRESTTracker(weights=out)
    assert trk.opts.update_lr == 1e-4 and trk.opts.hann is False and trk.opts.min_target_px == 16.0
    # --resume continues the same run; other settings are refused in one line
    assert main(_cli(data, out, "--tracker-option", "update_lr=1e-4", "--tracker-option", "subcell=false",
                     "--tracker-option", "hann=false", "--resume")) == 0
    capsys.readouterr()
    assert main(_cli(data, out, "--resume")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings" in err[0]


@pytest.mark.parametrize("option,needle", [
    ("novalue", "--tracker-option needs KEY=VALUE, got 'novalue'"),
    ("=3", "--tracker-option needs KEY=VALUE"),
    ("bogus=1", "unknown MetaCREST tracking option(s): bogus"),
    ("memory=0", "memory must be >= 1"),
    ("update_lr=abc", "update_lr must be a finite number, got 'abc'"),      # was saved, then broke the tracker
    ("memory=2.5", "memory must be an integer"),
    ("scales=1,x", "scales must be numbers"),                        # was a TypeError traceback
    ("hann=yes", "hann must be true or false"),
])
def test_cli_bad_tracker_option_is_one_line(data, tmp_path, capsys, option, needle):
    out = str(tmp_path / "bad.pt")
    assert main(_cli(data, out, "--tracker-option", option)) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("metatrack meta-train: error:") and needle in err[0], err
    assert not os.path.exists(out) and not os.path.exists(out + ".ckpt")


def test_cli_resume_without_a_checkpoint(data, tmp_path, capsys):
    assert main(_cli(data, str(tmp_path / "none.pt"), "--resume")) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_cli_refuses_the_other_familys_options(data, tmp_path, capsys):
    """--adapt is MetaSDNet's, --backbone MetaCREST's: silently ignoring either would mislead."""
    out = str(tmp_path / "x.pt")
    assert main(_cli(data, out, "--adapt", "fc")) == 2
    assert "--adapt: not an option of --tracker metacrest" in capsys.readouterr().err
    assert main(["meta-train", "--dataset", data["train"], "--backbone", data["sdnet"], "--out", out,
                 "--iterations", "1", "--no-progress"]) == 2
    assert "--backbone: not an option of --tracker metasdnet" in capsys.readouterr().err
    assert not os.path.exists(out)


def test_meta_train_on_efficientnet_writes_small_weights_the_tracker_runs_with(data, tmp_path):
    """EfficientNet-Lite0 (block 3, stride 4): the weights file keeps the backbone's config and
    calibrated scale, not its ImageNet tensors, and the tracker rebuilds the same features."""
    out = str(tmp_path / "effnet.pt")
    result = meta_train_crest(data["tracks"], _config(tracking=dict(TRACKING)), out, backbone="efficientnet-lite0",
                              backbone_layer="block3", backbone_stride=4, progress=False)
    assert result.iterations == 6 and np.isfinite(result.last_query_loss)
    assert os.path.getsize(out) < 200_000
    w = load_crest_weights(out)
    assert w.backbone.kind == "efficientnet" and w.backbone.blocks == 3 and w.backbone.stride == 4
    assert w.backbone.feature_scale != 1.0 and w.params["conv1.weight"].shape[1] == 24
    trk = MetaCRESTTracker(weights=out)
    track = data["tracks"][0]
    trk.init(read_bgr(track.frames[0]), track.boxes[0])
    boxes = [trk.update(read_bgr(f)) for f in track.frames[1:4]]
    assert all(b.shape == (4,) and np.all(np.isfinite(b)) for b in boxes)


@pytest.mark.parametrize("backbone,layer,stride,message", [
    ("efficientnet-lite0", "conv2", None, "block1 .. block16"),
    ("efficientnet-lite0", "block17", None, "block1 .. block16"),
    ("efficientnet-lite0", "block5", 6, "power of two"),
    ("efficientnet-lite0", "block3", 8, "read more blocks"),
    ("efficientnet-lite0", None, 16, "read more blocks"),
    ("metasdnet.pt", "block5", None, "blockN is for --backbone efficientnet-lite0"),
    ("metasdnet.pt", None, 8, "--backbone-stride: only for"),
])
def test_backbone_spec_mismatches_are_refused_before_loading(backbone, layer, stride, message):
    with pytest.raises(UserError, match=message):
        crest_mod.backbone_spec(backbone, layer, stride)


def test_backbone_spec_defaults():
    assert crest_mod.backbone_spec(None) == ("block5", 3)            # EfficientNet, as shipped
    assert crest_mod.backbone_spec("metasdnet.pt") == ("conv2", None)
    assert crest_mod.backbone_spec("efficientnet-lite0") == ("block5", 3)
    assert crest_mod.backbone_spec("efficientnet-lite0", "block11", 8) == ("block11", 5)
    assert crest_mod.backbone_spec("efficientnet-lite0", "block5", 4) == ("block5", 3)


def test_normalized_l2f_input_is_saved_and_the_tracker_rebuilds_it(data, tmp_path):
    out = str(tmp_path / "l2f-norm.pt")
    cfg = _config(tracking=dict(TRACKING), l2f=L2FSettings(input="normalized"))
    meta_train_crest(data["tracks"], cfg, out, backbone=data["sdnet"], progress=False)
    w = load_crest_weights(out)
    assert w.l2f.input == "normalized" and w.attenuator["mlp.0.weight"].shape == (4, 8)
    trk = MetaCRESTTracker(weights=out)
    track = data["tracks"][0]
    trk.init(read_bgr(track.frames[0]), track.boxes[0])
    assert trk.gamma is not None and all(0 <= g <= 1 for g in trk.gamma.values())
    w.l2f = replace(w.l2f, input="mean")
    with pytest.raises(UserError, match="1 input each"):
        MetaCRESTTracker(weights=w)
