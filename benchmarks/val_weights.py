"""Score weights files on the VALIDATION split: the recipe's choices are made here, never on test.

    python benchmarks/val_weights.py --tag metacrest_recipe --dataset benchmarks/.data/synth-val-20 \\
        metacrest=runs/mc-e5/metacrest.pt metacrest-l2f=runs/mc-e5/metacrest-l2f.pt csrt ...

Each ``LABEL=FILE`` (or ``LABEL=FILE@option=value,option=value`` with tracker options) runs that weights file under the tracker its family names (``metacrest`` or
``metasdnet``; ``LABEL`` only names the row, and a label starting with ``crest`` or ``mdnet`` runs
the non-meta start on the file's backbone); a bare name runs a registered tracker (``csrt``).
For L2F weights the gamma of every adapted tensor on every sequence's first frame is kept, with
its mean and spread over sequences, and g_phi's input there (the task embedding) and its
identity-mode scale s. Writes ``benchmarks/results/<tag>.json`` and
``docs/<tag>.md``; ``--note`` adds a line of reading under the table.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings

import numpy as np
from _util import ROOT, first_frame_gamma, machine, save


def split_row(row: str) -> tuple[str, str | None, dict]:
    """``LABEL[=FILE[@key=value,...]]`` -> (label, file, tracker options)."""
    import ast

    label, _, rest = row.partition("=")
    path, _, opts = rest.partition("@")
    options = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return label, path or None, options


def tracker_for(label: str, path: str | None, options: dict | None = None):
    """A picklable factory for the row."""
    from tracker.api import factory

    options = options or {}
    if path is None:
        return factory(label, **options)
    from foundation.checkpoint import load_checkpoint

    state, _ = load_checkpoint(path)
    fam = state.get("family") or "metasdnet"
    if label.startswith(("crest", "mdnet")):
        return factory("crest" if fam == "metacrest" else "mdnet", weights=path, **options)
    return factory(fam, weights=path, **options)


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
    from otb_eval.experiment import run_ope
    from otb_eval.report import evaluate

    if not os.path.isdir(args.dataset):
        sys.exit(f"val_weights: no dataset {args.dataset}")
    rows = [split_row(r) for r in args.rows]
    for label, path, _ in rows:
        if path is not None and not os.path.isfile(path):
            sys.exit(f"val_weights: {label}: no file {path}")
    warnings.simplefilter("ignore")
    dataset = OTBDataset(args.dataset)
    results = os.path.join(ROOT, "benchmarks", ".data", f"results-{args.tag}")
    shutil.rmtree(results, ignore_errors=True)
    for label, path, options in rows:
        run_ope(tracker_for(label, path, options), dataset, results, name=label, workers=args.workers)
    perf = evaluate(dataset, results, [label for label, _, _ in rows])
    out = {"dataset": {"path": os.path.relpath(args.dataset, ROOT), "sequences": len(dataset)},
           "rows": {}, "title": args.title, "notes": args.note, "workers": args.workers, "machine": machine()}
    for label, path, options in rows:
        o = perf[label]["overall"]
        row = {"file": path and os.path.relpath(path, ROOT), "auc": o["success_score"],
               "precision_20px": o["precision_score"], "success_rate_0.5": o["success_rate"], "fps": o["fps"],
               "auc_per_sequence": {s: e["success_score"] for s, e in perf[label]["seq_wise"].items()}}
        if options:
            row["options"] = options
        found = first_frame_gamma(tracker_for(label, path, options)(), dataset) if path else None
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
