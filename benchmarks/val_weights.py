"""Score weights files on the VALIDATION split: the recipe's choices are made here, never on test.

    python benchmarks/val_weights.py --tag metacrest_recipe --dataset benchmarks/.data/synth-val-20 \\
        metacrest=runs/mc-e5/metacrest.pt metacrest-l2f=runs/mc-e5/metacrest-l2f.pt csrt ...

Each ``LABEL=FILE`` (or ``LABEL=FILE@option=value,option=value`` with tracker options) is
``metatrack eval --weights LABEL=FILE --option ...``: the file runs under the tracker of the family
it was written by; ``LABEL`` names the row. A bare name runs a registered tracker (``csrt``,
``crest``). For L2F weights the gamma of every adapted tensor on every sequence's first frame is
kept, with its mean and spread over sequences, and g_phi's input there (the task embedding) and
its identity-mode scale s. Writes ``benchmarks/results/<tag>.json`` and ``docs/<tag>.md``;
``--note`` adds a line of reading under the table.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings

import numpy as np
from _util import ROOT, first_frame_gamma, machine, save


def split_row(row: str) -> tuple[str, str | None, list[str]]:
    """``LABEL[=FILE[@key=value,...]]`` -> (label, file, ``KEY=VALUE`` tracker options)."""
    label, _, rest = row.partition("=")
    path, _, opts = rest.partition("@")
    return label, path or None, [o for o in opts.split(",") if o]


def eval_args(label: str, path: str | None, options: list[str]) -> list[str]:
    """The ``metatrack eval`` arguments that track the row."""
    what = ["--trackers", label] if path is None else ["--weights", f"{label}={path}"]
    return what + [a for o in options for a in ("--option", o)]


def row_tracker(path: str, options: list[str]):
    """The tracker ``eval --weights`` builds for a file row (for its first-frame gamma)."""
    from tracker.api import family_of_weights, make
    from tracker.options import parse_key_values

    return make(family_of_weights(path).name, weights=path, **parse_key_values(options, "--option"))


def render(tag: str, out: dict) -> str:
    """docs/<tag>.md from the JSON."""
    lines = [f"# {out['title']}", "",
             f"`python benchmarks/val_weights.py --tag {tag} ...` (rows and files in "
             f"`benchmarks/results/{tag}.json`): {out['dataset']['sequences']} validation sequences "
             f"(`{out['dataset']['path']}`), OPE; fps with {out.get('workers', 2)} sequences side by side on 2 shared cores.",
             "", "| row | AUC | precision@20px | success@0.5 | fps | gamma per adapted tensor: mean (min-max over sequences) |",
             "|---|---|---|---|---|---|"]
    for label, r in out["rows"].items():
        gam = ", ".join(f"{n} {v['mean']:.3f} ({v['min']:.3f}-{v['max']:.3f})" for n, v in r.get("gamma", {}).items())
        lines.append(f"| {label} | {r['auc']:.3f} | {r['precision_20px']:.3f} | {r['success_rate_0.5']:.3f} | "
                     f"{r['fps']:.1f} | {gam or '-'} |")
    l2f = {k: r for k, r in out["rows"].items() if "gamma" in r}
    if l2f:
        lines += ["", "g_phi's input on the first frames (median of |embedding| over sequences, per adapted "
                      "tensor; `normalized` weights: the ratios, then the logs) and the identity-mode scale s:", ""]
        for k, r in l2f.items():
            med = r.get("embedding_abs", {}).get("median", [])
            scale = f"s = {r['attenuator_scale']:+.4f}; " if "attenuator_scale" in r else ""
            lines.append(f"- {k}: {scale}|embedding| " + ", ".join(f"{v:.1e}" for v in med))
    if out.get("notes", []):
        lines += [""] + [f"- {n}" for n in out.get("notes", [])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="+", metavar="LABEL=FILE|NAME")
    parser.add_argument("--tag", required=True, help="names the JSON and the doc")
    parser.add_argument("--title", default="Validation split")
    parser.add_argument("--dataset", default=os.path.join(ROOT, "benchmarks", ".data", "synth-val-20"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--note", action="append", default=[], help="a reading line under the table")
    parser.add_argument("--from-json", action="store_true",
                        help="rewrite docs/<tag>.md from its JSON (with these --title and --note)")
    args = parser.parse_args()
    if args.from_json:
        import json

        from _util import RESULTS

        with open(os.path.join(RESULTS, f"{args.tag}.json")) as f:
            out = json.load(f)
        out.update(title=args.title, notes=args.note)
        md = render(args.tag, out)
        print(md)
        print("wrote", *save(args.tag, out, md))
        return

    from otb_eval.datasets import OTBDataset
    from otb_eval.report import evaluate
    from tracker.cli import main as metatrack

    if not os.path.isdir(args.dataset):
        sys.exit(f"val_weights: no dataset {args.dataset}")
    rows = [split_row(r) for r in args.rows]
    warnings.simplefilter("ignore")
    dataset = OTBDataset(args.dataset)
    results = os.path.join(ROOT, "benchmarks", ".data", f"results-{args.tag}")
    shutil.rmtree(results, ignore_errors=True)
    for label, path, options in rows:
        code = metatrack(["eval", "--dataset", args.dataset, "--results", results, "--workers",
                          str(args.workers), "--device", "cpu", *eval_args(label, path, options)])
        if code:
            sys.exit(code)
    perf = evaluate(dataset, results, [label for label, _, _ in rows])
    out = {"dataset": {"path": os.path.relpath(args.dataset, ROOT), "sequences": len(dataset)},
           "rows": {}, "title": args.title, "notes": args.note, "workers": args.workers, "machine": machine()}
    from tracker.options import parse_key_values

    for label, path, options in rows:
        o = perf[label]["overall"]
        row = {"file": path and os.path.relpath(path, ROOT), "auc": o["success_score"],
               "precision_20px": o["precision_score"], "success_rate_0.5": o["success_rate"], "fps": o["fps"],
               "auc_per_sequence": {s: e["success_score"] for s, e in perf[label]["seq_wise"].items()}}
        if options:
            row["options"] = parse_key_values(options, "--option")
        found = first_frame_gamma(row_tracker(path, options), dataset) if path else None
        if found is not None:
            g, emb = found
            row["gamma"] = {n: {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(np.min(v)),
                                "max": float(np.max(v)), "per_sequence": v} for n, v in g.items()}
            if emb and emb[0]:
                e = np.abs(np.asarray(emb))
                row["embedding_abs"] = {"median": np.median(e, axis=0).tolist(), "max": e.max(axis=0).tolist(),
                                        "per_sequence": emb}
            from foundation.checkpoint import load_checkpoint

            att = load_checkpoint(path)[0].get("attenuator") or {}
            if "scale" in att:
                row["attenuator_scale"] = float(att["scale"])
        out["rows"][label] = row
    md = render(args.tag, out)
    print(md)
    print("wrote", *save(args.tag, out, md))


if __name__ == "__main__":
    main()
