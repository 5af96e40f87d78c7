"""Calibrate each family's "target lost" threshold and measure re-detection, on the val split.

The synthetic generator knows when the target cannot be seen (``visibility.txt``: a frame is
absent when under 10% of the target is in view and unoccluded, :mod:`otb_eval.synthetic.presence`).
Absent frames are rare (29 in the first 60 val sequences of seed 0, 1-5 per sequence), so the
calibration set is every sequence of the first ``--pool`` val sequences that has an absent frame,
topped up with the first ones that have none to ``--sequences``.

1. Every tracker runs with re-detection off (its boxes are the shipped ones) and records its score
   per frame (MetaCREST/CREST: the response peak and the peak-to-sidelobe ratio both).
2. Per family, the threshold sweep of "lost = score < t" against two truths: *absent* (the
   generator's) and *off target* (absent, or the box does not touch the target: IoU 0). The
   chosen threshold maximises F1 against off target: absent frames are too few for a threshold of
   their own, and a box on the background with the target in view is the same failure for a user
   (for CREST's family, over peak and PSR: the one with the better F1 is the family's score).
   Precision and recall against absent are reported at that threshold too.
3. Every tracker runs again with ``redetect=True`` at its family's chosen threshold; success AUC
   per sequence, off vs on, overall and on the sequences with an absent frame (paired bootstrap).

    python benchmarks/lost_calibration.py [--work benchmarks/.data/lost] [--workers 2]

Resumable: each run's frames are kept in ``WORK/runs/<config>/<seq>.json``. Writes
benchmarks/results/lost_calibration.json and docs/results/lost_calibration.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from _util import ROOT, machine, relative, save

FAMILY = {"metasdnet": "sdnet", "mdnet": "sdnet", "metacrest": "crest", "crest": "crest"}
FAMILY_NAME = {"sdnet": "MetaSDNet / MDNet", "crest": "MetaCREST / CREST"}


def select(root: str, pool: int, n: int) -> list[str]:
    """Sequences with an absent frame first (in order), then the first without, ``n`` in all."""
    from otb_eval.synthetic import sequence_name
    from otb_eval.synthetic.presence import absent_frames, read_visibility

    names = [sequence_name("val", i) for i in range(1, pool + 1)]
    has = [bool(absent_frames(read_visibility(os.path.join(root, s))).any()) for s in names]
    chosen = [s for s, h in zip(names, has) if h]
    chosen += [s for s, h in zip(names, has) if not h][:max(0, n - len(chosen))]
    return sorted(chosen)


def run_one(job: tuple) -> str:
    """Track one sequence with one configuration; keep boxes and the per-frame confidences."""
    root, seq_name, tracker_name, options, path = job
    if os.path.isfile(path):
        return path
    import torch

    from foundation.fileio import atomic_write_text
    from otb_eval.datasets import OTBDataset
    from otb_eval.experiment import fixed_threads, track_sequence
    from tracker.api import make

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    seq = OTBDataset(root)[seq_name]
    trk = make(tracker_name, **options)
    frames: dict[str, list] = {"score": [], "peak": [], "psr": [], "lost": []}

    def keep(f, image, box) -> None:
        frames["score"].append(trk.score)
        frames["peak"].append(getattr(trk, "peak", None))
        frames["psr"].append(getattr(trk, "psr", None))
        frames["lost"].append(bool(trk.lost))

    with fixed_threads():
        boxes, times = track_sequence(trk, seq, on_frame=keep)
    atomic_write_text(path, json.dumps({"boxes": boxes.tolist(), "seconds": float(times.sum()), **frames}))
    return path


def run_all(root: str, seqs: list[str], configs: dict[str, tuple[str, dict]], work: str,
            workers: int) -> dict[str, dict[str, dict]]:
    """Every (config, sequence) run, resumed from ``work``; returns config -> seq -> record."""
    jobs = []
    for label, (name, options) in configs.items():
        os.makedirs(os.path.join(work, "runs", label), exist_ok=True)
        for s in seqs:
            jobs.append((root, s, name, options, os.path.join(work, "runs", label, f"{s}.json")))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, path in enumerate(pool.map(run_one, jobs), 1):
            print(f"[{i}/{len(jobs)}] {relative(path) if path.startswith(ROOT) else path}", flush=True)
    out: dict[str, dict[str, dict]] = {}
    for _, s, _, _, path in jobs:
        label = os.path.basename(os.path.dirname(path))
        with open(path) as f:
            out.setdefault(label, {})[s] = json.load(f)
    return out


def sweep(scores: np.ndarray, absent: np.ndarray) -> list[dict]:
    """Precision, recall and F1 of ``score < t`` against ``absent`` at thresholds between the
    observed scores (quantiles, plus the midpoints that separate the absent frames' scores)."""
    qs = np.quantile(scores, np.linspace(0.0, 0.5, 101))
    near = np.concatenate([scores[absent], scores[absent] + 1e-6])
    rows = []
    for t in np.unique(np.round(np.concatenate([qs, near]), 6)):
        lost = scores < t
        tp = int((lost & absent).sum())
        p = tp / max(1, int(lost.sum()))
        r = tp / max(1, int(absent.sum()))
        rows.append({"threshold": float(t), "flagged": int(lost.sum()), "true_positives": tp,
                     "precision": round(p, 4), "recall": round(r, 4),
                     "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0})
    return rows


def best(rows: list[dict]) -> dict:
    """The highest F1; among equals the lowest threshold (the fewest false alarms)."""
    return max(rows, key=lambda r: (r["f1"], -r["threshold"]))


def at(scores: np.ndarray, truth: np.ndarray, t: float) -> dict:
    """Precision and recall of ``score < t`` against ``truth``, with bootstrap intervals."""
    lost = scores < t
    tp = int((lost & truth).sum())
    p, r = tp / max(1, int(lost.sum())), tp / max(1, int(truth.sum()))
    return {"threshold": float(t), "flagged": int(lost.sum()), "true_positives": tp,
            "precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "precision_interval": interval(truth[lost].tolist()), "recall_interval": interval(lost[truth].tolist())}


def rate(scores: np.ndarray, truth: np.ndarray) -> dict:
    """The sweep against ``truth``, its best-F1 threshold (with intervals) and the medians."""
    rows = sweep(scores, truth)
    return {"chosen": at(scores, truth, best(rows)["threshold"]), "sweep": rows[::max(1, len(rows) // 40)],
            "median_when_true": round(float(np.median(scores[truth])), 4),
            "median_when_false": round(float(np.median(scores[~truth])), 4)}


def interval(values: list[float], resamples: int = 10000, seed: int = 0) -> list[float]:
    """95% bootstrap interval of a proportion's frames (a rate's spread over resampled frames)."""
    v = np.asarray(values, dtype=float)
    if not len(v):
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (resamples, len(v)))].mean(1)
    return [round(float(x), 4) for x in np.percentile(means, [2.5, 97.5])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.path.join(ROOT, "benchmarks", ".data", "lost"))
    parser.add_argument("--pool", type=int, default=60, help="val sequences to choose from")
    parser.add_argument("--sequences", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trackers", default="metasdnet,metacrest",
                        help=f"comma-separated, of {', '.join(FAMILY)} (a family's threshold pools its trackers)")
    args = parser.parse_args()
    TRACKERS: dict[str, list[str]] = {}
    for n in args.trackers.split(","):
        TRACKERS.setdefault(FAMILY[n], []).append(n)

    from foundation.boxes import iou
    from otb_eval.compare import difference
    from otb_eval.datasets import OTBDataset
    from otb_eval.metrics import score_sequence
    from otb_eval.synthetic import generate, sequence_name
    from otb_eval.synthetic.presence import absent_frames, read_visibility

    root = os.path.join(args.work, f"synth-val-{args.pool}-s0")
    generate(root, args.pool, seed=0, split="val", progress=False)
    seqs = select(root, args.pool, args.sequences)
    pool_absent = [absent_frames(read_visibility(os.path.join(root, sequence_name("val", i))))
                   for i in range(1, args.pool + 1)]
    runs = [len(r) for a in pool_absent for r in "".join("1" if x else "0" for x in a).split("0") if r]
    pool = {"sequences": args.pool, "frames": int(sum(len(a) for a in pool_absent)),
            "absent_frames": int(sum(a.sum() for a in pool_absent)),
            "sequences_with_absent": int(sum(a.any() for a in pool_absent)),
            "absent_run_lengths": [min(runs), max(runs)] if runs else [0, 0]}
    dataset = OTBDataset(root)
    absent = {s: absent_frames(read_visibility(os.path.join(root, s))) for s in seqs}
    with_absent = [s for s in seqs if absent[s].any()]

    off = run_all(root, seqs, {n: (n, {"redetect": False}) for ns in TRACKERS.values() for n in ns},
                  args.work, args.workers)
    families, chosen = {}, {}
    for fam, names in TRACKERS.items():
        absent_all = np.concatenate([absent[s][1:] for n in names for s in seqs])
        off_target = np.concatenate([(absent[s] | (iou(np.array(off[n][s]["boxes"]), dataset[s].anno) == 0))[1:]
                                     for n in names for s in seqs])
        kinds = ["score"] if fam == "sdnet" else ["peak", "psr"]
        per_kind = {}
        for kind in kinds:
            scores = np.concatenate([np.asarray(off[n][s][kind][1:], float) for n in names for s in seqs])
            per_kind[kind] = {name: rate(scores, truth) for name, truth in
                              (("off_target", off_target), ("absent", absent_all))}
            t = per_kind[kind]["off_target"]["chosen"]["threshold"]
            per_kind[kind]["absent_at_chosen"] = at(scores, absent_all, t)
        kind = max(per_kind, key=lambda k: per_kind[k]["off_target"]["chosen"]["f1"])
        chosen[fam] = (kind, per_kind[kind]["off_target"]["chosen"]["threshold"])
        families[fam] = {"trackers": names, "frames": int(len(absent_all)), "absent_frames": int(absent_all.sum()),
                         "off_target_frames": int(off_target.sum()), "confidence": kind, "by_confidence": per_kind}

    on_configs = {}
    for fam, names in TRACKERS.items():
        kind, t = chosen[fam]
        extra = {} if fam == "sdnet" else {"confidence": kind}
        for n in names:
            on_configs[f"{n}+redetect@{t:.6g}"] = (n, {"redetect": True, "lost_threshold": t, **extra})
    on = run_all(root, seqs, on_configs, args.work, args.workers)

    auc = {}
    for fam, names in TRACKERS.items():
        for n in names:
            key = f"{n}+redetect@{chosen[fam][1]:.6g}"
            a_off = [score_sequence(np.array(off[n][s]["boxes"]), dataset[s].anno).success_score for s in seqs]
            a_on = [score_sequence(np.array(on[key][s]["boxes"]), dataset[s].anno).success_score
                    for s in seqs]
            idx = [seqs.index(s) for s in with_absent]
            auc[n] = {"off": round(float(np.mean(a_off)), 4), "on": round(float(np.mean(a_on)), 4),
                      "difference": difference(a_on, a_off).to_dict(),
                      "absent_off": round(float(np.mean([a_off[i] for i in idx])), 4),
                      "absent_on": round(float(np.mean([a_on[i] for i in idx])), 4),
                      "absent_difference": difference([a_on[i] for i in idx], [a_off[i] for i in idx]).to_dict(),
                      "per_sequence_off": [round(x, 4) for x in a_off],
                      "per_sequence_on": [round(x, 4) for x in a_on],
                      "seconds_off": round(sum(off[n][s]["seconds"] for s in seqs), 1),
                      "seconds_on": round(sum(on[key][s]["seconds"] for s in seqs), 1)}
    data = {"command": "python benchmarks/lost_calibration.py --pool %d --sequences %d --trackers %s"
                       % (args.pool, args.sequences, args.trackers),
            "split": "val", "seed": 0, "pool": pool, "sequences": seqs, "sequences_with_absent": with_absent,
            "absent_definition": "visible * (1 - occluded) < 0.1 (otb_eval.synthetic.presence)",
            "families": families, "thresholds": {f: {"confidence": k, "lost_threshold": t}
                                                for f, (k, t) in chosen.items()},
            "auc": auc, "machine": machine()}
    save("lost_calibration", data, markdown(data))
    print(json.dumps({"thresholds": data["thresholds"],
                      "chosen": {f: {k: v["by_confidence"][v["confidence"]][k]
                                     for k in ("absent_at_chosen",)} | {"off_target": v["by_confidence"][
                                         v["confidence"]]["off_target"]["chosen"]} for f, v in families.items()},
                      "auc": {n: {k: v[k] for k in ("off", "on", "absent_off", "absent_on")}
                              for n, v in auc.items()}}, indent=1))


def _ci(d: dict) -> str:
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def markdown(d: dict) -> str:
    """The doc page: selection, thresholds with precision/recall, the sweep, AUC off vs on."""
    out = ["# Lost flag: calibration and re-detection (val split)", "",
           f"Generated by `{d['command']}` ({d['machine']['date']}; numbers from "
           "`benchmarks/results/lost_calibration.json`).", "",
           f"Truths, per frame after the first: *absent* when {d['absent_definition']}; *off target* when "
           "absent or the tracker's box does not overlap the target (IoU 0, re-detection off). "
           f"The first {d['pool']['sequences']} val sequences of seed 0 have {d['pool']['absent_frames']} absent "
           f"frames of {d['pool']['frames']}, in runs of {d['pool']['absent_run_lengths'][0]}-"
           f"{d['pool']['absent_run_lengths'][1]} frames. {len(d['sequences'])} of them are used: the "
           f"{len(d['sequences_with_absent'])} that have an absent frame, and the first ones without. Trackers run: "
           + "; ".join(f"{FAMILY_NAME[f]}: {', '.join(v['trackers'])}" for f, v in d["families"].items())
           + " (a family's threshold is the option default of all its trackers: MDNet's score is "
           "MetaSDNet's, CREST's MetaCREST's).", "",
           "## Chosen thresholds (lost = score < threshold; highest F1 against off target)", "",
           "| family | confidence | threshold | truth | true frames / frames | flagged | precision [95%] | "
           "recall [95%] | F1 |", "|---|---|---|---|---|---|---|---|---|"]
    for fam, v in d["families"].items():
        k = v["by_confidence"][v["confidence"]]
        for truth, c, n in (("off target", k["off_target"]["chosen"], v["off_target_frames"]),
                            ("absent", k["absent_at_chosen"], v["absent_frames"])):
            out.append(f"| {FAMILY_NAME[fam]} | {v['confidence']} | {c['threshold']:.4g} | {truth} | {n} / "
                       f"{v['frames']} | {c['flagged']} | {c['precision']:.3f} {c['precision_interval']} | "
                       f"{c['recall']:.3f} {c['recall_interval']} | {c['f1']:.3f} |")
    out += ["", "Intervals: bootstrap over the flagged frames (precision) and the true frames (recall).",
            "", "## Each confidence: medians and its best threshold per truth", "",
            "| family | confidence | truth | median when true | median when false | best threshold | "
            "precision | recall | F1 |", "|---|---|---|---|---|---|---|---|---|"]
    for fam, v in d["families"].items():
        for kind, k in v["by_confidence"].items():
            for truth in ("off_target", "absent"):
                r, c = k[truth], k[truth]["chosen"]
                out.append(f"| {FAMILY_NAME[fam]} | {kind} | {truth.replace('_', ' ')} | {r['median_when_true']} | "
                           f"{r['median_when_false']} | {c['threshold']:.4g} | {c['precision']:.3f} | "
                           f"{c['recall']:.3f} | {c['f1']:.3f} |")
    out += ["", "## Sweep against off target (every few thresholds)", ""]
    for fam, v in d["families"].items():
        for kind, k in v["by_confidence"].items():
            out += [f"**{FAMILY_NAME[fam]}, {kind}**", "", "| threshold | flagged | precision | recall | F1 |",
                    "|---|---|---|---|---|"]
            out += [f"| {r['threshold']:.4g} | {r['flagged']} | {r['precision']:.3f} | {r['recall']:.3f} | "
                    f"{r['f1']:.3f} |" for r in k["off_target"]["sweep"]]
            out.append("")
    out += ["## Re-detection (`redetect=True` at the chosen threshold) against off", "",
            "Success AUC, mean over sequences; the difference on - off with its paired bootstrap 95% interval.",
            "", f"| tracker | all {len(d['sequences'])}: off | on | on - off | "
            f"with absent ({len(d['sequences_with_absent'])}): off | on | on - off | seconds off / on |",
            "|---|---|---|---|---|---|---|---|"]
    for n, a in d["auc"].items():
        out.append(f"| {n} | {a['off']:.3f} | {a['on']:.3f} | {_ci(a['difference'])} | {a['absent_off']:.3f} | "
                   f"{a['absent_on']:.3f} | {_ci(a['absent_difference'])} | {a['seconds_off']} / {a['seconds_on']} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
