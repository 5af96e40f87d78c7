"""The confidence interval every meta-learning result reports, in one place."""
from __future__ import annotations

import math
from typing import Any, Dict

import numpy as np

__all__ = ["mean_ci95"]


def mean_ci95(values: Any) -> Dict[str, float]:
    """``{"mean", "ci95"}`` of per-task values: the 95% CI half-width 1.96 std (n - 1) / sqrt(n),
    as the MAML-family papers report over their 600 test tasks (0 for a single value)."""
    v = np.asarray(values.detach().cpu().double() if hasattr(values, "detach") else values, dtype=np.float64)
    v = v.ravel()
    ci = 1.96 * float(v.std(ddof=1)) / math.sqrt(len(v)) if len(v) > 1 else 0.0
    return {"mean": float(v.mean()), "ci95": ci}
