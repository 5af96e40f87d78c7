"""OTB-style success and precision plots (matplotlib, no display needed).

Legends read ``name [score]`` and are sorted by that score, best first, as in the OTB papers.
"""
from __future__ import annotations

import os

import numpy as np

from foundation.fileio import atomic_path

from .datasets import attribute_names
from .metrics import CENTER_THRESHOLDS, IOU_THRESHOLDS

_STYLES = ["-", "--", "-.", ":"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_curve_set(curves: dict[str, np.ndarray], scores: dict[str, float], x: np.ndarray,
                   xlabel: str, ylabel: str, title: str, path: str, xlim: tuple[float, float],
                   colors: dict[str, str] | None = None) -> str:
    """One plot of several trackers' curves, legend ``name [score]`` sorted by score."""
    plt = _pyplot()
    order = sorted(curves, key=lambda n: -scores[n])
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(order):
        color = (colors or {}).get(name, cmap(i % 10))
        ax.plot(x, curves[name], _STYLES[(i // 10) % len(_STYLES)], color=color, linewidth=2,
                label=f"{name} [{scores[name]:.3f}]")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=xlim, ylim=(0, 1.0))
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower left" if "Success" in title else "lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def _plot_pair(blocks: dict[str, dict], out_dir: str, suffix: str, what: str,
               colors: dict[str, str] | None) -> dict[str, str]:
    succ = plot_curve_set(
        {n: np.asarray(b["success_curve"]) for n, b in blocks.items()},
        {n: b["success_score"] for n, b in blocks.items()},
        IOU_THRESHOLDS, "Overlap threshold", "Success rate", f"Success plots of {what}",
        os.path.join(out_dir, f"success_plots{suffix}.png"), (0, 1), colors)
    prec = plot_curve_set(
        {n: np.asarray(b["precision_curve"]) for n, b in blocks.items()},
        {n: b["precision_score"] for n, b in blocks.items()},
        CENTER_THRESHOLDS, "Location error threshold (px)", "Precision",
        f"Precision plots of {what}", os.path.join(out_dir, f"precision_plots{suffix}.png"),
        (0, float(CENTER_THRESHOLDS[-1])), colors)
    return {f"success{suffix}": succ, f"precision{suffix}": prec}


def plot_curves(performance: dict, out_dir: str, title: str = "OPE", suffix: str = "",
                colors: dict[str, str] | None = None) -> dict[str, str]:
    """``success_plots.png`` and ``precision_plots.png`` of the overall curves."""
    return _plot_pair({n: e["overall"] for n, e in performance.items()}, out_dir, suffix, title, colors)


def plot_attribute_curves(performance: dict, out_dir: str, title: str = "OPE",
                          colors: dict[str, str] | None = None) -> dict[str, str]:
    """One success/precision pair per attribute any tracker has scores for."""
    full = attribute_names()
    attrs: dict[str, int] = {}
    for entry in performance.values():
        for attr, block in entry.get("attributes", {}).items():
            attrs.setdefault(attr, block["sequences"])
    paths: dict[str, str] = {}
    for attr, count in attrs.items():
        blocks = {n: e["attributes"][attr] for n, e in performance.items() if attr in e.get("attributes", {})}
        what = f"{title} - {full.get(attr, attr)} ({count})"
        paths.update(_plot_pair(blocks, out_dir, f"_{attr}", what, colors))
    return paths
