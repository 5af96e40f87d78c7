"""The 4-conv's fused batch norm -> LeakyReLU -> max-pool block (classification/fused.py): the same
outputs, gradients and second-order meta-gradients as the torch layers run one by one."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from meta_learning import MetaConfig, MetaLearner, functional_loss
from meta_learning.tasks.classification.backbones import Conv4
from meta_learning.tasks.classification.fused import bn_lrelu_pool, conv2d

CL = torch.channels_last


def _layers(x, w, b, slope):
    return nn.functional.max_pool2d(nn.functional.leaky_relu(
        nn.functional.batch_norm(x, None, None, w, b, True, 0.0, 1e-5), slope), 2)


def _rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL])
def test_block_gradcheck_and_gradgradcheck(layout):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 7, 6, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    w = torch.tensor([1.3, -0.7, 0.4, -2.0], dtype=torch.float64, requires_grad=True)  # both signs
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    out = bn_lrelu_pool(x, w, b, 1e-5, 0.2)
    assert out.shape == (3, 4, 3, 3) and out.is_contiguous(memory_format=layout)
    assert _rel(out, _layers(x, w, b, 0.2)) < 1e-12
    f = lambda x, w, b: bn_lrelu_pool(x, w, b, 1e-5, 0.2)   # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


@pytest.mark.parametrize("input_grad", [True, False])
def test_conv_gradcheck_and_gradgradcheck(input_grad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64).contiguous(memory_format=CL).requires_grad_(input_grad)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert _rel(conv2d(x, w), nn.functional.conv2d(x, w, padding=1)) < 1e-13
    g = torch.autograd.grad(conv2d(x, w).square().sum(), w)[0]
    assert g.is_contiguous() and _rel(g, torch.autograd.grad(nn.functional.conv2d(x, w, padding=1).square().sum(), w)[0]) < 1e-12
    f = lambda x, w: conv2d(x, w, 1)   # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL])
def test_consumed_input_gives_the_same_gradients_and_a_second_backward_fails_loudly(layout):
    torch.manual_seed(0)
    w = torch.tensor([1.3, -0.7, 0.4, -2.0], dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    src = torch.randn(3, 4, 8, 6, dtype=torch.float64).contiguous(memory_format=layout)
    grads = {}
    for consume in (False, True):
        x = src.clone().requires_grad_()
        mid = x * 1.5   # a temporary nobody else holds, as a convolution's output
        loss = (bn_lrelu_pool(mid, w, b, 1e-5, 0.2, consume_input=consume) * torch.arange(12.0, dtype=torch.float64).view(1, 1, 4, 3)).sum()
        grads[consume] = torch.autograd.grad(loss, (x, w, b), retain_graph=True)
        if consume:   # the saved input became the gradient: a rerun must not silently use it
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                torch.autograd.grad(loss, (x, w, b))
        else:
            torch.autograd.grad(loss, (x, w, b))
    for a, r in zip(grads[True], grads[False]):
        assert _rel(a, r) < 1e-13


def test_consumed_input_is_kept_once_a_differentiable_backward_saved_it():
    # an inner step (create_graph) saves x in its graph; a first-order backward through the same
    # block before that graph is used must not overwrite x, and the second-order result is unchanged
    torch.manual_seed(0)
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64).contiguous(memory_format=CL)
    w = torch.randn(3, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    g, b = torch.rand(3, dtype=torch.float64) + 0.5, torch.zeros(3, dtype=torch.float64)
    results = []
    for consume in (False, True):
        out = bn_lrelu_pool(conv2d(x, w), g, b, 1e-5, 0.1, consume_input=consume)
        (gw,) = torch.autograd.grad(out.square().sum(), w, create_graph=True)
        first = torch.autograd.grad(out.sum(), w, retain_graph=True)[0]
        second = torch.autograd.grad(gw.square().sum(), w)[0]
        results.append((first, second))
    for a, r in zip(results[1], results[0]):
        assert _rel(a, r) < 1e-13


def test_block_ties_go_to_the_first_element_like_max_pool():
    # constant regions (glyph backgrounds) tie exactly: the gradient must land where nn.MaxPool2d puts it
    x = torch.zeros(2, 2, 4, 4, dtype=torch.float64)
    x[:, :, :2, :2] = 1.0
    x[0, 1, 2:, 2:] = torch.tensor([[3.0, 3.0], [3.0, 1.0]])
    x.requires_grad_()
    w = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 2, 2, 2, dtype=torch.float64)
    got = torch.autograd.grad(bn_lrelu_pool(x, w, b, 1e-5, 0.1), (x, w, b), g)
    ref = torch.autograd.grad(_layers(x, w, b, 0.1), (x, w, b), g)
    assert all(_rel(a, r) < 1e-12 for a, r in zip(got, ref))


def _pair(dtype, image=28, filters=8, slope=0.2, seed=0):
    torch.manual_seed(seed)
    fused = Conv4(5, 3, image, filters, slope).to(dtype)
    with torch.no_grad():   # some negative batch-norm scales: the min-pool branch
        for i in (1, 9):
            fused.features[i].weight.mul_(torch.where(torch.arange(filters) % 3 == 0, -1.0, 1.0).to(dtype))
    plain = Conv4(5, 3, image, filters, slope, fused=False).to(dtype)
    plain.load_state_dict(fused.state_dict())
    return fused, plain


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-11), (torch.float32, 1e-5)])
def test_conv4_fused_outputs_and_gradients_equal_the_layers(dtype, tol):
    fused, plain = _pair(dtype)
    x = torch.randn(6, 3, 28, 28, dtype=dtype)
    x[:, :, :12, :12] = 0.5                                   # a constant patch: exact ties
    out, ref = fused(x), plain(x)
    assert out.shape == (6, 5) and _rel(out, ref) < tol
    g = torch.autograd.grad(out.square().sum(), list(fused.parameters()))
    r = torch.autograd.grad(ref.square().sum(), list(plain.parameters()))
    assert all(_rel(a, b) < tol for a, b in zip(g, r))
    with torch.no_grad():
        assert _rel(fused(x.contiguous(memory_format=CL)), ref) < tol
    assert _rel(fused(x[:, :, :, :27]), plain(x[:, :, :, :27])) < tol   # odd sizes: the pool floors


def _meta_update(model, dtype, tasks=2, steps=3):
    learner = MetaLearner(model, MetaConfig(inner_steps=steps, inner_lr=0.1, outer_lr=1e-3))
    loss_fn = functional_loss(model, nn.functional.cross_entropy)
    gen = torch.Generator().manual_seed(1)
    for _ in range(tasks):
        xs = torch.randn(5, 3, 28, 28, generator=gen, dtype=dtype)
        xq = torch.randn(15, 3, 28, 28, generator=gen, dtype=dtype)
        learner.backward_task(learner.task_loss(loss_fn, (xs, torch.arange(5)),
                                                (xq, torch.arange(5).repeat(3)))[0])
    assert all(g.is_contiguous() for row in learner._pending for g in row.values())
    grads = {n: torch.stack([row[n] for row in learner._pending]).mean(0) for n in learner._pending[0]}
    learner.outer_step()
    return grads, {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_engine_second_order_meta_gradients_equal_with_the_fused_conv4(dtype, tol):
    fused, plain = _pair(dtype)
    g_fused, w_fused = _meta_update(fused, dtype)
    g_plain, w_plain = _meta_update(plain, dtype)
    assert g_fused.keys() == g_plain.keys()
    assert max(_rel(g_fused[n], g_plain[n]) for n in g_fused) < tol
    assert max(_rel(w_fused[n], w_plain[n]) for n in w_fused) < tol
    assert all(p.is_contiguous() for p in fused.parameters())


def test_conv4_keeps_its_state_dict_keys_and_falls_back_where_it_must():
    m = Conv4(5, 3, 84)
    keys = [k for i in (0, 4, 8, 12) for k in (f"features.{i}.weight", f"features.{i + 1}.weight",
                                                 f"features.{i + 1}.bias")]
    assert list(m.state_dict()) == keys + ["classifier.weight", "classifier.bias"]
    x = torch.randn(2, 3, 84, 84)
    assert m._fusable(x) is not None and Conv4(5, 3, 84, fused=False)(x).shape == (2, 5)
    assert m._fusable(x.half()) is None
    m.features[1] = nn.BatchNorm2d(48)                         # running statistics: the layers decide
    assert m._fusable(x) is None


def test_vmap_meta_batch_falls_back_to_the_layers():
    fused, plain = _pair(torch.float64, image=16, filters=4)
    out = []
    for model in (fused, plain):
        learner = MetaLearner(model, MetaConfig(inner_steps=1, inner_lr=0.1))
        loss_fn = functional_loss(model, nn.functional.cross_entropy)
        gen = torch.Generator().manual_seed(2)
        xs, xq = (torch.randn(2, 5, 3, 16, 16, generator=gen, dtype=torch.float64) for _ in range(2))
        ys = torch.arange(5).repeat(2, 1)
        out.append(learner.meta_batch_losses(loss_fn, (xs, ys), (xq, ys))[0])
    assert _rel(out[0], out[1]) < 1e-12
