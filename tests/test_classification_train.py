"""Episodes, backbones, the CI, the top-k ensemble, learning, exact resume, and the engine's
first-order to second-order switch."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from foundation.checkpoint import load_checkpoint
from foundation.errors import UserError
from meta_learning import MetaConfig, MetaLearner, functional_loss
from meta_learning.l2f import SEED_PAPER_L2F
from meta_learning.tasks.classification import glyphs as G
from meta_learning.tasks.classification.backbones import Conv4, ResNet12
from meta_learning.tasks.classification.episodes import ArrayPool, episode_rng, sample_episode
from meta_learning.tasks.classification.train import (
    ClassificationConfig,
    build_learner,
    evaluate,
    mean_ci,
    predict,
    run,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pools():
    """Eight Latin letters rendered 8 times at 16x16 (DejaVu fonts), the same pool for every split."""
    fonts = tuple(f for f in G.font_files() if "DejaVu" in f)
    letters = [G.Letter(c, "Latin", fonts) for c in "ABEHKMRX"]
    g = G.render_glyphs(G.GlyphConfig(image_size=16, samples_per_class=8, seed=0), letters)
    pool = ArrayPool(list(g.images), g.chars)
    return {"train": pool, "val": pool, "test": pool}


def tiny(**kw):
    base = dict(dataset="glyphs", ways=3, shots=1, queries=3, image_size=16, iterations=6, meta_batch=2,
                inner_steps=2, val_every=2, val_tasks=4, top_k=2, eval_tasks=6, checkpoint_every=2)
    return ClassificationConfig(**{**base, **kw}).validate()


def test_episode_has_the_right_classes_shots_and_queries(pools):
    pool = pools["train"]
    ep = sample_episode(pool, 5, 2, 3, episode_rng(7, 0))
    (xs, ys), (xq, yq) = ep.support, ep.query
    assert xs.shape == (10, 1, 16, 16) and xq.shape == (15, 1, 16, 16)
    assert ys.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4] and yq.tolist() == sum(([k] * 3 for k in range(5)), [])
    assert len(set(ep.classes)) == 5
    for label, c in enumerate(ep.classes):         # every image is one of its class's renderings
        own = {pool.images(c, [k]).tobytes() for k in range(pool.count(c))}
        imgs = [xs[i].numpy().tobytes() for i in range(10) if ys[i] == label] + \
               [xq[i].numpy().tobytes() for i in range(15) if yq[i] == label]
        assert set(imgs) <= own and len(set(imgs)) == 5             # support and query distinct
    again = sample_episode(pool, 5, 2, 3, episode_rng(7, 0))
    assert torch.equal(again.support[0], xs) and again.classes == ep.classes
    assert sample_episode(pool, 5, 2, 3, episode_rng(7, 1)).classes != ep.classes or \
        not torch.equal(sample_episode(pool, 5, 2, 3, episode_rng(7, 1)).support[0], xs)
    with pytest.raises(ValueError, match="images"):
        sample_episode(pool, 2, 5, 4, episode_rng(0, 0))


def test_conv4_has_the_seed_shapes_and_six_adapted_tensors():
    m = Conv4(5, 3, 84)
    convs = [l for l in m.features if isinstance(l, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.bias) for c in convs] == \
        [(3, 48, (3, 3), None)] + [(48, 48, (3, 3), None)] * 3
    assert sum(isinstance(l, nn.BatchNorm2d) and not l.track_running_stats for l in m.features) == 4
    assert sum(isinstance(l, nn.LeakyReLU) for l in m.features) == 4
    assert sum(isinstance(l, nn.MaxPool2d) for l in m.features) == 4
    assert m.features(torch.zeros(2, 3, 84, 84)).shape == (2, 48, 5, 5) and m.classifier.in_features == 1200
    assert Conv4(5, 1, 28)(torch.zeros(3, 1, 28, 28)).shape == (3, 5)
    learner = MetaLearner(m, MetaConfig(adapt="no_norm", l2f=SEED_PAPER_L2F))
    assert learner.inner_names == [f"features.{i}.weight" for i in (0, 4, 8, 12)] + \
        ["classifier.weight", "classifier.bias"]
    assert learner.attenuator.n == 6


def test_resnet12_has_the_seed_shapes_and_eighteen_adapted_tensors():
    m = ResNet12(5, 3)
    assert [b.conv1.out_channels for b in m.features] == [64, 128, 256, 512]
    x = torch.zeros(2, 3, 84, 84)
    sizes = []
    for block in m.features:
        x = block(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(64, 42, 42), (128, 21, 21), (256, 10, 10), (512, 5, 5)]
    b = m.features[0]
    assert [c.kernel_size for c in (b.conv1, b.conv2, b.conv3, b.shortcut[0])] == [(3, 3)] * 3 + [(1, 1)]
    assert isinstance(b.shortcut[1], nn.BatchNorm2d) and isinstance(b.act, nn.LeakyReLU)
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    learner = MetaLearner(m, MetaConfig(adapt="no_norm", l2f=SEED_PAPER_L2F))
    assert len(learner.inner_names) == 18 == learner.attenuator.n
    assert not any("bn" in n or "shortcut.1" in n for n in learner.inner_names)


def test_ci_is_1_96_sd_over_sqrt_n():
    r = mean_ci([0.2, 0.4, 0.6, 0.9])
    v = np.array([0.2, 0.4, 0.6, 0.9])
    assert r["mean"] == pytest.approx(v.mean())
    assert r["ci95"] == pytest.approx(1.96 * v.std(ddof=1) / math.sqrt(4)) and r["tasks"] == 4


def test_ensemble_averages_the_members_predictions(pools):
    cfg = tiny(l2f=True)
    learner, loss_fn = build_learner(cfg, 1)
    members = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        members.append({k: (v + 0.3 * torch.randn_like(v)) if v.is_floating_point() else v
                        for k, v in learner.state_dict().items()})
    out = evaluate(learner, loss_fn, members, pools["test"], cfg)
    probs = []
    for state in members:
        learner.load_state_dict(state)
        probs.append([predict(learner, loss_fn, sample_episode(pools["test"], 3, 1, 3, episode_rng(s, t)), 2)[0]
                      for s, t in [(20_261_201, t) for t in range(6)]])
    labels = torch.arange(3).repeat_interleave(3)
    ens = [float(((probs[0][t] + probs[1][t] + probs[2][t]).argmax(-1) == labels).double().mean()) for t in range(6)]
    single = [[float((p[t].argmax(-1) == labels).double().mean()) for t in range(6)] for p in probs]
    assert out["accuracy"]["mean"] == pytest.approx(np.mean(ens))
    assert [m["mean"] for m in out["members"]] == pytest.approx([np.mean(s) for s in single])
    assert len(out["gamma"]) == 6


def _query_loss(learner, loss_fn, pool, tasks=8):
    total = 0.0
    for t in range(tasks):
        ep = sample_episode(pool, 3, 1, 3, episode_rng(99, t))
        fast, _ = learner.adapt(None, loss_fn, ep.support, training=False)
        total += float(loss_fn(fast, ep.query).detach())
    return total / tasks


def test_a_few_iterations_lower_the_query_loss(pools, tmp_path):
    cfg = tiny(iterations=30, val_every=30, inner_steps=5, meta_batch=4, queries=5)
    learner, loss_fn = build_learner(cfg, 1)
    before = _query_loss(learner, loss_fn, pools["test"])
    learner, loss_fn, info = train(cfg, tmp_path, pools, progress=False)
    after = _query_loss(learner, loss_fn, pools["test"])
    assert after < 0.75 * before, (before, after)
    assert int(learner.iteration) == 30 and info["top"][0]["iteration"] == 30


def test_resume_is_bit_identical_and_results_complete(pools, tmp_path):
    cfg = tiny(l2f=True, dropgrad="binary", surgery="pcgrad")
    full = run(cfg, tmp_path / "full", progress=False, pools=pools)
    assert run(cfg, tmp_path / "part", progress=False, pools=pools, stop_after=3) == {"stopped_at": 3}
    assert not (tmp_path / "part" / "results.json").exists()
    resumed = run(cfg, tmp_path / "part", progress=False, pools=pools)
    a = load_checkpoint(str(tmp_path / "full" / "checkpoint.pt"))[0]
    b = load_checkpoint(str(tmp_path / "part" / "checkpoint.pt"))[0]
    for k, v in a["learner"]["learner"].items():
        assert torch.equal(v, b["learner"]["learner"][k]), k
    assert a["history"] == b["history"] and a["top"] == b["top"]
    assert full["accuracy"] == resumed["accuracy"] and full["members"] == resumed["members"]
    assert 0.0 <= full["accuracy"]["mean"] <= 1.0 and full["accuracy"]["ci95"] > 0
    assert full["config"]["method"] == "MAML+L2F+DropGrad+PCGrad" and len(full["members"]) == 2
    assert sorted(p.name for p in (tmp_path / "full" / "top").iterdir()) == sorted(t["file"] for t in a["top"])
    model = load_checkpoint(str(tmp_path / "full" / "model.pt"))[0]
    assert len(model["members"]) == 2 and model["config"]["ways"] == 3


def test_other_settings_do_not_resume(pools, tmp_path):
    run(tiny(iterations=2), tmp_path, progress=False, pools=pools)
    with pytest.raises(UserError, match="other settings"):
        run(tiny(iterations=2, seed=1), tmp_path, progress=False, pools=pools)


def test_engine_switches_from_first_to_second_order():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    loss_fn = functional_loss(model, nn.functional.cross_entropy)
    x, y = torch.randn(6, 3), torch.tensor([0, 1] * 3)

    switch = MetaLearner(model, MetaConfig(inner_steps=2, inner_lr=0.5, first_order_iterations=2))
    fo = MetaLearner(model, MetaConfig(inner_steps=2, inner_lr=0.5, first_order=True))
    so = MetaLearner(model, MetaConfig(inner_steps=2, inner_lr=0.5))

    def grads(learner):
        loss, _ = learner.task_loss(loss_fn, (x, y), (x, y))
        return torch.autograd.grad(loss, list(model.parameters()))

    assert switch.is_first_order()
    g_switch, g_fo, g_so = grads(switch), grads(fo), grads(so)
    assert all(torch.allclose(a, b) for a, b in zip(g_switch, g_fo))
    assert not all(torch.allclose(a, b) for a, b in zip(g_fo, g_so))
    switch.iteration.fill_(2)
    assert not switch.is_first_order()
    assert all(torch.allclose(a, b) for a, b in zip(grads(switch), g_so))
    with pytest.raises(ValueError, match="first_order_iterations"):
        MetaConfig(first_order_iterations=-1).validate()


def test_first_order_evaluation_gives_the_same_adapted_values(pools):
    cfg = tiny(first_order_iterations=0)
    learner, loss_fn = build_learner(cfg, 1)
    ep = sample_episode(pools["test"], 3, 1, 3, episode_rng(5, 0))
    start = {k: v.detach() for k, v in learner.start().items()}
    a, _ = learner.adapt(start, loss_fn, ep.support, training=False)
    b, _ = learner.adapt(start, loss_fn, ep.support, training=False, first_order=True)
    assert not learner.is_first_order()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert a["classifier.weight"].requires_grad and not b["classifier.weight"].requires_grad


def test_pixel_floor_is_exact_on_constant_classes_and_chance_on_noise():
    from meta_learning.tasks.classification.train import pixel_nn

    rng = np.random.default_rng(0)
    const = ArrayPool([np.repeat(rng.integers(0, 256, (1, 16, 16), dtype=np.uint8), 6, 0) for _ in range(6)],
                      [str(i) for i in range(6)])
    assert pixel_nn(const, 3, 1, 3, tasks=10)["mean"] == 1.0
    noise = ArrayPool([rng.integers(0, 256, (6, 16, 16), dtype=np.uint8) for _ in range(6)], [str(i) for i in range(6)])
    r = pixel_nn(noise, 3, 1, 3, tasks=200)
    assert abs(r["mean"] - 1 / 3) < 3 * r["ci95"] + 0.02
