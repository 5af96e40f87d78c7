"""Every OpenCV tracker the installed cv2 provides, on the synthetic test split.

    python benchmarks/baselines.py [--sequences 25] [--seed 0]

Generates (or reuses) the synthetic test split in benchmarks/.data/, runs each available OpenCV
baseline and the `identity` floor with `otb_eval`, and writes AUC, precision at 20 px and fps
(frames / total time) to benchmarks/results/baselines.json and docs/baselines.md.
"""
from __future__ import annotations

import argparse
import os
import shutil

from _util import ROOT, machine, save


def synthetic_split(split: str, sequences: int, seed: int) -> str:
    """The synthetic split under benchmarks/.data/ (generation resumes and is deterministic)."""
    from otb_eval.synthetic import generate

    folder = os.path.join(ROOT, "benchmarks", ".data", f"synth-{split}-{sequences}-s{seed}")
    generate(folder, sequences, seed=seed, split=split, progress=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from otb_eval.datasets import OTBDataset
    from otb_eval.experiment import run_ope
    from otb_eval.report import evaluate
    from tracker.api import factory
    from tracker.baselines import BASELINES, available_baselines

    data = synthetic_split("test", args.sequences, args.seed)
    dataset = OTBDataset(data)
    results = os.path.join(ROOT, "benchmarks", ".data", "results-baselines")
    shutil.rmtree(results, ignore_errors=True)   # times must come from this run
    names = available_baselines() + ["identity"]
    for name in names:
        run_ope(factory(name), dataset, results)
    perf = evaluate(dataset, results, names)
    rows = {n: {"auc": perf[n]["overall"]["success_score"],
                "precision_20px": perf[n]["overall"]["precision_score"],
                "success_rate_0.5": perf[n]["overall"]["success_rate"],
                "fps": perf[n]["overall"]["fps"]} for n in names}
    missing = [n for n in BASELINES if n not in names]
    out = {"dataset": {"split": "test", "sequences": len(dataset), "seed": args.seed,
                       "frames": perf[names[0]]["overall"]["frames"]},
           "trackers": rows, "unavailable": missing, "machine": machine()}
    lines = ["# OpenCV baselines on the synthetic test split", "",
             f"`python benchmarks/baselines.py --sequences {args.sequences} --seed {args.seed}`: "
             f"{len(dataset)} sequences, {out['dataset']['frames']} frames; raw numbers in "
             "`benchmarks/results/baselines.json`. fps = frames / total tracking time on this "
             "machine (2 CPU cores).", "",
             "| tracker | AUC | precision@20px | success@0.5 | fps |", "|---|---|---|---|---|"]
    for n in sorted(names, key=lambda n: -rows[n]["auc"]):
        r = rows[n]
        lines.append(f"| {n} | {r['auc']:.3f} | {r['precision_20px']:.3f} | {r['success_rate_0.5']:.3f} | {r['fps']:.1f} |")
    if missing:
        lines += ["", f"Not in the installed cv2 (they need opencv-contrib-python): {', '.join(missing)}."]
    md = "\n".join(lines) + "\n"
    paths = save("baselines", out, md)
    print(md)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
