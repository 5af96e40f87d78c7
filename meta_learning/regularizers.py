"""Layer-wise l2 meta-regularisation (L2F appendix B, Eq. B and C).

Eq. B adds ``lambda_j * theta_j`` to the meta-gradient of each tensor j of the start; Eq. C sets
``lambda_j = lambda_0 / gamma_j`` from attenuation factors gamma_j (a learned L2F run's mean gamma
per tensor), so strongly attenuated layers are strongly regularised.  Table B's variants replace
every lambda_j by the mean, min or max of the Eq. C values.
"""
from __future__ import annotations

from typing import Dict, Mapping, Union

from torch import Tensor

__all__ = ["L2_VARIANTS", "layerwise_lambdas", "l2_meta_grads"]

L2_VARIANTS = ("eqc", "mean", "min", "max")


def layerwise_lambdas(gamma: Mapping[str, float], lambda0: float = 5e-4,
                      variant: str = "eqc", min_gamma: float = 1e-3) -> Dict[str, float]:
    """Eq. C lambdas (or their mean/min/max for every tensor).  Gammas are floored at
    ``min_gamma`` so a fully attenuated tensor does not get an infinite lambda."""
    if variant not in L2_VARIANTS:
        raise ValueError(f"l2 meta-regularisation variant must be one of {L2_VARIANTS}, got {variant!r}")
    if not gamma:
        raise ValueError("layerwise_lambdas needs at least one gamma")
    lam = {n: lambda0 / max(float(g), min_gamma) for n, g in gamma.items()}
    if variant == "eqc":
        return lam
    vals = list(lam.values())
    agg = {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals)}[variant]
    return {n: agg for n in lam}


def l2_meta_grads(params: Mapping[str, Tensor], grads: Mapping[str, Tensor],
                  lambdas: Mapping[str, Union[float, Tensor]]) -> Dict[str, Tensor]:
    """Eq. B: ``grad_j + lambda_j * theta_j`` for tensors with a lambda, unchanged otherwise."""
    out = dict(grads)
    for n, lam in lambdas.items():
        if n in out and out[n] is not None:
            out[n] = out[n] + lam * params[n].detach()
    return out
