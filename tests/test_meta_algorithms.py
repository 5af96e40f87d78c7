"""DropGrad, PCGrad, GradDrop, L2F, Meta-SGD rates, Eq. C lambdas, freezing and clamping."""
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from meta_learning import (
    Attenuator,
    DropGrad,
    InnerLR,
    MetaConfig,
    MetaLearner,
    clamp_grads,
    dropgrad_noise,
    functional_loss,
    graddrop,
    l2_meta_grads,
    layerwise_lambdas,
    pcgrad,
)
from meta_learning.l2f import SEED_PAPER_L2F, L2FSettings


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1))


def mse(p, y):
    return ((p - y) ** 2).mean()


def task(seed=0, k=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2 * k, 1, generator=g) * 10 - 5
    y = 3 * torch.sin(x + 1)
    return (x[:k], y[:k]), (x[k:], y[k:])


# ------------------------------------------------------------------ DropGrad
@pytest.mark.parametrize("kind", ["binary", "gaussian"])
@pytest.mark.parametrize("p", [0.1, 0.3])
def test_dropgrad_noise_mean_one_and_variance_p_over_1_minus_p(kind, p):
    torch.manual_seed(0)
    n = 400_000
    m = dropgrad_noise(torch.empty(n, dtype=torch.float64), p, kind)
    var = p / (1 - p)
    se_mean = math.sqrt(var / n)
    assert abs(float(m.mean()) - 1.0) < 5 * se_mean
    assert abs(float(m.var()) - var) < 0.02 * var
    if kind == "binary":
        assert set(torch.unique(m).tolist()) == {0.0, 1.0 / (1 - p)}


def test_dropgrad_is_off_in_evaluation_and_on_in_training():
    torch.manual_seed(0)
    model = mlp()
    loss_fn = functional_loss(model, mse)
    support, _ = task()
    noisy = MetaLearner(model, MetaConfig(dropgrad="binary", dropgrad_rate=0.5, inner_steps=2))
    plain = MetaLearner(model, MetaConfig(inner_steps=2))
    ref, _ = plain.adapt(None, loss_fn, support, training=False)
    ev, _ = noisy.adapt(None, loss_fn, support, training=False)
    tr, _ = noisy.adapt(None, loss_fn, support, training=True)
    for n in ref:
        assert torch.equal(ev[n], ref[n])
    assert any(not torch.allclose(tr[n], ref[n]) for n in ref)
    assert DropGrad(0.5)({"a": torch.ones(3)}, training=False)["a"].eq(1).all()


def test_dropgrad_linear_schedule_and_mask_in_the_graph():
    dg = DropGrad(0.2, "binary", "linear", ramp_iterations=100)
    assert dg.rate_at(0) == 0.0 and dg.rate_at(50) == pytest.approx(0.1) and dg.rate_at(500) == 0.2
    # second order: the mask multiplies the gradient inside the graph, so the meta-gradient
    # of a dropped element's update is exactly zero through the inner gradient path
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    torch.manual_seed(1)
    g = torch.autograd.grad((w ** 3).sum(), w, create_graph=True)[0]
    mask = dropgrad_noise(g, 0.5, "binary")
    w1 = w - 0.1 * g * mask
    d = torch.autograd.grad(w1.sum(), w)[0]
    expected = 1 - 0.1 * 6 * w.detach() * mask
    assert torch.allclose(d, expected)
    with pytest.raises(ValueError):
        DropGrad(1.0)


# ------------------------------------------------------------------ PCGrad / GradDrop
def test_pcgrad_two_tasks_removes_every_conflict():
    g = torch.Generator().manual_seed(0)
    conflicts = 0
    for _ in range(200):
        grads = torch.randn(2, 6, generator=g, dtype=torch.float64)
        conflicts += int(grads[0] @ grads[1] < 0)
        _, proj = pcgrad(grads, generator=g, return_projected=True)
        for i in range(2):
            for j in range(2):
                assert float(proj[i] @ grads[j]) >= -1e-12
    assert conflicts > 50  # the test exercised the projection


def test_pcgrad_many_tasks_no_negative_inner_products_and_no_op_without_conflict():
    g = torch.Generator().manual_seed(1)
    # tasks in pairs living in mutually orthogonal coordinate blocks (conflicting within a pair):
    # the projections cannot undo each other, so every projected/original pair ends >= 0
    conflicts = 0
    for _ in range(50):
        grads = torch.zeros(6, 12, dtype=torch.float64)
        for pair in range(3):
            block = slice(4 * pair, 4 * pair + 4)
            grads[2 * pair:2 * pair + 2, block] = torch.randn(2, 4, generator=g, dtype=torch.float64)
        conflicts += int((grads @ grads.T).min() < 0)
        _, proj = pcgrad(grads, generator=g, return_projected=True)
        assert float((proj @ grads.T).min()) >= -1e-12
    assert conflicts > 25
    positive = torch.rand(3, 5, generator=g, dtype=torch.float64)
    out, proj = pcgrad(positive, return_projected=True)
    assert torch.equal(proj, positive) and torch.allclose(out, positive.mean(0))


def test_graddrop_masks_follow_sign_purity():
    g = torch.Generator().manual_seed(0)
    grads = torch.randn(5, 20_000, generator=g, dtype=torch.float64)
    grads[:, :100] = grads[:, :100].abs()       # all positive: purity 1, all kept
    grads[:, 100:200] = -grads[:, 100:200].abs()  # all negative: purity 0, all kept
    out, masks = graddrop(grads, generator=g, return_masks=True)
    assert masks[:, :200].all()
    pos, neg = grads > 0, grads < 0
    kept_pos = (masks & pos).any(0)
    kept_neg = (masks & neg).any(0)
    assert not (kept_pos & kept_neg).any()           # one sign per element
    assert torch.equal(masks & pos, pos & kept_pos)  # ...and ALL gradients of that sign
    assert torch.equal(masks & neg, neg & kept_neg)
    purity = 0.5 * (1 + grads.sum(0) / grads.abs().sum(0))
    mixed = slice(200, None)  # the positive sign is chosen with probability P
    chose_pos = kept_pos[mixed].double()
    assert abs(float(chose_pos.mean() - purity[mixed].mean())) < 0.02
    high = purity[mixed] > 0.8
    assert float(chose_pos[high].mean()) > 0.8
    assert torch.allclose(out, (grads * masks).mean(0))


def test_outer_step_with_surgery_and_clamping_updates_parameters():
    for surgery in ("pcgrad", "graddrop"):
        model = mlp()
        learner = MetaLearner(model, MetaConfig(surgery=surgery, clamp=0.5))
        loss_fn = functional_loss(model, mse)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        losses = [learner.task_loss(loss_fn, *task(s))[0] for s in range(3)]
        stats = learner.outer_step(losses)
        assert stats["tasks"] == 3
        assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    clamped = clamp_grads({"a": torch.tensor([-20.0, 3.0, 20.0])}, 10)["a"]
    assert clamped.tolist() == [-10.0, 3.0, 10.0]


# ------------------------------------------------------------------ L2F
def test_identity_start_l2f_gamma_is_one_at_init_and_scale_learns():
    model = mlp()
    learner = MetaLearner(model, MetaConfig(l2f=L2FSettings(mode="identity", input="mean")))
    loss_fn = functional_loss(model, mse)
    support, query = task()
    fast, info = learner.adapt(None, loss_fn, support, steps=0)
    assert info["gamma"].shape == (4,)
    assert torch.equal(info["gamma"], torch.ones(4))
    for n, p in learner.start().items():
        assert torch.equal(fast[n], p)
    loss, _ = learner.task_loss(loss_fn, support, query)
    (g_scale,) = torch.autograd.grad(loss, [learner.attenuator.scale])
    assert float(g_scale.abs()) > 0  # s can move away from 0


def test_identity_l2f_has_no_dead_zone_below_zero():
    """A negative s attenuates like |s| and keeps its gradient: with 1 - s g, gamma sat at the clamp
    (exactly 1) and s never moved again."""
    model = mlp()
    learner = MetaLearner(model, MetaConfig(l2f=L2FSettings(mode="identity", input="mean")))
    loss_fn = functional_loss(model, mse)
    support, query = task()
    with torch.no_grad():
        learner.attenuator.scale.fill_(-0.3)
    _, info = learner.adapt(None, loss_fn, support, steps=0)
    assert bool((info["gamma"] < 1).all())
    with torch.no_grad():
        learner.attenuator.scale.fill_(0.3)
    _, mirrored = learner.adapt(None, loss_fn, support, steps=0)
    assert torch.equal(info["gamma"], mirrored["gamma"])
    learner.attenuator.scale.data.fill_(-0.3)
    loss, _ = learner.task_loss(loss_fn, support, query)
    (g_scale,) = torch.autograd.grad(loss, [learner.attenuator.scale])
    assert float(g_scale.abs()) > 0


def test_normalized_l2f_input_is_scale_free():
    """Two numbers per tensor, the same for a loss scaled by 1000 except the log-size shift."""
    from meta_learning import task_embedding

    model = mlp()
    params = dict(model.named_parameters())
    names = list(params)
    support, _ = task()
    loss_fn = functional_loss(model, mse)
    emb = task_embedding(loss_fn, params, support, names, kind="normalized")
    big = task_embedding(lambda p, b: 1000 * loss_fn(p, b), params, support, names, kind="normalized")
    n = len(names)
    assert emb.shape == (2 * n,) and bool((emb[:n].abs() <= 1).all())
    assert torch.allclose(big[:n], emb[:n], atol=1e-5)
    assert torch.allclose(big[n:] - emb[n:], torch.full((n,), math.log(1000.0)), atol=1e-4)
    learner = MetaLearner(model, MetaConfig(l2f=L2FSettings(input="normalized")))
    assert learner.attenuator.mlp[0].in_features == 2 * n
    _, info = learner.adapt(None, loss_fn, support, steps=0)
    assert info["gamma"].shape == (n,)
    with pytest.raises(ValueError, match="L2F input"):
        MetaConfig(l2f=L2FSettings(input="raw")).validate()


def test_sigmoid_l2f_attenuates_each_tensor_by_its_gamma():
    model = mlp()
    learner = MetaLearner(model, MetaConfig(l2f=SEED_PAPER_L2F))
    loss_fn = functional_loss(model, mse)
    support, _ = task()
    fast, info = learner.adapt(None, loss_fn, support, steps=0)
    gamma = info["gamma"]
    assert ((gamma > 0) & (gamma < 1)).all()
    for i, (n, p) in enumerate(learner.start().items()):
        assert torch.allclose(fast[n], gamma[i] * p)


def test_l2f_embedding_is_mean_gradient_at_unattenuated_start_detached_by_default():
    model = mlp()
    loss_fn = functional_loss(model, mse)
    support, _ = task()
    seen = []
    for mode in ("detached", "differentiable"):
        learner = MetaLearner(model, MetaConfig(l2f=replace(SEED_PAPER_L2F, embedding=mode)))
        att = learner.attenuator
        hook = att.mlp[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
        learner.adapt(None, loss_fn, support, steps=1)
        hook.remove()
    grads = torch.autograd.grad(loss_fn(dict(model.named_parameters()), support), list(model.parameters()))
    expected = torch.stack([g.mean() for g in grads])
    assert torch.allclose(seen[0], expected) and torch.allclose(seen[1], expected)
    assert not seen[0].requires_grad and seen[1].requires_grad


def test_attenuator_sizes():
    att = Attenuator(6)
    assert [tuple(m.weight.shape) for m in att.mlp if isinstance(m, nn.Linear)] == [(6, 6), (6, 6)]
    assert Attenuator(6)(torch.zeros(6)).shape == (6,)
    with pytest.raises(ValueError):
        Attenuator(3, mode="tanh")


# ------------------------------------------------------------------ Meta-SGD
def test_meta_sgd_elementwise_rates_have_parameter_shapes_and_learn():
    model = mlp()
    learner = MetaLearner(model, MetaConfig(lr_mode="elementwise", learn_lr=True, inner_lr=0.02,
                                            lr_outer_lr=1e-2))
    rates = learner.inner_lr.rates()
    for n, p in model.named_parameters():
        assert rates[n].shape == p.shape and torch.all(rates[n] == 0.02)
    groups = {g["name"]: g["lr"] for g in learner.optimizer.param_groups}
    assert groups == {"start": 1e-3, "inner_lr": 1e-2}
    loss_fn = functional_loss(model, mse)
    learner.outer_step([learner.task_loss(loss_fn, *task(s))[0] for s in range(2)])
    assert any(not torch.all(r == 0.02) for r in learner.inner_lr.rates().values())


def test_lr_modes_scalar_per_tensor_fixed():
    shapes = {"a": (2, 3), "b": (3,)}
    scalar = InnerLR(shapes, "scalar", 0.1)
    assert scalar.rates()["a"].shape == () and scalar.rates()["a"] is scalar.rates()["b"]
    assert list(scalar.parameters()) == []  # fixed rates are buffers
    per = InnerLR(shapes, "per_tensor", 0.1, learn=True)
    assert len(list(per.parameters())) == 2 and per.rates()["b"].shape == ()
    with pytest.raises(ValueError):
        InnerLR(shapes, "diagonal")


def test_freeze_excludes_tensors_from_meta_updates():
    model = mlp()
    learner = MetaLearner(model, MetaConfig(freeze=["0.*"]))
    loss_fn = functional_loss(model, mse)
    w0 = model[0].weight.detach().clone()
    w2 = model[2].weight.detach().clone()
    learner.outer_step([learner.task_loss(loss_fn, *task())[0]])
    assert torch.equal(model[0].weight, w0) and not torch.equal(model[2].weight, w2)
    learner.freeze(None)
    learner.outer_step([learner.task_loss(loss_fn, *task())[0]])
    assert not torch.equal(model[0].weight, w0)


# ------------------------------------------------------------------ l2 meta-regularisation
def test_eq_c_lambdas_and_table_b_variants():
    gamma = {"w1": 0.5, "w2": 0.25, "b": 1.0}
    lam = layerwise_lambdas(gamma, 5e-4, "eqc")
    assert lam == pytest.approx({"w1": 1e-3, "w2": 2e-3, "b": 5e-4})
    for variant, value in (("mean", 3.5e-3 / 3), ("min", 5e-4), ("max", 2e-3)):
        assert layerwise_lambdas(gamma, 5e-4, variant) == pytest.approx({n: value for n in gamma})
    assert layerwise_lambdas({"z": 0.0}, 1.0)["z"] == pytest.approx(1000.0)  # floored gamma
    params = {"w1": torch.ones(2), "w2": torch.full((2,), 2.0)}
    out = l2_meta_grads(params, {"w1": torch.zeros(2), "w2": torch.ones(2)}, {"w1": 0.1, "w2": 0.5})
    assert torch.allclose(out["w1"], torch.full((2,), 0.1)) and torch.allclose(out["w2"], torch.full((2,), 2.0))


def test_learner_l2_meta_reg_adds_lambda_theta_to_the_meta_gradient():
    model = mlp()
    gamma = {"0.weight": 0.1, "0.bias": 1.0, "2.weight": 0.5, "2.bias": 1.0}
    cfg = dict(l2_meta_reg="eqc", l2_gamma=gamma, l2_lambda0=0.01, outer_lr=1e-3)
    learner = MetaLearner(model, MetaConfig(**cfg))
    assert learner.lambdas["0.weight"] == pytest.approx(0.1)
    # compare the gradient Adam sees with and without the regulariser
    loss_fn = functional_loss(model, mse)
    seen = {}
    orig_step = learner.optimizer.step

    def spy():
        seen.update({n: p.grad.clone() for n, p in learner.model.named_parameters()})
        return orig_step()
    learner.optimizer.step = spy
    w = model[0].weight.detach().clone()
    loss, _ = learner.task_loss(loss_fn, *task())
    plain = torch.autograd.grad(loss, [model[0].weight], retain_graph=True)[0]
    learner.outer_step([loss])
    assert torch.allclose(seen["0.weight"], plain + 0.1 * w, atol=1e-6)


def test_vmapped_per_task_meta_gradients_equal_separate_backward_passes():
    torch.manual_seed(0)
    model = mlp()
    learner = MetaLearner(model, MetaConfig(l2f=SEED_PAPER_L2F, lr_mode="per_tensor", learn_lr=True, freeze=["0.bias"]))
    loss_fn = functional_loss(model, mse)
    tasks = [task(s) for s in range(3)]
    support = tuple(torch.stack([t[0][i] for t in tasks]) for i in range(2))
    query = tuple(torch.stack([t[1][i] for t in tasks]) for i in range(2))
    losses, grads, gamma = learner.meta_batch_grads(loss_fn, support, query)
    assert "model.0.bias" not in grads and gamma.shape == (3, 4)
    ref = learner.per_task_grads([learner.task_loss(loss_fn, *t)[0] for t in tasks])
    assert set(ref) == set(grads)
    for n in ref:
        assert torch.allclose(grads[n], ref[n], atol=1e-5), n


def test_backward_task_accumulation_equals_outer_step_on_losses():
    loss_fn = None
    results = []
    for accumulate in (False, True):
        model = mlp()
        loss_fn = functional_loss(model, mse)
        learner = MetaLearner(model, MetaConfig(inner_steps=2))
        losses = [learner.task_loss(loss_fn, *task(s))[0] for s in range(3)]
        if accumulate:
            for loss in losses:
                learner.backward_task(loss)
            stats = learner.outer_step()
        else:
            stats = learner.outer_step(losses)
        results.append(({n: p.detach().clone() for n, p in model.named_parameters()}, stats["loss"]))
    (a, la), (b, lb) = results
    assert la == pytest.approx(lb)
    for n in a:
        assert torch.allclose(a[n], b[n], atol=1e-7)
    with pytest.raises(ValueError):
        MetaLearner(mlp()).outer_step()
