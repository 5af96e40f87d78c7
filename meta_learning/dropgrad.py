"""DropGrad (Tseng et al., 2020): multiplicative noise on every inner-loop gradient element.

Binary: ``m = 1[u > p] / (1 - p)``; Gaussian: ``m ~ N(1, p / (1 - p))``.  Both have mean 1, so the
expected inner step is unchanged; the noise regularises the meta-learned start.  Applied at every
inner step during meta-training only, never at meta-validation/test.  The mask is an ordinary
tensor factor in the graph, so second-order meta-gradients differentiate through ``m * g``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from torch import Tensor

from .functional import Params

__all__ = ["DropGrad", "dropgrad_noise"]


def dropgrad_noise(like: Tensor, rate: float, kind: str = "binary",
                   generator: Optional[torch.Generator] = None) -> Tensor:
    """A noise tensor shaped like ``like`` with mean 1 and variance ``p / (1 - p)``."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"DropGrad rate must be in [0, 1), got {rate}")
    if rate == 0.0:
        return torch.ones_like(like)
    if kind == "binary":
        u = torch.rand(like.shape, dtype=like.dtype, device=like.device, generator=generator) \
            if generator is not None else torch.rand_like(like)
        return (u > rate).to(like.dtype) / (1.0 - rate)
    if kind == "gaussian":
        sigma = (rate / (1.0 - rate)) ** 0.5
        z = torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=generator) \
            if generator is not None else torch.randn_like(like)
        return 1.0 + sigma * z
    raise ValueError(f"DropGrad kind must be 'binary' or 'gaussian', got {kind!r}")


@dataclass
class DropGrad:
    """Configured DropGrad.  ``schedule="linear"`` ramps the rate from 0 to ``rate`` over
    ``ramp_iterations`` meta-iterations (then constant); ``"constant"`` uses ``rate`` throughout."""

    rate: float = 0.1
    kind: str = "binary"
    schedule: str = "constant"
    ramp_iterations: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("binary", "gaussian"):
            raise ValueError(f"DropGrad kind must be 'binary' or 'gaussian', got {self.kind!r}")
        if self.schedule not in ("constant", "linear"):
            raise ValueError(f"DropGrad schedule must be 'constant' or 'linear', got {self.schedule!r}")
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"DropGrad rate must be in [0, 1), got {self.rate}")

    def rate_at(self, iteration: Optional[int]) -> float:
        if self.schedule == "constant" or iteration is None or self.ramp_iterations <= 0:
            return self.rate
        return self.rate * min(1.0, iteration / self.ramp_iterations)

    def __call__(self, grads: Mapping[str, Tensor], training: bool,
                 iteration: Optional[int] = None) -> Params:
        """Noisy gradients when training, the gradients unchanged otherwise."""
        if not training:
            return dict(grads)
        p = self.rate_at(iteration)
        return {n: g * dropgrad_noise(g, p, self.kind) for n, g in grads.items()}
