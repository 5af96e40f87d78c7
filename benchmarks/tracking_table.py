"""The ablation table: the four MetaSDNet variants, `mdnet` and the OpenCV baselines.

    python benchmarks/tracking_table.py [--sequences 25] [--seed 0] [--workers 2]

On the synthetic test split (the same one as benchmarks/baselines.py), in one run: AUC, precision
at 20 px, fps (frames / total time, frame 1 included) and the median frame-1 time of every
tracker, plus the per-layer gamma that the L2F attenuators produce on the test sequences' first
frames (docs/tracking_gamma.png). Writes benchmarks/results/tracking_table.json and
docs/tracking_table.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import DOCS, ROOT, machine, save  # noqa: E402
from baselines import synthetic_split  # noqa: E402

VARIANTS = ["metasdnet", "metasdnet-l2f", "metasdnet-dropgrad", "metasdnet-l2f-dropgrad"]


def gamma_per_layer(name: str, dataset) -> dict[str, list[float]] | None:
    """gamma of each adapted tensor on each sequence's first frame, or None without L2F."""
    from tracker.api import make
    from tracker.images import read_bgr

    trk = make(name)
    out: dict[str, list[float]] = {}
    for seq in dataset:
        trk.init(read_bgr(seq.img_files[0]), seq.anno[0])
        if trk.gamma is None:
            return None
        for n, g in trk.gamma.items():
            out.setdefault(n, []).append(g)
    return out


def plot_gamma(gammas: dict[str, dict[str, list[float]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(next(iter(gammas.values())))
    x = np.arange(len(names))
    width = 0.8 / len(gammas)
    for i, (variant, g) in enumerate(gammas.items()):
        vals = [np.asarray(g[n]) for n in names]
        ax.bar(x + i * width, [v.mean() for v in vals], width, yerr=[v.std() for v in vals],
               label=variant, capsize=2)
    ax.set_xticks(x + width * (len(gammas) - 1) / 2)
    ax.set_xticklabels([n.replace("features.", "").replace("fc.", "") for n in names], rotation=30)
    ax.set_ylabel("gamma (mean +- std over test sequences)")
    ax.set_title("L2F attenuation per parameter tensor at frame 1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from otb_eval.datasets import OTBDataset
    from otb_eval.experiment import run_ope
    from otb_eval.report import evaluate
    from otb_eval.results import time_path
    from tracker.baselines import available_baselines
    from tracker.weights import find_weights, load_checkpoint

    data = synthetic_split("test", args.sequences, args.seed)
    dataset = OTBDataset(data)
    results = os.path.join(ROOT, "benchmarks", ".data", "results-tracking")
    shutil.rmtree(results, ignore_errors=True)   # every time must come from this run
    trackers = VARIANTS + ["mdnet"] + available_baselines()
    for name in trackers:
        run_ope(name, dataset, results, workers=args.workers)
    perf = evaluate(dataset, results, trackers)
    rows = {}
    for n in trackers:
        o = perf[n]["overall"]
        first = [float(np.loadtxt(time_path(results, n, s.name), ndmin=1)[0]) for s in dataset]
        rows[n] = {"auc": o["success_score"], "precision_20px": o["precision_score"],
                   "success_rate_0.5": o["success_rate"], "fps": o["fps"],
                   "frame1_seconds_median": float(np.median(first))}
    weights = {}
    for v in VARIANTS + ["mdnet"]:
        path = find_weights(v) or find_weights("metasdnet")
        meta = load_checkpoint(path)[1] if path else {}
        weights[v] = {"file": os.path.relpath(path, ROOT) if path else None,
                      "command": meta.get("command"), "iterations": meta.get("iterations")}
    gammas = {v: g for v in VARIANTS if (g := gamma_per_layer(v, dataset)) is not None}
    if gammas:
        plot_gamma(gammas, os.path.join(DOCS, "tracking_gamma.png"))
    out = {"dataset": {"split": "test", "sequences": len(dataset), "seed": args.seed,
                       "frames": perf[trackers[0]]["overall"]["frames"]},
           "trackers": rows, "weights": weights,
           "gamma": {v: {n: {"mean": float(np.mean(x)), "std": float(np.std(x))} for n, x in g.items()}
                     for v, g in gammas.items()},
           "training_seeds": 1, "machine": machine()}
    best_cv = max((n for n in available_baselines()), key=lambda n: rows[n]["auc"], default=None)
    lines = ["# Tracking ablation on the synthetic test split", "",
             f"`python benchmarks/tracking_table.py --sequences {args.sequences} --seed {args.seed}`: "
             f"{len(dataset)} sequences, {out['dataset']['frames']} frames, one run on this machine "
             "(2 CPU cores, workers as given); raw numbers in `benchmarks/results/tracking_table.json`. "
             "fps = frames / total tracking time, frame 1 included. One training seed per variant "
             "(three were not affordable in the session budget), so differences of a few AUC points "
             "between variants are within seed noise.", "",
             "| tracker | AUC | precision@20px | success@0.5 | fps | frame-1 s (median) |",
             "|---|---|---|---|---|---|"]
    for n in sorted(trackers, key=lambda n: -rows[n]["auc"]):
        r = rows[n]
        lines.append(f"| {n} | {r['auc']:.3f} | {r['precision_20px']:.3f} | {r['success_rate_0.5']:.3f} "
                     f"| {r['fps']:.1f} | {r['frame1_seconds_median']:.3f} |")
    if best_cv:
        lines += ["", f"Best OpenCV tracker available here: {best_cv} (AUC {rows[best_cv]['auc']:.3f}); "
                      f"shipped metasdnet: AUC {rows['metasdnet']['auc']:.3f}."]
    if gammas:
        lines += ["", "L2F attenuation (gamma) per parameter tensor on the test sequences' first frames "
                      "(mean over sequences):", "",
                  "| variant | " + " | ".join(next(iter(gammas.values()))) + " |",
                  "|---|" + "---|" * len(next(iter(gammas.values())))]
        for v, g in gammas.items():
            lines.append(f"| {v} | " + " | ".join(f"{np.mean(x):.3f}" for x in g.values()) + " |")
        lines += ["", "![gamma per layer](tracking_gamma.png)"]
    md = "\n".join(lines) + "\n"
    paths = save("tracking_table", out, md)
    print(md)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
