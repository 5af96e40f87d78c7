"""Policy-gradient losses in the engine's ``loss_fn(params, batch) -> scalar`` form."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from torch import Tensor, nn

from .policy import gaussian_log_prob, policy_forward

__all__ = ["vpg_loss"]


def vpg_loss(policy: nn.Module) -> Callable[[Mapping[str, Tensor], Any], Tensor]:
    """REINFORCE with a baseline: ``-mean(log pi(a|o) * A)`` over one task's (N, H) samples;
    ``batch = (obs, actions, advantages)``.  This is what ``MetaLearner.adapt`` descends."""
    def loss_fn(params: Mapping[str, Tensor], batch: Any) -> Tensor:
        obs, actions, adv = batch
        mean, log_std = policy_forward(policy, params, obs)
        return -(gaussian_log_prob(mean, log_std, actions) * adv).mean()

    return loss_fn
