"""Correctness of the functional core and the learner: second-order meta-gradients against finite
differences, the exact first-order gap, eager vs vmap agreement, selection, batch norm."""
import pytest
import torch
from torch import nn

from meta_learning import (
    MetaConfig,
    MetaLearner,
    functional_loss,
    head_names,
    inner_loop,
    non_norm_names,
    prepare_batch_norm,
    select_names,
)
from meta_learning.l2f import SEED_PAPER_L2F


def tiny_model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()


def tiny_data():
    g = torch.Generator().manual_seed(11)
    xs = torch.randn(6, 2, generator=g, dtype=torch.float64)
    ys = torch.randn(6, 1, generator=g, dtype=torch.float64)
    xq = torch.randn(7, 2, generator=g, dtype=torch.float64)
    yq = torch.randn(7, 1, generator=g, dtype=torch.float64)
    return (xs, ys), (xq, yq)


def mse(p, y):
    return ((p - y) ** 2).mean()


def flat(d, names):
    return torch.cat([d[n].reshape(-1) for n in names])


def unflat(vec, like):
    out, i = {}, 0
    for n, t in like.items():
        out[n] = vec[i:i + t.numel()].reshape(t.shape)
        i += t.numel()
    return out


def meta_objective(model, theta_vec, like, support, query, steps, lr):
    """Query loss after `steps` plain SGD steps, written independently of the engine."""
    loss_fn = functional_loss(model, mse)
    p = unflat(theta_vec, like)
    for _ in range(steps):
        g = torch.autograd.grad(loss_fn(p, support), list(p.values()), create_graph=True)
        p = {n: v - lr * gi for (n, v), gi in zip(p.items(), g)}
    return loss_fn(p, query)


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(steps):
    model = tiny_model()
    support, query = tiny_data()
    lr = 0.3  # large so the second-order term is not negligible
    learner = MetaLearner(model, MetaConfig(inner_steps=steps, inner_lr=lr))
    loss_fn = functional_loss(model, mse)
    fast, _ = learner.adapt(None, loss_fn, support)
    meta_loss = loss_fn(fast, query)
    names = list(learner.start())
    grads = torch.autograd.grad(meta_loss, [learner.start()[n] for n in names])
    analytic = torch.cat([g.reshape(-1) for g in grads])

    like = {n: p.detach() for n, p in learner.start().items()}
    theta = flat(like, names)
    eps = 1e-6
    numeric = torch.zeros_like(theta)
    for i in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[i] = eps
        with torch.enable_grad():
            fp = meta_objective(model, (theta + e).requires_grad_(), like, support, query, steps, lr)
            fm = meta_objective(model, (theta - e).requires_grad_(), like, support, query, steps, lr)
        numeric[i] = (fp - fm) / (2 * eps)
    assert torch.allclose(analytic, numeric, rtol=1e-6, atol=1e-8), (analytic - numeric).abs().max()


@pytest.mark.parametrize("steps", [1, 2])
def test_first_order_differs_exactly_by_the_dropped_hessian_term(steps):
    model = tiny_model()
    support, query = tiny_data()
    lr = 0.3
    loss_fn = functional_loss(model, mse)
    names = [n for n, _ in model.named_parameters()]
    like = {n: p.detach() for n, p in model.named_parameters()}

    def meta_grad(first_order):
        learner = MetaLearner(model, MetaConfig(inner_steps=steps, inner_lr=lr, first_order=first_order))
        fast, _ = learner.adapt(None, loss_fn, support)
        g = torch.autograd.grad(loss_fn(fast, query), [learner.start()[n] for n in names])
        return torch.cat([x.reshape(-1) for x in g])

    second, first = meta_grad(False), meta_grad(True)
    # explicit: d theta_K / d theta = prod_k (I - lr H_k), H_k the support Hessian at theta_k;
    # second order = J^T grad_q(theta_K), first order = grad_q(theta_K).
    theta = flat(like, names)
    f_support = lambda v: loss_fn(unflat(v, like), support)
    f_query = lambda v: loss_fn(unflat(v, like), query)
    path = [theta]
    for _ in range(steps):
        g = torch.autograd.functional.jacobian(f_support, path[-1])
        path.append(path[-1] - lr * g)
    gq = torch.autograd.functional.jacobian(f_query, path[-1])
    eye = torch.eye(theta.numel(), dtype=theta.dtype)
    jac = eye
    for k in range(steps):
        jac = (eye - lr * torch.autograd.functional.hessian(f_support, path[k])) @ jac
    dropped = jac.T @ gq - gq
    assert torch.allclose(first, gq, atol=1e-10)
    assert dropped.abs().max() > 1e-3  # the term is not trivially zero here
    assert torch.allclose(second - first, dropped, rtol=1e-8, atol=1e-10)


def sinusoid_batch(t=4, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    amp = 0.1 + 4.9 * torch.rand(t, 1, 1, generator=g)
    ph = torch.pi * torch.rand(t, 1, 1, generator=g)
    x = torch.rand(t, 2 * k, 1, generator=g) * 10 - 5
    y = amp * torch.sin(x + ph)
    return (x[:, :k], y[:, :k]), (x[:, k:], y[:, k:])


@pytest.mark.parametrize("kw", [{}, {"l2f": SEED_PAPER_L2F}, {"lr_mode": "elementwise", "learn_lr": True},
                                {"first_order": True, "inner_steps": 2}])
def test_vmap_meta_batch_equals_python_loop(kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1))
    loss_fn = functional_loss(model, mse)
    learner = MetaLearner(model, MetaConfig(**kw))
    support, query = sinusoid_batch()
    params = dict(learner.named_parameters())
    losses, _ = learner.meta_batch_losses(loss_fn, support, query)
    gv = torch.autograd.grad(losses.mean(), list(params.values()))
    loop = []
    for i in range(4):
        loss, _ = learner.task_loss(loss_fn, (support[0][i], support[1][i]), (query[0][i], query[1][i]))
        loop.append(loss)
    gl = torch.autograd.grad(torch.stack(loop).mean(), list(params.values()))
    assert torch.allclose(losses.detach(), torch.stack(loop).detach(), atol=1e-6)
    for a, b in zip(gv, gl):
        assert torch.allclose(a, b, atol=1e-5)


def test_selection_all_head_patterns_and_typos():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
    names = [n for n, _ in model.named_parameters()]
    assert select_names(names, "all") == names
    assert head_names(model) == ["3.weight", "3.bias"]
    assert select_names(names, "head", model) == ["3.weight", "3.bias"]
    assert select_names(names, "no_norm", model) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert non_norm_names(model) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert select_names(names, ["0.*"]) == ["0.weight", "0.bias"]
    assert select_names(names, lambda n: n.endswith("bias")) == ["0.bias", "1.bias", "3.bias"]
    with pytest.raises(ValueError):
        select_names(names, "fc*")


def test_head_only_adaptation_leaves_body_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1))
    learner = MetaLearner(model, MetaConfig(adapt="head", inner_steps=3, inner_lr=0.1))
    support, _ = sinusoid_batch(t=1)
    fast, _ = learner.adapt(None, functional_loss(model, mse), (support[0][0], support[1][0]))
    start = learner.start()
    assert fast["0.weight"] is start["0.weight"]
    assert not torch.equal(fast["2.weight"], start["2.weight"])


def conv_bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                         nn.LeakyReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


def test_batch_norm_model_transductive_meta_gradients_and_vmap():
    model = prepare_batch_norm(conv_bn_model())
    bn = model[1]
    assert bn.running_mean is None  # batch statistics only: nothing leaks between tasks
    loss_fn = functional_loss(model, nn.functional.cross_entropy)
    learner = MetaLearner(model, MetaConfig(inner_steps=2, inner_lr=0.05, adapt="no_norm", l2f=SEED_PAPER_L2F))
    assert learner.inner_names == ["0.weight", "5.weight", "5.bias"]
    g = torch.Generator().manual_seed(1)
    xs, xq = torch.randn(2, 5, 3, 8, 8, generator=g), torch.randn(2, 10, 3, 8, 8, generator=g)
    ys, yq = torch.arange(5).repeat(2, 1), torch.arange(5).repeat(2, 2)
    losses, gamma = learner.meta_batch_losses(loss_fn, (xs, ys), (xq, yq))
    assert losses.shape == (2,) and gamma.shape == (2, 3)
    eager = torch.stack([learner.task_loss(loss_fn, (xs[i], ys[i]), (xq[i], yq[i]))[0] for i in range(2)])
    assert torch.allclose(losses, eager, atol=1e-5)
    before = bn.weight.detach().clone()
    learner.outer_step(losses)
    assert not torch.equal(bn.weight, before)  # BN affine parameters are meta-learned


def test_batch_norm_in_eval_mode_with_running_stats_is_usable_without_vmap():
    model = conv_bn_model()  # running statistics kept; eager loop only
    model.eval()
    loss_fn = functional_loss(model, nn.functional.cross_entropy)
    learner = MetaLearner(model, MetaConfig(inner_steps=1))
    x, y = torch.randn(5, 3, 8, 8), torch.arange(5)
    fast, _ = learner.adapt(None, loss_fn, (x, y))
    torch.autograd.grad(loss_fn(fast, (x, y)), list(learner.start().values()))


def test_inner_loop_path_and_loss_fn_step_keyword():
    seen = []

    def loss_fn(p, batch, step=None):
        seen.append(step)
        return ((p["w"] * batch) ** 2).sum()

    w = torch.tensor([1.0, -2.0], requires_grad=True)
    path = []
    out, losses = inner_loop(loss_fn, {"w": w}, torch.ones(2), 3, 0.1, path=path)
    assert seen == [0, 1, 2] and len(path) == 4 and len(losses) == 3
    assert torch.allclose(out["w"], w * 0.8 ** 3)
