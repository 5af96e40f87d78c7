"""The ablation table: the MetaSDNet and MetaCREST variants, `mdnet`, `crest` and the OpenCV baselines.

    python benchmarks/tracking_table.py [--sequences 30] [--seed 0] [--workers 2]

On the synthetic test split (the same one as benchmarks/baselines.py), in one run: AUC, precision
at 20 px, fps (frames / total time, frame 1 included) and the median frame-1 time of every
tracker, plus the per-layer gamma that the L2F attenuators (metasdnet-l2f*, metacrest-l2f*)
produce on the test sequences' first frames (docs/results/tracking_gamma.png). Writes
benchmarks/results/tracking_table.json and docs/results/tracking_table.md.

A MetaCREST variant runs only with its own weights (``weights/<name>.pt``, found by
``tracker.weights.find_weights``), and ``crest`` only with ``weights/metacrest.pt`` (whose
backbone it uses); without them it is skipped and the table says so (the MetaSDNet variants keep
their old behaviour: untrained start with a warning). ``--trackers A,B`` runs a subset and
``--no-save`` prints instead of writing (both for trying the script on a few sequences);
``--from-json`` re-renders the saved JSON, also one written before MetaCREST existed.
``--seeds-dir DIR`` adds the shipped variants' other training seeds; ``--ablation LABEL=DIR``
tracks every learned tracker with another weights set (the same recipe on other data, all its
seeds) and adds it as an ablation against the main table, e.g.
``--ablation packages=benchmarks/.data/packages`` for ``IMAGERY=packages``.
"""
from __future__ import annotations

import argparse
import os
import shutil

import numpy as np
from _util import (
    CREST_VARIANTS,
    DATA,
    SDNET_VARIANTS,
    abouts,
    add_weight_sets,
    best_of,
    crest_weights_file,
    figure_path,
    load_json,
    machine,
    mean_auc,
    relative,
    save,
    save_figure,
    synthetic_split,
    track_seeds,
)

from tracker.api import families, family_of, spec, variants

VARIANTS = SDNET_VARIANTS
LEARNED = VARIANTS + ["mdnet"] + CREST_VARIANTS + ["crest"]


def options_of(base: str) -> list[str]:
    """A family's variants beside its plain meta-learned start ``base`` (the registry's)."""
    return variants(base)[1:]


def saved_table() -> dict | None:
    """The saved benchmarks/results/tracking_table.json, None before the first run."""
    return load_json("tracking_table")


def gamma_per_layer(name: str, dataset) -> dict[str, list[float]] | None:
    """gamma of each adapted tensor on each sequence's first frame, or None without L2F."""
    from _util import first_frame_gamma

    from tracker.api import make

    found = first_frame_gamma(make(name), dataset)
    return None if found is None else found[0]


def gamma_groups(gamma: dict) -> dict[str, dict]:
    """{family: {variant: {tensor: stats}}}: variants of one family share their tensor names."""
    groups: dict[str, dict] = {}
    for variant, g in gamma.items():
        groups.setdefault(family_of(variant).title, {})[variant] = g
    return groups


def plot_gamma(gamma: dict[str, dict[str, dict[str, float]]], path: str) -> None:
    """Bars of gamma's mean (+- std over test sequences) per adapted tensor and L2F variant,
    one panel per tracker family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = gamma_groups(gamma)
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 3.5 * len(groups)), squeeze=False)
    for ax, (fam, gs) in zip(axes[:, 0], groups.items()):
        names = list(next(iter(gs.values())))
        x = np.arange(len(names))
        width = 0.8 / len(gs)
        lo = 1.0
        for i, (variant, g) in enumerate(gs.items()):
            ax.bar(x + i * width, [g[n]["mean"] for n in names], width,
                   yerr=[g[n]["std"] for n in names], label=variant, capsize=2)
            lo = min(lo, min(g[n]["mean"] - g[n]["std"] for n in names))
        ax.set_ylim(max(0.0, min(0.9, lo - 0.02)), 1.0)
        ax.set_xticks(x + width * (len(gs) - 1) / 2)
        ax.set_xticklabels([n.replace("features.", "").replace("fc.", "") for n in names], rotation=30)
        ax.set_ylabel("gamma (mean +- std over sequences)")
        ax.set_title(f"{fam}: L2F attenuation per parameter tensor at frame 1 (synthetic test split)",
                     fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _interval(d) -> str:
    return f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}], {d.verdict}"


def _seeds_of(out: dict, v: str) -> int:
    return len(out.get("seeds", {}).get(v, {}).get("auc", [0]))


def family_reading(out: dict, fam: str, base: str, plain: str, how: str, diffs: dict) -> list[str]:
    """A family's bullets, each stated with its interval: the best variant against CSRT and
    MedianFlow, the meta-learned start against the ordinary one (``plain``, started as ``how``),
    and L2F / DropGrad against the plain meta start."""
    rows = out["trackers"]
    if base not in rows:
        return []
    lines = []
    best = best_of(out, base)
    cvs = [c for c in ("csrt", "medianflow") if c in rows and (best, c) in diffs]
    if cvs:
        lines.append(f"- {fam}'s best variant is {best} (mean AUC {mean_auc(out, best):.3f} over "
                     f"{_seeds_of(out, best)} training seed(s)); against "
                     + "; against ".join(f"{c} ({rows[c]['auc']:.3f}): {_interval(diffs[(best, c)])}"
                                         for c in cvs) + ".")
    if plain in rows and (base, plain) in diffs:
        m, p = rows[base]["frame1_seconds_median"], rows[plain]["frame1_seconds_median"]
        lines.append(f"- Meta-learned start against the ordinary one (`{plain}`: the same tracker "
                     f"started by {how} at frame 1): {base} {mean_auc(out, base):.3f} vs "
                     f"{mean_auc(out, plain):.3f} AUC, {_interval(diffs[(base, plain)])}; frame 1 takes "
                     f"{m:.3f} s against {p:.3f} s ({p / m:.1f}x faster; each sequence's first init "
                     "in a fresh tracker, one thread, two processes side by side; repeated inits alone "
                     "on two threads: [tracker_speed.md](tracker_speed.md)).")
    against_plain = [v for v in options_of(base) if (v, plain) in diffs]
    if against_plain:
        lines.append(f"- The other meta-learned starts against `{plain}` ({mean_auc(out, plain):.3f}): "
                     + "; ".join(f"{v[len(base) + 1:]} {mean_auc(out, v):.3f} ({_interval(diffs[(v, plain)])})"
                                 for v in against_plain) + ".")
    others = [v for v in options_of(base) if (v, base) in diffs]
    if others:
        lines.append(f"- Against the plain meta start ({base}, mean AUC {mean_auc(out, base):.3f}): "
                     + "; ".join(f"{v[len(base) + 1:]} {mean_auc(out, v):.3f} ({_interval(diffs[(v, base)])})"
                                 for v in others) + ".")
    return lines


def gamma_reading(gamma: dict, weights: dict) -> list[str]:
    """Per family: the range of gamma's means, and how much it varies across sequences."""
    lines = []
    for fam, gs in gamma_groups(gamma).items():
        modes = {weights.get(v, {}).get("l2f_mode") for v in gs} - {None}
        start = ("identity start, gamma = 1 before training" if modes <= {"identity"} else
                 f"{'/'.join(sorted(modes))} attenuator")
        means = [x["mean"] for g in gs.values() for x in g.values()]
        stds = [x["std"] for g in gs.values() for x in g.values()]
        lo, hi = min(means), max(means)
        kind = ("a mild, almost uniform attenuation" if hi - lo < 0.05 and lo > 0.9 else
                "an attenuation that differs between tensors" if hi - lo >= 0.05 else "an attenuation")
        across = ("nearly constant across test sequences" if max(stds) < 0.01 else
                  f"varying across test sequences (s.d. up to {max(stds):.3f})")
        lines.append(f"- {fam}'s L2F attenuators ({start}) learned "
                     f"{kind}: gamma {lo:.3f}-{hi:.3f} over the adapted tensors "
                     f"({', '.join(gs)}), {across}.")
    return lines


def comparisons(out: dict) -> list[tuple[str, str, str]]:
    """(A, B, why) pairs the table states with an interval: L2F and DropGrad against the plain
    meta-learned start, every meta-learned start against the ordinary start, the best of each family
    (by seed-mean AUC) against the best OpenCV trackers (CSRT and MedianFlow when present)."""
    rows = out["trackers"]
    pairs = []
    for fam, base, plain in ((f.title, f.name, f.plain) for f in families()):
        if base not in rows:
            continue
        for v in options_of(base):
            if v in rows:
                pairs.append((v, base, f"{fam}: {spec(v).variant.key} vs the plain meta start"))
        if plain in rows:
            pairs.append((base, plain, f"{fam}: meta-learned start vs the ordinary one"))
            for v in options_of(base):
                if v in rows:
                    pairs.append((v, plain, f"{fam}: {v[len(base) + 1:]} meta-learned start vs the ordinary one"))
        best = best_of(out, base)
        for cv in ("csrt", "medianflow"):
            if cv in rows:
                pairs.append((best, cv, f"{fam}'s best variant vs {cv}"))
    return pairs


def differences(out: dict) -> dict[tuple[str, str], object]:
    """{(A, B): otb_eval.compare.Difference} over sequences and, where the JSON has them, seeds."""
    from otb_eval.compare import difference

    rows = out["trackers"]
    if not all("auc_per_sequence" in r for r in rows.values()):
        return {}
    seeds = out.get("seed_auc_per_sequence", {})
    return {(a, b): difference(seeds.get(a, [rows[a]["auc_per_sequence"]]),
                               seeds.get(b, [rows[b]["auc_per_sequence"]]))
            for a, b, _ in comparisons(out)}


def difference_lines(out: dict) -> list[str]:
    """The paired-bootstrap table: A - B in AUC over sequences (and training seeds when the JSON
    has them), "better" only when the whole interval is above zero."""
    diffs = differences(out)
    if not diffs:
        return []
    seeded = bool(out.get("seed_auc_per_sequence"))
    lines = ["", "Differences in AUC (A - B, means over the training seeds each side has) with 95% "
                 f"paired-bootstrap intervals over the {out['dataset']['sequences']} sequences"
                 + (" and the training seeds (both resampled)" if seeded
                    else " (one training seed: seed noise is not in them)")
                 + "; `otb_eval.compare.difference`:", "",
             "| A | B | comparison | seeds A / B | A - B | 95% interval | verdict |",
             "|---|---|---|---|---|---|---|"]
    for a, b, why in comparisons(out):
        d = diffs[(a, b)]
        lines.append(f"| {a} | {b} | {why} | {d.seeds_a} / {d.seeds_b} | {d.mean:+.3f} "
                     f"| [{d.low:+.3f}, {d.high:+.3f}] | {d.verdict} |")
    return lines


def render(out: dict, plot: bool = True) -> str:
    """docs/results/tracking_table.md (and, with ``plot``, the gamma plot beside it) from the benchmark's JSON."""
    rows, d = out["trackers"], out["dataset"]
    variants = [v for v in VARIANTS if v in rows]
    crest_v = [v for v in CREST_VARIANTS if v in rows]
    opencv = [n for n in rows if n not in LEARNED]
    only = f" --trackers {','.join(d['only'])}" if d.get("only") else ""
    resumed = d.get("resumed")
    run = ("one run on this machine, resumed: " + ", ".join(resumed) + " tracked again, the others' "
           "results (and fps) kept from the run it resumed, on the same machine and code for them"
           if resumed else "one run on this machine")
    lines = ["# Tracking ablation on the synthetic test split", "",
             f"Generated by `python benchmarks/tracking_table.py --sequences {d['sequences']} --seed {d['seed']}{only}"
             f"{' --resume' if resumed else ''}`: "
             f"{d['sequences']} sequences, {d['frames']} frames, {run} "
             "(2 CPU cores, one torch thread per tracking process); raw numbers in "
             "`benchmarks/results/tracking_table.json`. fps = frames / total tracking time, frame 1 "
             "included. " + ("The main table is the shipped weights (training seed 0); the spread over "
                             f"{out['training_seeds']} training seeds follows it."
                             if out.get("training_seeds", 1) > 1 else
                             "One training seed per variant, so differences of a few AUC points between "
                             "variants are within seed noise."), "",
             "| tracker | AUC | precision@20px | success@0.5 | fps | frame-1 s (median) |",
             "|---|---|---|---|---|---|"]
    for n in sorted(rows, key=lambda n: -rows[n]["auc"]):
        r = rows[n]
        lines.append(f"| {n} | {r['auc']:.3f} | {r['precision_20px']:.3f} | {r['success_rate_0.5']:.3f} "
                     f"| {r['fps']:.1f} | {r['frame1_seconds_median']:.3f} |")
    if out.get("skipped"):
        lines += ["", "Not run: " + "; ".join(f"{n} ({why})" for n, why in out["skipped"].items()) + "."]
    lines += difference_lines(out)
    if out.get("seeds"):
        lines += ["", "Over training seeds (seed 0 is the shipped file; other seeds repeat the whole "
                      "recipe with `SEED=k`: MetaSDNet's pretraining (`mdnet-seedk.pt`) and meta-training "
                      "from it, MetaCREST's meta-training; `crest` has no training of its own; "
                      "`weights/train_all.sh`, then `--seeds-dir`):", "",
                  "| variant | seeds | AUC mean +- s.d. | precision@20px mean +- s.d. |", "|---|---|---|---|"]
        for v, r in out["seeds"].items():
            a, p = np.asarray(r["auc"]), np.asarray(r["precision_20px"])
            sd = (lambda x: x.std(ddof=1) if len(x) > 1 else 0.0)
            lines.append(f"| {v} | {len(a)} | {a.mean():.3f} +- {sd(a):.3f} | {p.mean():.3f} +- {sd(p):.3f} |")
        if out.get("seeds_carried"):
            lines += ["", "Seeds 1+ of " + ", ".join(out["seeds_carried"]) + " are carried over from the "
                      "previous run of this script: their seed 0 gave the same AUC on every sequence in "
                      "this run (tracking is deterministic), so their other seeds were not tracked again."]
    lines += ablation_lines(out)
    lines += ["", "Reading (\"better\" / \"worse\" only where the whole interval is on one side of zero):", ""]
    diffs = differences(out)
    if opencv and (variants or crest_v):
        best_cv = max(opencv, key=lambda n: rows[n]["auc"])
        lines.append(f"- The best OpenCV tracker here is {best_cv} (AUC {rows[best_cv]['auc']:.3f}).")
    mdnet_how = f"{out.get('mdnet_finetune_iters', 30)} iterations of ordinary fine-tuning of fc4-6"
    crest_how = f"{out.get('crest_init_iters') or 'its'} Adam iterations from a random filter"
    lines += family_reading(out, "MetaSDNet", "metasdnet", "mdnet", mdnet_how, diffs)
    lines += family_reading(out, "MetaCREST", "metacrest", "crest", crest_how, diffs)
    if "metacrest" in rows:
        workers = d.get("workers", 2)
        lines.append("- fps in this table: one torch thread per process"
                     + (f", {workers} processes side by side" if workers > 1 else "")
                     + "; alone on two threads: [tracker_speed.md](tracker_speed.md).")
    if out.get("gamma"):
        g = out["gamma"]
        lines += gamma_reading(g, out.get("weights", {}))
        lines += ["", "L2F attenuation (gamma) per parameter tensor on the test sequences' first frames "
                      "(mean over sequences):"]
        for gs in gamma_groups(g).values():
            names = list(next(iter(gs.values())))
            lines += ["", "| variant | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
            for v, gv in gs.items():
                lines.append(f"| {v} | " + " | ".join(f"{gv[n]['mean']:.3f}" for n in names) + " |")
        lines += ["", "![gamma per layer](tracking_gamma.png)"]
        if plot:
            plot_gamma(g, figure_path("tracking_gamma.png"))
    return "\n".join(lines) + "\n"


SEEDED = VARIANTS + ["mdnet"] + CREST_VARIANTS


def carry_seeds(out: dict) -> None:
    """Keep the saved JSON's other training seeds of every variant whose seed-0 AUC on every
    sequence this run reproduced exactly: tracking is deterministic, so the same code and weights
    give the same boxes, and their seeds need no rerun (``--seeds-dir`` replaces the seeds of the
    variants whose files it is given). Variants whose results changed start again from seed 0."""
    old = saved_table()
    if old is None or any(old.get("dataset", {}).get(k) != out["dataset"][k] for k in ("sequences", "seed")):
        return
    same = [v for v in SEEDED if v in out["trackers"] and v in old.get("seeds", {})
            and old["trackers"].get(v, {}).get("auc_per_sequence") == out["trackers"][v]["auc_per_sequence"]]
    if not same:
        return
    out["seeds"] = {v: old["seeds"][v] for v in same}
    out["seed_auc_per_sequence"] = {v: old["seed_auc_per_sequence"][v] for v in same}
    out["training_seeds"] = min(len(old["seeds"][v]["seed"]) if v in same else 1
                                for v in SEEDED if v in out["trackers"])
    out["seeds_carried"] = same
    print("seeds carried over (seed 0 reproduced exactly):", ", ".join(same))


def add_seeds(folder: str, args) -> None:
    """Track the test split with every ``<variant>-seed<k>.pt`` in ``folder`` (the variant's own
    tracker class; ``mdnet-seed<k>.pt`` under ``mdnet``) and store per-variant AUC, precision and
    per-sequence AUC over seeds (seed 0 = the shipped weights, from the saved run), which the
    differences then resample. ``--resume`` keeps seed results already tracked."""
    import glob
    import re

    from otb_eval.datasets import OTBDataset
    from otb_eval.experiment import run_ope
    from otb_eval.report import evaluate
    from tracker.api import factory, register, spec

    out = saved_table()
    if out is None:
        raise SystemExit("--seeds-dir needs a saved table: run the script without it first")
    rows = out["trackers"]
    dataset = OTBDataset(synthetic_split("test", out["dataset"]["sequences"], out["dataset"]["seed"]))
    results = os.path.join(DATA, "results-seeds")
    if not args.resume:
        shutil.rmtree(results, ignore_errors=True)
    found = []
    for path in glob.glob(os.path.join(folder, "*-seed*.pt")):
        m = re.match(r"(.+)-seed(\d+)\.pt$", os.path.basename(path))
        if m and m.group(1) in rows and m.group(1) in SEEDED and int(m.group(2)) > 0:
            found.append((m.group(1), int(m.group(2)), path))
    if not found:
        raise SystemExit(f"no <variant>-seed<k>.pt files of {', '.join(v for v in SEEDED if v in rows)} "
                         f"in {folder}")
    # variants with files here start again from seed 0; the others keep the seeds the JSON holds
    # (carried over by the seed-0 run only where its results were identical)
    tracked = {v for v, _, _ in found}
    seeds = {v: {"seed": [0], "auc": [rows[v]["auc"]], "precision_20px": [rows[v]["precision_20px"]]}
             for v in SEEDED if v in rows}
    per_seq = {v: [rows[v]["auc_per_sequence"]] for v in seeds}
    for v in set(seeds) - tracked:
        if v in out.get("seeds", {}):
            seeds[v], per_seq[v] = out["seeds"][v], out["seed_auc_per_sequence"][v]
    for variant, k, path in sorted(found):
        name = f"{variant}@seed{k}"
        register(name, spec(variant).factory, overwrite=True, weights=path)
        run_ope(factory(name), dataset, results, workers=args.workers)
        perf = evaluate(dataset, results, [name])[name]
        seeds[variant]["seed"].append(k)
        seeds[variant]["auc"].append(perf["overall"]["success_score"])
        seeds[variant]["precision_20px"].append(perf["overall"]["precision_score"])
        per_seq[variant].append([perf["seq_wise"][s.name]["success_score"] for s in dataset])
        print(f"{name}: AUC {seeds[variant]['auc'][-1]:.3f}", flush=True)
    out["seeds"] = seeds
    out["seed_auc_per_sequence"] = per_seq
    out["seeds_carried"] = [v for v in out.get("seeds_carried", []) if v not in tracked and v in out["seeds"]]
    out["training_seeds"] = min(len(v["seed"]) for v in seeds.values())
    md = render(out)
    save("tracking_table", out, md)
    print(md)


def _main_seeds(out: dict, v: str) -> list[list[float]]:
    """Per-sequence AUC per training seed of the main table's ``v`` (seed 0 alone without seeds)."""
    return out.get("seed_auc_per_sequence", {}).get(v) or [out["trackers"][v]["auc_per_sequence"]]


def ablation_lines(out: dict) -> list[str]:
    """The weights-set ablation: every learned tracker of each set in ``out["ablation"]`` (the same
    recipe trained on other data) against the main table's, and within the set L2F and DropGrad
    against the plain meta start and the meta starts against the ordinary one, each with a paired
    bootstrap over sequences and seeds."""
    from otb_eval.compare import difference

    lines = []
    for label, wset in out.get("ablation", {}).items():
        rows = wset["trackers"]
        lines += ["", f"## Ablation: the shipped recipe trained on {label}", "",
                  f"Every learned tracker again with the weights in `{wset['folder']}` "
                  f"({wset.get('about') or 'the same recipe on other training data'}; `NAME.pt` = seed 0, "
                  f"`NAME-seed<k>.pt`; `--ablation {label}={wset['folder']}`), on the same test sequences. "
                  f"\"shipped\" is the main table above (its seeds). A - B with 95% paired-bootstrap "
                  "intervals over sequences and seeds:", "",
                  f"| tracker | seeds shipped / {label} | AUC shipped | AUC {label} (s.d.) | {label} - shipped "
                  "| 95% interval | verdict |", "|---|---|---|---|---|---|---|"]
        for n in [n for n in LEARNED if n in rows and n in out["trackers"]]:
            a, b = rows[n]["seed_auc_per_sequence"], _main_seeds(out, n)
            x = difference(a, b)
            lines.append(f"| {n} | {len(b)} / {len(a)} | {np.mean(b):.3f} | {rows[n]['auc']:.3f} "
                         f"({rows[n]['auc_sd']:.3f}) | {x.mean:+.3f} | [{x.low:+.3f}, {x.high:+.3f}] | {x.verdict} |")
        lines += ["", f"Within {label}:", "", "| A | B | A - B | 95% interval | verdict |", "|---|---|---|---|---|"]
        for f in families():
            pairs = [(v, f.name) for v in options_of(f.name)] + [(v, f.plain) for v in variants(f.name)]
            for a, b in pairs:
                if a in rows and b in rows:
                    x = difference(rows[a]["seed_auc_per_sequence"], rows[b]["seed_auc_per_sequence"])
                    lines.append(f"| {a} | {b} | {x.mean:+.3f} | [{x.low:+.3f}, {x.high:+.3f}] | {x.verdict} |")
    return lines


def add_ablation(sets: list[tuple[str, str]], about: dict[str, str], args) -> None:
    """Track the test split with every learned tracker of each weights set (every seed found) and
    store them under ``out["ablation"]`` of the saved JSON; ``--resume`` keeps results tracked."""
    from otb_eval.datasets import OTBDataset

    out = saved_table()
    if out is None:
        raise SystemExit("--ablation needs a saved table: run the script without it first")
    dataset = OTBDataset(synthetic_split("test", out["dataset"]["sequences"], out["dataset"]["seed"]))
    results = os.path.join(DATA, "results-ablation")
    if not args.resume:
        shutil.rmtree(results, ignore_errors=True)
    out["ablation"] = {}
    for label, folder in sets:
        rows = track_seeds(folder, LEARNED, dataset, results, label, args.workers)
        if not rows:
            raise SystemExit(f"--ablation {label}: no weights of {', '.join(LEARNED)} in {folder}")
        out["ablation"][label] = {"folder": relative(folder), "about": about.get(label, ""), "trackers": rows}
    md = render(out)
    save("tracking_table", out, md)
    print(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--from-json", action="store_true",
                        help="rebuild docs/results/tracking_table.md and the plot from the saved JSON")
    parser.add_argument("--trackers", type=lambda t: [n.strip() for n in t.split(",") if n.strip()],
                        metavar="A,B", help="only these trackers (default: all; for trying the script)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the results already tracked (a run interrupted, or one that waited "
                             "for weights still training): only missing sequences are tracked; it trusts "
                             "that no weights changed, and the fps of trackers finished earlier come "
                             "from that earlier part of the run")
    parser.add_argument("--no-save", action="store_true",
                        help="print the markdown; write neither the JSON, the docs nor the plot")
    parser.add_argument("--seeds-dir", metavar="DIR",
                        help="add the accuracy of extra training seeds (<variant>-seed<k>.pt, from "
                             "SEED=k OUT=DIR bash weights/train_all.sh) to the saved JSON; tracking is "
                             "deterministic, so their AUC is comparable with the saved run's (their "
                             "speed is not reported)")
    add_weight_sets(parser, "--ablation", extra=": track every learned tracker with it and add it to the "
                    "saved JSON as an ablation against the main table (e.g. the recipe on other imagery)")
    args = parser.parse_args()
    if args.ablation:
        add_ablation(args.ablation, abouts(args), args)
        return
    if args.seeds_dir:
        add_seeds(args.seeds_dir, args)
        return
    if args.from_json:
        out = saved_table()
        if out is None:
            raise SystemExit("--from-json: no saved benchmarks/results/tracking_table.json")
        md = render(out, plot=not args.no_save)
        if not args.no_save:
            save("tracking_table", out, md)
        print(md)
        return

    from foundation.checkpoint import load_checkpoint
    from otb_eval.datasets import OTBDataset
    from otb_eval.experiment import run_ope
    from otb_eval.report import evaluate
    from otb_eval.results import result_path, time_path
    from tracker.api import factory
    from tracker.baselines import available_baselines
    from tracker.weights import find_weights

    data = synthetic_split("test", args.sequences, args.seed)
    dataset = OTBDataset(data)
    results = os.path.join(DATA, "results-tracking")
    if not args.resume:
        shutil.rmtree(results, ignore_errors=True)   # every time must come from this run
    trackers = VARIANTS + ["mdnet"] + CREST_VARIANTS + ["crest"] + available_baselines()
    if args.trackers:
        from tracker.api import spec

        for n in args.trackers:
            spec(n)   # an unknown name fails before any work
        trackers = [n for n in args.trackers if n in trackers or n not in LEARNED]
    skipped = {}
    for n in CREST_VARIANTS + ["crest"]:
        if n in trackers and crest_weights_file(n) is None:
            need = family_of(n).name if n == family_of(n).plain else n
            skipped[n] = f"no weights/{need}.pt"
            print(f"skipping {n}: no weights/{need}.pt (it would run untrained)")
    trackers = [n for n in trackers if n not in skipped]
    if not trackers:
        raise SystemExit("nothing to run: " + "; ".join(f"{n} ({w})" for n, w in skipped.items()))
    if args.resume:   # which trackers this run tracks (their results were missing)
        tracked = [n for n in trackers if any(not os.path.isfile(result_path(results, n, s.name)) for s in dataset)]
    for name in trackers:
        run_ope(factory(name), dataset, results, workers=args.workers)
    perf = evaluate(dataset, results, trackers)
    rows = {}
    for n in trackers:
        o = perf[n]["overall"]
        first = [float(np.loadtxt(time_path(results, n, s.name), ndmin=1)[0]) for s in dataset]
        rows[n] = {"auc": o["success_score"], "precision_20px": o["precision_score"],
                   "success_rate_0.5": o["success_rate"], "fps": o["fps"],
                   "frame1_seconds_median": float(np.median(first)),
                   "auc_per_sequence": [perf[n]["seq_wise"][seq.name]["success_score"] for seq in dataset]}
    weights = {}
    for v in trackers:
        if v in VARIANTS + ["mdnet"]:
            path = find_weights(v) or find_weights("metasdnet")
        elif v in CREST_VARIANTS + ["crest"]:
            path = crest_weights_file(v)
        else:
            continue
        state, meta = load_checkpoint(path) if path else ({}, {})
        weights[v] = {"file": relative(path) if path else None,
                      "command": meta.get("command"), "iterations": meta.get("iterations")}
        if state.get("attenuator") is not None:   # the family's reader knows old and new files
            weights[v]["l2f_mode"] = family_of(v).load("read_weights")(path).l2f.mode
    gammas = {v: g for v in VARIANTS + CREST_VARIANTS
              if v in trackers and (g := gamma_per_layer(v, dataset)) is not None}
    out = {"dataset": {"split": "test", "sequences": len(dataset), "seed": args.seed,
                       "frames": perf[trackers[0]]["overall"]["frames"], "workers": args.workers},
           "trackers": rows, "weights": weights,
           "gamma": {v: {n: {"mean": float(np.mean(x)), "std": float(np.std(x))} for n, x in g.items()}
                     for v, g in gammas.items()},
           "skipped": skipped, "training_seeds": 1, "machine": machine()}
    if args.trackers:
        out["dataset"]["only"] = args.trackers
    if args.resume:
        out["dataset"]["resumed"] = tracked
    from tracker.api import make

    if "crest" in trackers:
        out["crest_init_iters"] = int(make("crest").opts.init_iters)
    if "mdnet" in trackers:
        out["mdnet_finetune_iters"] = int(make("mdnet").opts.finetune_iters)
    if not args.trackers and not args.no_save:
        carry_seeds(out)
    md = render(out, plot=not args.no_save)
    print(md)
    if not args.no_save:
        print("wrote", *save("tracking_table", out, md))


if __name__ == "__main__":
    main()
