"""Meta-RL building blocks: baseline, returns/GAE, Gaussian formulas, conjugate gradient, TRPO,
and the VPG inner step going through MetaLearner.adapt."""

import pytest
import torch

from meta_learning import MetaConfig, MetaLearner
from meta_learning.tasks.rl import (
    GaussianMLPPolicy,
    TRPOConfig,
    baseline_features,
    conjugate_gradient,
    discounted_returns,
    fit_linear_baseline,
    gae,
    gaussian_kl,
    gaussian_log_prob,
    normalize,
    trpo_step,
    vpg_loss,
)


def test_linear_baseline_fits_data_a_linear_model_explains_exactly():
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(3, 4, 25, 2, generator=g)
    feats = baseline_features(obs)
    assert feats.shape == (3, 4, 25, 8)
    t = torch.arange(25) / 100.0
    torch.testing.assert_close(feats[1, 2, :, 4], t)
    torch.testing.assert_close(feats[1, 2, :, 2:4], obs[1, 2] ** 2)
    w = torch.randn(3, 8, generator=g).double()   # one linear model per task
    returns = torch.einsum("tnhk,tk->tnh", feats.double(), w).float()
    fitted = fit_linear_baseline(obs, returns, reg=1e-12)
    torch.testing.assert_close(fitted, returns, atol=1e-4, rtol=1e-4)
    # per task: task 0's data does not leak into task 1's fit
    other = returns.clone()
    other[0] = 5.0
    torch.testing.assert_close(fit_linear_baseline(obs, other, reg=1e-12)[1], returns[1], atol=1e-4, rtol=1e-4)


def test_returns_and_gae_against_a_hand_computation():
    r = torch.tensor([[1.0, 2.0, 3.0]])
    v = torch.tensor([[0.5, 1.0, -1.0]])
    g, lam = 0.9, 0.5
    torch.testing.assert_close(discounted_returns(r, g), torch.tensor([[1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3.0]]))
    d0, d1, d2 = 1 + g * 1.0 - 0.5, 2 + g * -1.0 - 1.0, 3 + 0.0 - -1.0
    want = torch.tensor([[d0 + g * lam * d1 + (g * lam) ** 2 * d2, d1 + g * lam * d2, d2]])
    torch.testing.assert_close(gae(r, v, g, lam), want)
    # lambda = 1: GAE = discounted return - value
    torch.testing.assert_close(gae(r, v, g, 1.0), discounted_returns(r, g) - v)
    x = normalize(torch.randn(2, 5, 7) * 3 + 4, dims=(1, 2))
    torch.testing.assert_close(x.mean((1, 2)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std((1, 2), unbiased=False), torch.ones(2), atol=1e-4, rtol=0)


def test_gaussian_log_prob_and_kl_match_torch_distributions():
    g = torch.Generator().manual_seed(1)
    m0, m1, a = (torch.randn(5, 3, generator=g) for _ in range(3))
    s0, s1 = torch.randn(3, generator=g) * 0.3, torch.randn(3, generator=g) * 0.3
    d0 = torch.distributions.Normal(m0, s0.exp())
    d1 = torch.distributions.Normal(m1, s1.exp())
    torch.testing.assert_close(gaussian_log_prob(m0, s0.expand(5, 3), a), d0.log_prob(a).sum(-1))
    torch.testing.assert_close(gaussian_kl(m0, s0.expand(5, 3), m1, s1.expand(5, 3)),
                               torch.distributions.kl_divergence(d0, d1).sum(-1))


def test_conjugate_gradient_solves_an_spd_system():
    g = torch.Generator().manual_seed(2)
    q = torch.randn(12, 12, generator=g, dtype=torch.float64)
    a = q @ q.T + 0.5 * torch.eye(12, dtype=torch.float64)
    b = torch.randn(12, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=40)
    torch.testing.assert_close(a @ x, b, atol=1e-8, rtol=0)
    assert torch.linalg.norm(a @ conjugate_gradient(lambda v: a @ v, b, iters=3) - b) > 1e-3


def _policy_objective(seed=3, n=400):
    """A one-step Gaussian bandit: the surrogate of TRPO and the KL to the policy at params0."""
    torch.manual_seed(seed)
    policy = GaussianMLPPolicy(2, 2, hidden=(8,))
    obs = torch.randn(n, 2)
    with torch.no_grad():
        mean0, log_std0 = policy(obs)
        actions = mean0 + log_std0.exp() * torch.randn(n, 2)
    adv = normalize(-(actions - 1.0).pow(2).sum(-1), dims=(0,))
    logp0 = gaussian_log_prob(mean0, log_std0, actions)
    from torch.func import functional_call

    def objective(p):
        mean, log_std = functional_call(policy, dict(p), (obs,))
        surr = -(torch.exp(gaussian_log_prob(mean, log_std, actions) - logp0) * adv).mean()
        return surr, gaussian_kl(mean0, log_std0, mean, log_std).mean()

    return policy, objective


@pytest.mark.parametrize("max_kl", [0.01, 0.001])
def test_trpo_step_improves_the_surrogate_within_max_kl(max_kl):
    policy, objective = _policy_objective()
    params = {n: p.detach() for n, p in policy.named_parameters()}
    with torch.no_grad():
        loss0, kl0 = objective(params)
    assert float(kl0) == pytest.approx(0.0, abs=1e-7)
    step, stats = trpo_step(params, objective, TRPOConfig(max_kl=max_kl))
    assert stats["accepted"] == 1.0
    new = {n: params[n] + step[n] for n in params}
    with torch.no_grad():
        loss1, kl1 = objective(new)
    assert float(loss1) < float(loss0)
    assert 0 < float(kl1) <= max_kl
    assert float(kl1) > 0.3 * max_kl     # the step goes out towards the trust-region boundary


def test_trpo_step_rejects_when_nothing_improves():
    policy, objective = _policy_objective()
    params = {n: p.detach() for n, p in policy.named_parameters()}

    def worse_everywhere(p):   # the surrogate's gradient points uphill of what the line search sees
        loss, kl = objective(p)
        if torch.is_grad_enabled():
            return loss, kl
        return loss.detach() * 0 + 1e9, kl
    step, stats = trpo_step(params, worse_everywhere)
    assert stats["accepted"] == 0.0 and all(torch.all(s == 0) for s in step.values())


def test_vpg_inner_step_goes_through_metalearner_adapt():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, hidden=(16, 16))
    learner = MetaLearner(policy, MetaConfig(inner_steps=1, inner_lr=0.1))
    loss_fn = vpg_loss(policy)
    obs, actions, adv = torch.randn(4, 10, 2), torch.randn(4, 10, 2), torch.randn(4, 10)
    fast, _ = learner.adapt(None, loss_fn, (obs, actions, adv))
    start = dict(policy.named_parameters())
    loss = loss_fn(start, (obs, actions, adv))
    manual = -(gaussian_log_prob(*policy(obs), actions) * adv).mean()
    torch.testing.assert_close(loss, manual)
    grads = torch.autograd.grad(loss, list(start.values()))
    for (n, p), g in zip(start.items(), grads):
        torch.testing.assert_close(fast[n], p - 0.1 * g)
    # second order: the adapted params still depend on the start through the inner gradient
    h = torch.autograd.grad(fast["mean.0.weight"].sum(), policy.mean[0].weight)[0]
    assert not torch.allclose(h, torch.ones_like(h))
