"""The exact settings of every row of the seed's Tables A and B (L2F appendix), by name.

``metalearn classification --config NAME --root DIR --out OUT`` runs one row; explicit options
override the row's values.  Table A: MAML (the common baseline), +GradDrop, +PCGrad and +L2F on
miniImageNet and tieredImageNet, 5-way 1-shot and 5-shot, 4-conv, 84x84; 50,000 iterations on
miniImageNet and 125,000 on tieredImageNet; meta-batch 4 (1-shot) / 2 (5-shot); top-3 validation
checkpoints averaged on 600 test tasks.  Table B: miniImageNet 5-way 5-shot with layer-wise l2
meta-regularisation; its lambda_j come from a trained +L2F run, so these rows need ``--l2-gamma``
(that run's results.json). The +L2F rows switch on ``l2f``, which these tasks run as the paper's
protocol, :data:`meta_learning.l2f.SEED_PAPER_L2F` (sigmoid gamma fed the mean gradients).
"""
from __future__ import annotations

from typing import Any, Dict

__all__ = ["CONFIGS", "needs_gamma"]

_BASE: Dict[str, Any] = {"ways": 5, "backbone": "conv4", "image_size": 84, "queries": 15, "inner_steps": 5,
                         "inner_lr": 0.01, "outer_lr": 1e-3, "clamp": 10.0, "eval_tasks": 600, "top_k": 3,
                         "val_every": 500, "val_tasks": 600}
_ITERATIONS = {"miniimagenet": 50_000, "tieredimagenet": 125_000}
_TABLE_A = {"maml": {}, "graddrop": {"surgery": "graddrop"}, "pcgrad": {"surgery": "pcgrad"},
            "l2f": {"l2f": True}}
_TABLE_B = {"eqc": "eqc", "mean": "mean", "min": "min", "max": "max"}


def _build() -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for dataset, iterations in _ITERATIONS.items():
        for shots in (1, 5):
            for method, extra in _TABLE_A.items():
                out[f"table-a/{dataset}-5way-{shots}shot-{method}"] = {
                    **_BASE, "dataset": dataset, "shots": shots, "iterations": iterations,
                    "meta_batch": 2 if shots == 5 else 4, **extra}
    for name, variant in _TABLE_B.items():
        out[f"table-b/miniimagenet-5way-5shot-l2-{name}"] = {
            **_BASE, "dataset": "miniimagenet", "shots": 5, "iterations": 50_000, "meta_batch": 2,
            "l2_meta_reg": variant, "l2_lambda0": 5e-4}
    return out


CONFIGS: Dict[str, Dict[str, Any]] = _build()


def needs_gamma(name: str) -> bool:
    """Table B rows need the gammas of a trained +L2F run."""
    return "l2_meta_reg" in CONFIGS.get(name, {})
