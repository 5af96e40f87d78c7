"""Engine hooks meta-RL needs, tested on their own: a custom outer update (``apply_update``),
continuing an adaptation without re-attenuating (``attenuate=False``), and a per-call order."""
import pytest
import torch
from torch import nn

from meta_learning import MetaConfig, MetaLearner, functional_loss
from meta_learning.l2f import SEED_PAPER_L2F


def _learner(**kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 1))
    return MetaLearner(model, MetaConfig(**kw)), functional_loss(model, nn.functional.mse_loss)


def test_apply_update_adds_the_step_to_every_trainable_and_counts_the_iteration():
    learner, _ = _learner(l2f=SEED_PAPER_L2F, learn_lr=True, lr_mode="per_tensor")
    before = {n: p.detach().clone() for n, p in learner.trainable().items()}
    assert any(n.startswith("attenuator.") for n in before) and any(n.startswith("inner_lr.") for n in before)
    deltas = {n: torch.full_like(p, 0.25) for n, p in before.items()}
    learner.apply_update(deltas)
    for n, p in learner.trainable().items():
        torch.testing.assert_close(p.detach(), before[n] + 0.25)
    assert int(learner.iteration) == 1
    with pytest.raises(ValueError, match="not trainable"):
        learner.apply_update({"nonsense": torch.zeros(1)})
    with pytest.raises(ValueError, match="shape"):
        learner.apply_update({"model.0.bias": torch.zeros(3)})


def test_apply_update_leaves_frozen_tensors_alone():
    learner, _ = _learner(freeze=["0.*"])
    with pytest.raises(ValueError, match="not trainable"):
        learner.apply_update({"model.0.weight": torch.zeros(8, 1)})


def test_attenuate_false_continues_without_l2f_and_first_order_overrides_the_order():
    learner, loss_fn = _learner(l2f=SEED_PAPER_L2F, inner_lr=0.1)
    x = torch.linspace(-1, 1, 10).unsqueeze(1)
    batch = (x, x ** 2)
    fast, info = learner.adapt(None, loss_fn, batch, steps=1)
    assert info["gamma"] is not None
    cont, info2 = learner.adapt(fast, loss_fn, batch, steps=1, attenuate=False)
    assert info2["gamma"] is None
    again, _ = learner.adapt(fast, loss_fn, batch, steps=1)    # re-attenuated: a different point
    plain, _ = MetaLearner(learner.model, MetaConfig(inner_lr=0.1)).adapt(fast, loss_fn, batch, steps=1)
    for n in fast:
        torch.testing.assert_close(cont[n], plain[n])
    assert any(not torch.allclose(again[n], cont[n]) for n in fast)
    # first order for this call: the adapted weight's Jacobian w.r.t. the start is gamma * I only
    learner2, loss2 = _learner(inner_lr=0.5)
    w = learner2.model[0].weight
    fo, _ = learner2.adapt(None, loss2, batch, steps=1, first_order=True)
    so, _ = learner2.adapt(None, loss2, batch, steps=1)
    g_fo = torch.autograd.grad(fo["0.weight"].sum(), w)[0]
    g_so = torch.autograd.grad(so["0.weight"].sum(), w)[0]
    torch.testing.assert_close(g_fo, torch.ones_like(w))
    assert not torch.allclose(g_so, torch.ones_like(w))
