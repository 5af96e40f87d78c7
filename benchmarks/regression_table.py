"""Sinusoid regression table: MAML and its add-ons at 5, 10 and 20 shots, 3 seeds, 600 tasks.

Writes ``benchmarks/results/regression_table.json`` and ``docs/regression_table.md``.  Every run
lives in ``--workdir/<shots>shot/<method>/seed<k>`` with its own checkpoint and results.json, so an
interrupted table resumes (finished runs are reused, unfinished ones continue from their
checkpoint).  The +l2 meta-reg row uses Eq. C with the mean gammas of the +L2F run of the same
shots and seed.  ``--quick`` is a smoke test (tiny budget, 1 seed, 5 shots); it writes to
``--workdir``/quick and does not touch the committed results unless ``--out-json``/``--out-md``
are given.

    nohup python benchmarks/regression_table.py > runs/regression_table.log 2>&1 &
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from meta_learning.tasks.regression import RegressionConfig, load_gamma, run  # noqa: E402

METHODS: Dict[str, Dict[str, Any]] = {
    "MAML": {},
    "+L2F": {"l2f": True},
    "+DropGrad": {"dropgrad": "binary", "dropgrad_rate": 0.1},
    "+L2F+DropGrad": {"l2f": True, "dropgrad": "binary", "dropgrad_rate": 0.1},
    "+GradDrop": {"surgery": "graddrop"},
    "+PCGrad": {"surgery": "pcgrad"},
    "+l2 meta-reg": {"l2_meta_reg": "eqc"},
}
PUBLISHED_MAML = {"5": 1.13, "10": 0.85, "20": 0.71}     # 1-step MSE, widely cited
PUBLISHED_META_SGD = {"5": 0.90, "10": 0.53, "20": 0.31}
SLUG = {"MAML": "maml", "+L2F": "l2f", "+DropGrad": "dropgrad", "+L2F+DropGrad": "l2f_dropgrad",
        "+GradDrop": "graddrop", "+PCGrad": "pcgrad", "+l2 meta-reg": "l2reg"}


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_one(method: str, shots: int, seed: int, args: argparse.Namespace, workdir: Path) -> Dict[str, Any]:
    out = workdir / f"{shots}shot" / SLUG[method] / f"seed{seed}"
    done = out / "results.json"
    if done.exists():
        res = json.loads(done.read_text())
        if res["train"]["iterations"] == args.iterations and res["config"]["eval_tasks"] == args.eval_tasks:
            return res
    kw = dict(METHODS[method])
    if kw.get("l2_meta_reg"):
        l2f_res = workdir / f"{shots}shot" / SLUG["+L2F"] / f"seed{seed}" / "results.json"
        kw["l2_gamma"] = load_gamma(l2f_res)
    cfg = RegressionConfig(shots=shots, iterations=args.iterations, meta_batch=args.meta_batch,
                           eval_tasks=args.eval_tasks, seed=seed, checkpoint_every=500, **kw).validate()
    t0 = time.perf_counter()
    res = run(cfg, out, resume=True, progress=False, plot=seed == 0)
    print(f"{method:>14} {shots:2d}-shot seed {seed}: 1 step {res['mse']['1']['mean']:.3f}, "
          f"10 steps {res['mse']['10']['mean']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return res


def summarise(runs: Dict[str, Dict[str, List[Dict[str, Any]]]]) -> Dict[str, Any]:
    table: Dict[str, Any] = {}
    for method, by_shots in runs.items():
        table[method] = {}
        for shots, results in by_shots.items():
            entry: Dict[str, Any] = {}
            for step in ("1", "10"):
                means = [r["mse"][step]["mean"] for r in results]
                cis = [r["mse"][step]["ci95"] for r in results]
                n = len(means)
                mean = sum(means) / n
                sd = math.sqrt(sum((m - mean) ** 2 for m in means) / (n - 1)) if n > 1 else 0.0
                entry[step] = {"mean": mean, "ci95_tasks": sum(cis) / n, "sd_seeds": sd,
                               "per_seed": means}
            entry["train_seconds"] = sum(r["train"]["seconds"] for r in results)
            entry["eval_seconds"] = sum(r.get("eval_seconds", 0.0) for r in results)
            if "gamma" in results[0]:
                names = list(results[0]["gamma"])
                entry["gamma_mean"] = {k: sum(r["gamma"][k] for r in results) / len(results) for k in names}
            table[method][shots] = entry
    return table


def verdict(base: Dict[str, Any], other: Dict[str, Any]) -> str:
    """better/worse when the seed-mean difference exceeds both the 600-task CI and 2 seed s.e.;
    otherwise 'no clear difference'."""
    diff = other["mean"] - base["mean"]
    n = max(len(base["per_seed"]), 1)
    noise = max(base["ci95_tasks"] + other["ci95_tasks"],
                2 * math.sqrt((base["sd_seeds"] ** 2 + other["sd_seeds"] ** 2) / n))
    if abs(diff) <= noise:
        return "~"
    return "better" if diff < 0 else "worse"


def markdown(summary: Dict[str, Any], meta: Dict[str, Any]) -> str:
    shots = meta["shots"]
    lines = [
        "# Sinusoid regression: MAML and add-ons",
        "",
        "Generated by `python benchmarks/regression_table.py` (numbers in "
        "`benchmarks/results/regression_table.json`). Do not edit the table by hand.",
        "",
        f"Protocol: MAML sinusoid tasks (A ~ U[0.1, 5], phi ~ U[0, pi], x ~ U[-5, 5]), MLP 1-40-40-1 ReLU, "
        f"K support and K query points per training task, one inner SGD step (lr 0.01) at meta-training, "
        f"Adam 1e-3, meta-batch {meta['meta_batch']}, **{meta['iterations']} meta-iterations per run** "
        f"(the papers train about 70,000: this table is a {meta['iterations'] / 70000:.0%} budget so that it "
        f"fits one CPU core), second order. Evaluation: the same {meta['eval_tasks']} held-out tasks for every run "
        f"(fixed evaluation seed), K support points, 100 query points, MSE after 1 and 10 inner steps (lr 0.01). "
        f"Each cell: mean over {meta['seeds']} seeds (model init and training tasks) +- the 95% CI over the "
        f"{meta['eval_tasks']} tasks (1.96 sd / sqrt(n), averaged over seeds); s.d. over seeds in brackets. "
        f"Compute: {meta['run_seconds_total'] / 60:.1f} min in total for the {meta['runs']} runs (training + "
        f"evaluation, one torch thread, {meta['machine']}, shared with other jobs).",
        "",
        "Add-on settings: L2F sigmoid attenuator n-n-n over the 6 tensors, detached embedding; DropGrad "
        "binary p = 0.1, constant; GradDrop/PCGrad across the 25 per-task meta-gradients (our adaptation, "
        "see docs/meta_learning.md); l2 meta-reg: Eq. C, lambda_j = 5e-4 / gamma_j with gamma_j the mean "
        "gamma of the +L2F run of the same shots and seed.",
        "",
    ]
    for step in ("1", "10"):
        lines.append(f"## MSE after {step} step{'s' if step != '1' else ''}")
        lines.append("")
        lines.append("| method | " + " | ".join(f"{k}-shot" for k in shots) + " |")
        lines.append("|---|" + "---|" * len(shots))
        if step == "1":
            lines.append("| MAML (published) | " + " | ".join(f"{PUBLISHED_MAML.get(str(k), '-')}" for k in shots) + " |")
            lines.append("| Meta-SGD (published, context) | "
                         + " | ".join(f"{PUBLISHED_META_SGD.get(str(k), '-')}" for k in shots) + " |")
        for method, by_shots in summary.items():
            cells = []
            for k in shots:
                e = by_shots[str(k)][step]
                cell = f"{e['mean']:.3f} +- {e['ci95_tasks']:.3f} ({e['sd_seeds']:.3f})"
                if method != "MAML":
                    v = verdict(by_shots_base(summary, k, step), e)
                    cell += {"better": " **better**", "worse": " *worse*", "~": ""}[v]
                cells.append(cell)
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "**better** / *worse*: differs from our MAML row by more than both the summed 600-task CIs and two "
        "standard errors over seeds; unmarked: no clear difference at this budget.",
        "",
        "## Where the add-ons help and where not (this budget)",
        "",
    ]
    for method in summary:
        if method == "MAML":
            continue
        parts = []
        for step in ("1", "10"):
            for k in shots:
                v = verdict(by_shots_base(summary, k, step), summary[method][str(k)][step])
                if v != "~":
                    parts.append(f"{v} at {k}-shot/{step} step{'s' if step != '1' else ''}")
        changes = []
        for step in ("1", "10"):
            rel = [summary[method][str(k)][step]["mean"] / summary["MAML"][str(k)][step]["mean"] - 1 for k in shots]
            changes.append(f"{step} step{'s' if step != '1' else ''}: "
                           + " / ".join(f"{r:+.0%}" for r in rel))
        lines.append(f"- {method}: " + ("; ".join(parts) if parts else "no clear difference from MAML anywhere")
                     + f" (mean MSE change vs MAML at {'/'.join(str(k) for k in shots)} shots, "
                     + "; ".join(changes) + ").")
    gam = {k: summary["+L2F"][str(k)].get("gamma_mean") for k in shots} if "+L2F" in summary else {}
    if any(gam.values()):
        lines += ["", "Mean L2F gamma per tensor (over held-out tasks and seeds):", "",
                  "| shots | " + " | ".join(next(v for v in gam.values() if v)) + " |",
                  "|---|" + "---|" * len(next(v for v in gam.values() if v))]
        for k, g in gam.items():
            if g:
                lines.append(f"| {k} | " + " | ".join(f"{x:.3f}" for x in g.values()) + " |")
    lines.append("")
    return "\n".join(lines)


def by_shots_base(summary: Dict[str, Any], k: int, step: str) -> Dict[str, Any]:
    return summary["MAML"][str(k)][step]


def main(argv: List[str] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--meta-batch", type=int, default=25)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--shots", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--eval-tasks", type=int, default=600)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "regression_table")
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-md", type=Path)
    p.add_argument("--quick", action="store_true", help="smoke test: 30 iterations, 1 seed, 5 shots, 50 tasks")
    args = p.parse_args(argv)
    if args.quick:
        args.iterations, args.seeds, args.shots, args.eval_tasks = 30, 1, [5], 50
        args.workdir = args.workdir / "quick"
    else:
        args.out_json = args.out_json or ROOT / "benchmarks" / "results" / "regression_table.json"
        args.out_md = args.out_md or ROOT / "docs" / "regression_table.md"
    torch.set_num_threads(1)
    methods = list(args.methods)
    if "+l2 meta-reg" in methods and "+L2F" not in methods:
        methods.insert(0, "+L2F")  # Eq. C needs the learned gammas
    order = sorted(methods, key=lambda m: (m != "MAML", m != "+L2F"))
    t0 = time.perf_counter()
    runs: Dict[str, Dict[str, List[Dict[str, Any]]]] = {m: {} for m in order}
    for shots in args.shots:
        for seed in range(args.seeds):
            for method in order:
                runs[method].setdefault(str(shots), []).append(run_one(method, shots, seed, args, args.workdir))
    wall = time.perf_counter() - t0
    summary = summarise({m: runs[m] for m in METHODS if m in runs})
    all_runs = [r for m in runs.values() for rs in m.values() for r in rs]
    meta = {"runs": len(all_runs),
            "run_seconds_total": round(sum(r["train"]["seconds"] + r.get("eval_seconds", 0.0) for r in all_runs), 1),
            "iterations": args.iterations, "meta_batch": args.meta_batch, "seeds": args.seeds,
            "shots": args.shots, "eval_tasks": args.eval_tasks, "wall_seconds": round(wall, 1),
            "machine": f"{platform.machine()} CPU", "torch": torch.__version__,
            "published_maml_1step": PUBLISHED_MAML, "published_meta_sgd_1step": PUBLISHED_META_SGD,
            "note": "wall_seconds covers only the runs not already finished in the workdir when the script "
                    "was last started; run_seconds_total sums every run's own training + evaluation time"}
    doc = {"meta": meta, "table": summary}
    text = json.dumps(doc, indent=1) + "\n"
    md = markdown(summary, meta)
    if args.out_json:
        _atomic_write(args.out_json, text)
    if args.out_md:
        _atomic_write(args.out_md, md)
    if args.quick and not args.out_md:
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
