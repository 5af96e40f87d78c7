"""Episodes and meta-training of MetaSDNet through the engine, on a tiny synthetic set."""
import csv
import os

import numpy as np
import pytest
import torch

from meta_learning.l2f import L2FSettings
from otb_eval.synthetic import generate
from tracker.metatrain.episodes import EpisodeConfig, sample_episode
from tracker.metatrain.sdnet import MetaTrainConfig, build_learner, meta_train
from tracker.metatrain.sources import load_tracks
from tracker.sdnet.losses import region_loss
from tracker.sdnet.model import ModelConfig
from tracker.sdnet.weights import load_weights

TINY = ModelConfig.tiny()


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synth"))
    generate(root, 3, seed=0, split="train", frames=(12, 16), size=(160, 120), progress=False)
    return load_tracks(root, "otb")


def test_episode_samples_and_label_shuffling(tracks):
    cfg = EpisodeConfig()
    shuffled = []
    for i in range(24):
        ep = sample_episode(tracks, i, seed=3, model=TINY, config=cfg)
        t, t2 = ep.frames
        assert 1 <= t2 - t <= cfg.lookahead or t2 == len([tr for tr in tracks if tr.name == ep.track][0]) - 1
        for fs in (ep.support, ep.query):
            pos = fs.labels == (0 if ep.shuffled else 1)
            assert int(pos.sum()) == 32 and len(fs.labels) == 128
            assert np.all(fs.ious[pos.numpy()] >= 0.7 - 1e-9)
            assert np.all(fs.ious[~pos.numpy()] <= 0.5 + 1e-9)
        shuffled.append(ep.shuffled)
    rng_rate = np.mean([np.random.default_rng([3, i]).choice(len(tracks)) is not None and
                        sample_episode(tracks, i, 3, TINY, cfg).shuffled for i in range(24)])
    assert rng_rate == np.mean(shuffled)                 # deterministic by (seed, index)
    many = [np.random.default_rng([5, i]) for i in range(400)]
    rate = np.mean([(g.choice(len(tracks)), g.integers(0, 10), g.integers(1, 11), g.random())[3] < 0.5
                    for g in many])
    assert 0.42 < rate < 0.58


def _config(**kw):
    base = dict(iterations=6, meta_batch=1, checkpoint_every=3, model=TINY.to_dict(), seed=1,
                episodes=EpisodeConfig(max_side=160).to_dict())
    base.update(kw)
    return MetaTrainConfig(**base)


def _query_loss(learner, tracks, n=12):
    from tracker.metatrain.episodes import EpisodeDataset

    ds = EpisodeDataset(tracks, 999, TINY, EpisodeConfig(max_side=160))
    loss_fn = region_loss(TINY)
    total = 0.0
    for i in range(n):
        s, q = ds[i].batches()
        fast, _ = learner.adapt(None, loss_fn, s, training=False)
        total += float(loss_fn(fast, q).detach())
    return total / n


def test_meta_training_lowers_the_query_loss(tracks, tmp_path):
    cfg = _config(iterations=12, meta_batch=2, adapt="fc", lr_start=1e-3, lr_alpha=1e-3,
                  feature_cache=str(tmp_path / "features"))
    before = _query_loss(build_learner(cfg), tracks)
    out = str(tmp_path / "w.pt")
    meta_train(tracks, cfg, out, progress=False)
    w = load_weights(out)
    after_learner = build_learner(cfg, w.params, w.alpha)
    assert _query_loss(after_learner, tracks) < before
    rows = list(csv.DictReader(open(out + ".csv")))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 13))
    assert os.listdir(tmp_path / "features")          # conv features were shared on disk
    assert torch.count_nonzero(w.alpha["features.conv1.weight"]) == 0   # conv never adapts


@pytest.mark.parametrize("variant", [dict(), dict(l2f=L2FSettings(), dropgrad="binary", adapt="fc")])
def test_resume_is_bit_identical(tracks, tmp_path, variant):
    straight = str(tmp_path / "a.pt")
    meta_train(tracks, _config(**variant), straight, progress=False)
    resumed = str(tmp_path / "b.pt")

    def interrupt(it, loss):        # killed during iteration 5, after the checkpoint at 3
        if it == 4:
            raise KeyboardInterrupt
        return loss

    with pytest.raises(KeyboardInterrupt):
        meta_train(tracks, _config(**variant), resumed, progress=False, nan_hook=interrupt)
    meta_train(tracks, _config(**variant), resumed, resume=True, progress=False)
    a, b = load_weights(straight), load_weights(resumed)
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), k
        assert torch.equal(a.alpha[k], b.alpha[k]), k
    if variant:
        for k in a.attenuator:
            assert torch.equal(a.attenuator[k], b.attenuator[k])
    rows_a = [r["query_loss"] for r in csv.DictReader(open(straight + ".csv"))]
    rows_b = [r["query_loss"] for r in csv.DictReader(open(resumed + ".csv"))]
    assert rows_a == rows_b


def test_nan_loss_is_skipped_and_reported(tracks, tmp_path):
    out = str(tmp_path / "n.pt")

    def poison(it, loss):
        return loss * float("nan") if it == 2 else loss

    with pytest.warns(UserWarning, match="iteration 3 has a non-finite loss"):
        result = meta_train(tracks, _config(iterations=4), out, progress=False, nan_hook=poison)
    assert result.skipped == [3]
    w = load_weights(out)
    assert all(torch.isfinite(v).all() for v in w.params.values())
    rows = list(csv.DictReader(open(out + ".csv")))
    assert rows[2]["skipped"] == "1" and rows[2]["query_loss"] == "nan"


def _val_losses(path):
    return [(int(r["iteration"]), float(r["val_query_loss"])) for r in csv.DictReader(open(path + ".csv"))
            if r["val_query_loss"]]


def test_keep_best_writes_the_start_of_the_lowest_validation_loss(tracks, tmp_path):
    # lrs high enough that the validation loss moves both ways within 8 iterations
    cfg = dict(iterations=8, checkpoint_every=2, adapt="fc", lr_start=3e-2, lr_alpha=3e-2)
    last, best = str(tmp_path / "last.pt"), str(tmp_path / "best.pt")
    meta_train(tracks, _config(**cfg), last, val_tracks=tracks, progress=False)
    meta_train(tracks, _config(keep="best", **cfg), best, val_tracks=tracks, progress=False)
    val = _val_losses(best)
    assert [i for i, _ in val] == [2, 4, 6, 8]
    assert val == _val_losses(last)                       # keep changes the file, not the training
    lowest = min(v for _, v in val)
    chosen = max(i for i, v in val if v == lowest)        # a tie goes to the later iteration
    assert load_weights(best).metadata["iterations"] == chosen
    assert load_weights(last).metadata["iterations"] == 8
    same = all(torch.equal(load_weights(best).params[k], load_weights(last).params[k])
               for k in load_weights(last).params)
    assert same == (chosen == 8)


def test_keep_best_resumes_to_the_same_file(tracks, tmp_path):
    cfg = _config(iterations=8, checkpoint_every=2, adapt="fc", lr_start=3e-2, lr_alpha=3e-2, keep="best")
    straight, resumed = str(tmp_path / "a.pt"), str(tmp_path / "b.pt")
    meta_train(tracks, cfg, straight, val_tracks=tracks, progress=False)

    def interrupt(it, loss):        # killed during iteration 7, after the checkpoint at 6
        if it == 6:
            raise KeyboardInterrupt
        return loss

    with pytest.raises(KeyboardInterrupt):
        meta_train(tracks, cfg, resumed, val_tracks=tracks, progress=False, nan_hook=interrupt)
    meta_train(tracks, cfg, resumed, val_tracks=tracks, resume=True, progress=False)
    a, b = load_weights(straight), load_weights(resumed)
    assert a.metadata["iterations"] == b.metadata["iterations"]
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)


def test_keep_best_needs_validation_tracks(tracks, tmp_path):
    from foundation.errors import UserError

    with pytest.raises(UserError, match="--keep best needs validation tracks"):
        meta_train(tracks, _config(keep="best"), str(tmp_path / "w.pt"), progress=False)
    with pytest.raises(UserError, match="--keep must be last or best"):
        _config(keep="first").validate()


def test_the_keep_flag_offers_what_the_config_takes():
    # spelled out in the CLI to keep --help free of torch: it must match the config's
    from tracker.cli.meta_train_cmd import KEEP_CHOICES as CLI_KEEP
    from tracker.metatrain.config import KEEP_CHOICES

    assert CLI_KEEP == KEEP_CHOICES and MetaTrainConfig().keep == CLI_KEEP[0]
