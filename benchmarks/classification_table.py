"""Few-shot classification table on the embedded glyph benchmark: the seed's Table A rows (MAML,
+L2F, +DropGrad, +L2F+DropGrad, +GradDrop, +PCGrad) and Table B's four l2 meta-regularised models,
5-way 1-shot and 5-shot, 4-conv, 28x28, 600 fixed test tasks each, and a pixel nearest-neighbour floor.

Writes ``benchmarks/results/classification_table.json`` and ``docs/results/classification_table.md``.
Every run lives in ``--workdir/<shots>shot/<slug>/seed<k>`` with its own checkpoint and
results.json, so an interrupted table resumes: finished runs are reused, unfinished ones continue
from their checkpoint.  Table B's lambda_j = 5e-4 / gamma_j use the layer-wise mean gamma of the
+L2F run (seed 0) of the same shots.  ``--summary-only`` writes the table from the runs finished so
far (unfinished cells say so).

``--parallel N`` runs N single-thread runs side by side (Table B's runs wait for the +L2F run
whose gammas they use).

    nice -n 10 python benchmarks/classification_table.py --parallel 2 > runs/classification_table.log 2>&1 &
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from _util import figure_path, load_json, machine, save, save_figure

from foundation.devices import resolve_device
from meta_learning.tasks.classification.datasets import load_pools
from meta_learning.tasks.classification.train import ClassificationConfig, pixel_nn, run
from meta_learning.tasks.regression import load_gamma

TABLE_A: Dict[str, Dict[str, Any]] = {
    "MAML": {},
    "+L2F": {"l2f": True},
    "+DropGrad": {"dropgrad": "binary"},
    "+L2F+DropGrad": {"l2f": True, "dropgrad": "binary"},
    "+GradDrop": {"surgery": "graddrop"},
    "+PCGrad": {"surgery": "pcgrad"},
}
TABLE_B: Dict[str, Dict[str, Any]] = {
    "l2, lambda_j Eq. C": {"l2_meta_reg": "eqc"},
    "l2, mean of Eq. C": {"l2_meta_reg": "mean"},
    "l2, min of Eq. C": {"l2_meta_reg": "min"},
    "l2, max of Eq. C": {"l2_meta_reg": "max"},
}
SLUG = {"MAML": "maml", "+L2F": "l2f", "+DropGrad": "dropgrad", "+L2F+DropGrad": "l2f_dropgrad",
        "+GradDrop": "graddrop", "+PCGrad": "pcgrad", "l2, lambda_j Eq. C": "l2_eqc",
        "l2, mean of Eq. C": "l2_mean", "l2, min of Eq. C": "l2_min", "l2, max of Eq. C": "l2_max"}
T_975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}   # Student t quantiles, by number of seeds
# the seed's miniImageNet numbers (4-conv, 5-way; Table A and Table B are 5-shot for l2)
PUBLISHED = {"MAML": (48.70, 63.11), "+L2F": (52.10, 69.38), "+GradDrop": (50.26, 66.94),
             "+PCGrad": (50.42, 65.26), "l2, lambda_j Eq. C": (None, 68.41), "l2, mean of Eq. C": (None, 65.26),
             "l2, min of Eq. C": (None, 64.27), "l2, max of Eq. C": (None, 61.24)}


def plan(args: argparse.Namespace) -> List[Tuple[str, int, int]]:
    """(method, shots, seed) in the order they run, most needed first (a table cut short by its
    budget still has them): the seed's Table A rows (+L2F first, 5-shot first: Table B needs its gammas;
    MAML, +GradDrop, +PCGrad) at seed 0, the
    extra seeds of MAML and +L2F, Table B (5-shot as in the seed; it needs the +L2F gamma), then
    +DropGrad and +L2F+DropGrad."""
    jobs: List[Tuple[str, int, int]] = []
    for method in ("+L2F", "MAML", "+GradDrop", "+PCGrad"):
        jobs += [(method, shots, 0) for shots in sorted(args.shots, reverse=True)]
    for seed in range(1, args.seeds):
        for method in ("MAML", "+L2F"):
            jobs += [(method, shots, seed) for shots in args.shots]
    for method in TABLE_B:
        jobs += [(method, shots, 0) for shots in args.table_b_shots]
    for method in ("+DropGrad", "+L2F+DropGrad"):
        jobs += [(method, shots, 0) for shots in args.shots]
    return jobs


def config(method: str, shots: int, seed: int, args: argparse.Namespace, workdir: Path) -> ClassificationConfig:
    kw = dict(TABLE_A[method] if method in TABLE_A else TABLE_B[method])
    if "l2_meta_reg" in kw:
        kw["l2_gamma"] = load_gamma(run_dir(workdir, "+L2F", shots, 0) / "results.json")
    return ClassificationConfig(dataset="glyphs", ways=5, shots=shots, backbone="conv4", image_size=28,
                                iterations=args.iterations, val_every=args.val_every, val_tasks=args.val_tasks,
                                top_k=args.top_k, eval_tasks=args.eval_tasks, seed=seed,
                                checkpoint_every=args.val_every, **kw).validate()


def run_dir(workdir: Path, method: str, shots: int, seed: int) -> Path:
    return workdir / f"{shots}shot" / SLUG[method] / f"seed{seed}"


def finished(workdir: Path, method: str, shots: int, seed: int, args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    path = run_dir(workdir, method, shots, seed) / "results.json"
    if not path.exists():
        return None
    res = json.loads(path.read_text())
    c = res["config"]
    if c["iterations"] != args.iterations or c["eval_tasks"] != args.eval_tasks or c["top_k"] != args.top_k:
        return None
    return res


def summarise(workdir: Path, args: argparse.Namespace) -> Dict[str, Any]:
    table: Dict[str, Any] = {}
    for method in list(TABLE_A) + list(TABLE_B):
        table[method] = {}
        for shots in args.shots:
            res = [r for s in range(args.seeds) if (r := finished(workdir, method, shots, s, args))]
            if not res:
                continue
            means = [r["accuracy"]["mean"] for r in res]
            n = len(means)
            mean = sum(means) / n
            sd = math.sqrt(sum((m - mean) ** 2 for m in means) / (n - 1)) if n > 1 else 0.0
            entry = {"mean": mean, "ci95_tasks": sum(r["accuracy"]["ci95"] for r in res) / n,
                     "per_seed": means, "seeds": n, "sd_seeds": sd,
                     "ci95_seeds": T_975.get(n, 2.0) * sd / math.sqrt(n) if n > 1 else None,
                     "train_seconds": sum(r["train"]["seconds"] for r in res),
                     "eval_seconds": sum(r["eval_seconds"] for r in res),
                     "seconds_per_iteration": [r["train"]["seconds"] / r["train"]["iterations"] for r in res],
                     "val_curves": [[[h[0], h[2]] for h in r["train"]["history"]] for r in res]}
            if "gamma" in res[0]:
                entry["gamma_seed0"] = res[0]["gamma"]
            if res[0]["config"].get("l2_gamma"):
                entry["lambda_from_gamma"] = res[0]["config"]["l2_gamma"]
            table[method][str(shots)] = entry
    return table


def interval(e: Dict[str, Any]) -> float:
    """Half-width used for comparisons: the seed CI where there are seeds, else the task CI."""
    return e["ci95_seeds"] if e.get("ci95_seeds") is not None else e["ci95_tasks"]


def markdown(summary: Dict[str, Any], floor: Dict[str, Any], meta: Dict[str, Any]) -> str:
    shots = meta["shots"]
    selection = ("best validation checkpoint" if meta["top_k"] == 1
                 else f"top-{meta['top_k']} validation checkpoints' averaged predictions")
    lines = [
        "# Few-shot classification on the glyph benchmark: the seed's Tables A and B",
        "",
        "Generated by `python benchmarks/classification_table.py` (numbers in "
        "`benchmarks/results/classification_table.json`). Do not edit the table by hand.",
        "",
        f"Data: the embedded glyph benchmark (docs/classification.md): {meta['glyphs']}. 5-way, "
        "15 query images per class, the same fixed test tasks for every run.",
        "",
        f"Protocol (the seed's, at a smaller budget): 4-conv (48 filters, batch norm with batch statistics, "
        f"not adapted), 28x28 grey images, 5 inner SGD steps at lr 0.01, Adam 1e-3, meta-batch 4 (1-shot) / "
        f"2 (5-shot), first order for the first {meta['first_order']} iterations then second order, meta-"
        f"gradients clamped to [-10, 10]; **{meta['iterations']} meta-iterations per run** (the seed trains "
        f"50,000: this table is a {meta['iterations'] / 50000:.0%} budget); validation every "
        f"{meta['val_every']} iterations on {meta['val_tasks']} fixed validation tasks; test score of the "
        f"{selection} on {meta['eval_tasks']} fixed test tasks (as the L2F authors do"
        + (")." if meta["top_k"] == 3 else "; they average the top-3)."),
        "",
        f"Compute: {meta['run_seconds_total'] / 3600:.1f} h of wall-clock run time for the {meta['runs']} runs "
        f"finished (training + validation + test, one torch thread each, {meta['parallel']} side by side at "
        f"nice 10) on {meta['machine']}, {meta['seconds_per_iteration']:.2f} s per meta-iteration (median "
        f"over runs), on a machine shared with other work"
        + ("; cells marked 'not run' did not fit the session (the same command resumes and runs them)."
           if meta["runs"] < meta["planned"] else "."),
        "",
        "Each cell: test accuracy (%) mean over seeds +- 95% CI. With one seed the CI is over the test tasks "
        "(1.96 sd / sqrt(tasks)); with several, the CI over seeds (Student t) is given and the mean task CI "
        "in brackets. Add-ons: L2F sigmoid attenuator over the 6 adapted tensors, detached embedding; "
        "DropGrad binary p = 0.1; GradDrop/PCGrad across the per-task meta-gradients of the meta-batch (our "
        "adaptation, see docs/meta_learning.md); Table B: Eq. B with lambda_j = 5e-4 / gamma_j, gamma_j the "
        "mean gamma per tensor of the +L2F run (seed 0) on the test tasks, or the mean/min/max of those lambdas.",
        "",
        "| method | " + " | ".join(f"5-way {k}-shot" for k in shots) + " | seed, miniImageNet 1 / 5-shot |",
        "|---|" + "---|" * len(shots) + "---|",
        "| pixel 1-nearest-neighbour (floor) | " + " | ".join(
            f"{100 * floor[str(k)]['mean']:.2f} +- {100 * floor[str(k)]['ci95']:.2f}" for k in shots) + " | - |",
    ]
    for method, by in summary.items():
        cells = []
        for k in shots:
            e = by.get(str(k))
            if e is None:
                cells.append("not run" if method in TABLE_A or k in meta["table_b_shots"] else "-")
                continue
            if e["seeds"] > 1:
                cells.append(f"{100 * e['mean']:.2f} +- {100 * e['ci95_seeds']:.2f} "
                             f"({e['seeds']} seeds; tasks +- {100 * e['ci95_tasks']:.2f})")
            else:
                cells.append(f"{100 * e['mean']:.2f} +- {100 * e['ci95_tasks']:.2f}")
        pub = PUBLISHED.get(method)
        pub_s = " / ".join("-" if v is None else f"{v:.2f}" for v in pub) if pub else "-"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {pub_s} |")
    lines += ["", "## Reading", ""]
    lines += reading(summary, floor, shots)
    g = summary.get("+L2F", {})
    gam = {k: g[str(k)].get("gamma_seed0") for k in shots if str(k) in g}
    if any(gam.values()):
        vals = [x for v in gam.values() if v for x in v.values()]
        lines += ["", f"The learned gammas lie between {min(vals):.2f} and {max(vals):.2f} after "
                  f"{meta['iterations']} iterations (mean per tensor over the test tasks; the sigmoid attenuator "
                  "starts near 0.5), so Table B's lambda_j = 5e-4 / gamma_j lie between "
                  f"{5e-4 / max(vals):.1e} and {5e-4 / min(vals):.1e}."]
        names = list(next(v for v in gam.values() if v))
        lines += ["", "Mean L2F gamma per adapted tensor (seed 0, test tasks), the gamma_j of Table B:", "",
                  "| shots | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for k, v in gam.items():
            if v:
                lines.append(f"| {k} | " + " | ".join(f"{v[n]:.3f}" for n in names) + " |")
    lines += full_schedule(meta)
    lines.append("")
    return "\n".join(lines)


def full_schedule(meta: Dict[str, Any]) -> List[str]:
    """The seed's schedule as commands, with the time this machine's measured speed implies."""
    per_it = meta["seconds_per_iteration"]
    conv84 = load_json("engine_speed")
    mini = conv84["results"]["conv"]["engine_loop"]["median_s"]
    return [
        "", "## The seed's full schedule", "",
        "This table's command at the seed's 50,000 iterations (validation every 500 on 600 tasks, as the "
        "seed), on a GPU, 24 runs one after another (`--parallel N` runs N side by side, also on one GPU):", "",
        "```bash",
        "python benchmarks/classification_table.py --iterations 50000 --val-every 500 --val-tasks 600 \\",
        "    --device cuda --workdir runs/classification_full",
        "```", "",
        "On miniImageNet (84x84, the seed's data) each row of Tables A and B is one command "
        "(`--config` names in docs/classification.md; Table B rows also take `--l2-gamma` of the +L2F run):", "",
        "```bash",
        "metalearn classification --config table-a/miniimagenet-5way-1shot-l2f --root ~/data/mini --device cuda --out runs/a-l2f",
        "```", "",
        f"Expected time on this machine's CPU core, from the measured speed: glyphs "
        f"{per_it:.2f} s per meta-iteration (this table's runs) -> {50000 * per_it / 3600:.1f} h of training per run; "
        f"miniImageNet 1-shot {mini:.2f} s per meta-update (docs/results/engine_speed.md, 84x84, meta-batch 4) -> "
        f"{50000 * mini / 3600:.0f} h per run. No GPU was lent to the session that made this table, so the GPU "
        "time is not measured here; `benchmarks/gpu_check.py` times a short glyph run on a device when one is.",
    ]


def reading(summary: Dict[str, Any], floor: Dict[str, Any], shots: List[int]) -> List[str]:
    out = []
    base = summary.get("MAML", {})
    for k in shots:
        b = base.get(str(k))
        if b is None:
            continue
        f = floor[str(k)]
        out.append(f"- {k}-shot: MAML {100 * b['mean']:.1f}% vs the pixel floor {100 * f['mean']:.1f}% "
                   f"({100 * (b['mean'] - f['mean']):+.1f} points).")
        for method, by in summary.items():
            e = by.get(str(k))
            if method == "MAML" or e is None:
                continue
            diff = e["mean"] - b["mean"]
            noise = interval(e) + interval(b)
            verdict = ("better than MAML" if diff > noise else "worse than MAML" if diff < -noise
                       else "no difference from MAML beyond the intervals")
            seed_gap = published_gap(method, k)
            out.append(f"  - {method}: {100 * diff:+.2f} points, {verdict} (intervals summed: "
                       f"+- {100 * noise:.2f})" + (f"; the seed: {seed_gap:+.2f} on miniImageNet." if seed_gap is not None
                                                  else "."))
    out += curve_reading(summary, shots) + table_b_reading(summary, base)
    return out


def published_gap(method: str, shots: int) -> Optional[float]:
    """The seed's miniImageNet difference to MAML in points, where it reports the row."""
    col = 0 if shots == 1 else 1 if shots == 5 else None
    pub, maml = PUBLISHED.get(method), PUBLISHED["MAML"]
    if col is None or pub is None or pub[col] is None or method == "MAML":
        return None
    return pub[col] - maml[col]


def mean_curve(entry: Dict[str, Any]) -> Tuple[List[int], List[float]]:
    """Validation accuracy per validation point, averaged over the seeds that reached it."""
    by_it: Dict[int, List[float]] = {}
    for curve in entry["val_curves"]:
        for it, acc in curve:
            by_it.setdefault(int(it), []).append(acc)
    its = sorted(by_it)
    return its, [sum(by_it[i]) / len(by_it[i]) for i in its]


def curve_reading(summary: Dict[str, Any], shots: List[int]) -> List[str]:
    """Does +L2F end higher than MAML, or only get there sooner (validation accuracy over training)?"""
    out = []
    for k in shots:
        m, f = summary.get("MAML", {}).get(str(k)), summary.get("+L2F", {}).get(str(k))
        if m is None or f is None:
            continue
        (mi, ma), (fi, fa) = mean_curve(m), mean_curve(f)
        end_m, end_f = sum(ma[-3:]) / len(ma[-3:]), sum(fa[-3:]) / len(fa[-3:])
        reach = next((it for it, a in zip(fi, fa) if a >= end_m), None)
        out.append(f"- Learning curves, {k}-shot (docs/results/classification_curves.png): validation accuracy over "
                   f"the last three validations {100 * end_f:.1f}% (+L2F) vs {100 * end_m:.1f}% (MAML); "
                   f"MAML at iteration {mi[0]}: {100 * ma[0]:.1f}%, +L2F {100 * fa[0]:.1f}%; "
                   + (f"+L2F reaches MAML's final level at iteration {reach} of {mi[-1]}."
                      if reach is not None else "+L2F never reaches MAML's final level."))
        out.append(f"  Over the second half of the run MAML's validation accuracy moves "
                   f"{100 * late_slope(mi, ma):+.1f} points per 1000 iterations, +L2F's "
                   f"{100 * late_slope(fi, fa):+.1f}.")
    return out


def late_slope(its: List[int], accs: List[float]) -> float:
    """Least-squares slope of accuracy per 1000 iterations over the second half of a curve."""
    half = len(its) // 2
    x, y = its[half:], accs[half:]
    if len(x) < 2:
        return 0.0
    mx, my = sum(x) / len(x), sum(y) / len(y)
    return 1000 * sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)


def plot_curves(summary: Dict[str, Any], shots: List[int], path: str) -> None:
    """Validation accuracy vs meta-iteration, MAML and +L2F: each seed thin, the mean thick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shots), figsize=(5 * len(shots), 3.6), squeeze=False)
    for ax, k in zip(axes[0], shots):
        for method, colour in (("MAML", "tab:red"), ("+L2F", "tab:green")):
            e = summary.get(method, {}).get(str(k))
            if e is None:
                continue
            for curve in e["val_curves"]:
                ax.plot([c[0] for c in curve], [100 * c[1] for c in curve], color=colour, lw=0.6, alpha=0.5)
            its, accs = mean_curve(e)
            ax.plot(its, [100 * a for a in accs], color=colour, lw=2,
                    label=f"{method} (mean of {e['seeds']} seed{'s' if e['seeds'] > 1 else ''})")
        ax.set_title(f"glyphs 5-way {k}-shot")
        ax.set_xlabel("meta-iteration")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def table_b_reading(summary: Dict[str, Any], base: Dict[str, Any]) -> List[str]:
    """Table B's order at 5 shots against the seed's (Eq. C > mean > min > max)."""
    rows = {m: summary.get(m, {}).get("5") for m in TABLE_B}
    if any(v is None for v in rows.values()):
        return []
    order = sorted(rows, key=lambda m: -rows[m]["mean"])
    seed_order = sorted(TABLE_B, key=lambda m: -(PUBLISHED[m][1] or 0))
    spread = max(v["mean"] for v in rows.values()) - min(v["mean"] for v in rows.values())
    noise = max(interval(v) for v in rows.values())
    short = {m: m.replace("l2, ", "").replace(" of Eq. C", "").replace("lambda_j ", "") for m in TABLE_B}
    return [f"- Table B (5-shot) order here: {' > '.join(short[m] for m in order)} "
            f"({' / '.join('%.2f' % (100 * rows[m]['mean']) for m in order)}); the seed's: "
            f"{' > '.join(short[m] for m in seed_order)} (68.41 / 65.26 / 64.27 / 61.24). "
            + ("The same order" if order == seed_order else "Not the seed's order")
            + f", but the four rows lie within {100 * spread:.2f} points of each other "
            + ("(less than one row's interval, +- " if spread < noise else "(one row's interval: +- ")
            + f"{100 * noise:.2f}), so "
            + ("the order is not resolved at this budget." if spread < 2 * noise
               else "the order holds beyond the intervals.")]


def one_run(job: Tuple[str, int, int], args: argparse.Namespace, workdir: Path, pools: Any = None) -> str:
    """Train and test one (method, shots, seed) on one torch thread; a line for the log."""
    torch.set_num_threads(1)
    method, shots, seed = job
    pools = pools or load_pools("glyphs", image_size=28)
    t0 = time.perf_counter()
    device = resolve_device(args.device)
    res = run(config(method, shots, seed, args, workdir), run_dir(workdir, method, shots, seed),
              resume=True, progress=False, pools=pools, device=device)
    return (f"{method:>20} {shots}-shot seed {seed}: {100 * res['accuracy']['mean']:.2f} +- "
            f"{100 * res['accuracy']['ci95']:.2f} ({time.perf_counter() - t0:.0f} s)")


def needs(job: Tuple[str, int, int]) -> Optional[Tuple[str, int, int]]:
    """The run whose results a job reads (Table B reads the +L2F seed-0 gammas of its shots)."""
    return ("+L2F", job[1], 0) if job[0] in TABLE_B else None


def run_all(jobs: List[Tuple[str, int, int]], args: argparse.Namespace, workdir: Path, pools: Any) -> None:
    """The jobs in plan order, ``args.parallel`` at a time in fresh processes (one at a time in
    this one with ``--parallel 1``), each job started once the run it needs has finished."""
    if args.parallel == 1:
        for job in jobs:
            print(one_run(job, args, workdir, pools), flush=True)
        return
    pending, running = list(jobs), {}
    with ProcessPoolExecutor(args.parallel, mp_context=get_context("spawn")) as pool:
        while pending or running:
            for job in list(pending):
                if len(running) >= args.parallel:
                    break
                dep = needs(job)
                if dep is None or (dep not in pending and dep not in running):   # else: not done yet
                    pending.remove(job)
                    running[job] = pool.submit(one_run, job, args, workdir)
            done, _ = wait(list(running.values()), return_when=FIRST_COMPLETED)
            for job, fut in list(running.items()):
                if fut in done:
                    print(fut.result(), flush=True)
                    del running[job]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--val-tasks", type=int, default=100)
    p.add_argument("--top-k", type=int, default=3, help="validation checkpoints averaged at test")
    p.add_argument("--parallel", type=int, default=1, help="runs side by side, one torch thread each")
    p.add_argument("--seeds", type=int, default=3, help="seeds of MAML and +L2F (other rows: seed 0)")
    p.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    p.add_argument("--table-b-shots", type=int, nargs="+", default=[5])
    p.add_argument("--eval-tasks", type=int, default=600)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--workdir", type=Path, default=Path("runs") / "classification_table")
    p.add_argument("--summary-only", action="store_true", help="write the table from finished runs")
    p.add_argument("--quick", action="store_true", help="smoke test into --workdir/quick; results not saved")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    workdir = args.workdir
    if args.quick:
        args.iterations, args.val_every, args.val_tasks, args.eval_tasks, args.seeds = 4, 2, 5, 10, 1
        workdir = workdir / "quick"
    pools = load_pools("glyphs", image_size=28)
    if not args.summary_only:
        run_all([job for job in plan(args) if not finished(workdir, *job, args)], args, workdir, pools)
    floor = {str(k): pixel_nn(pools["test"], 5, k, 15, args.eval_tasks) for k in args.shots}
    summary = summarise(workdir, args)
    runs = [r for m in summary.values() for r in m.values()]
    total = sum(r["train_seconds"] + r["eval_seconds"] for r in runs)
    n_runs = sum(r["seeds"] for r in runs)
    counts = {s: len(pools[s]) for s in ("train", "val", "test")}
    mach = machine()
    meta = {"iterations": args.iterations, "first_order": args.iterations // 10, "val_every": args.val_every,
            "val_tasks": args.val_tasks, "top_k": args.top_k, "eval_tasks": args.eval_tasks,
            "seeds": args.seeds, "shots": args.shots, "table_b_shots": args.table_b_shots,
            "run_seconds_total": total, "runs": n_runs, "parallel": args.parallel, "device": args.device,
            "seconds_per_iteration": statistics.median(x for r in runs for x in r["seconds_per_iteration"]),
            "planned": len(plan(args)),
            "glyphs": f"{sum(counts.values())} letters, train/val/test {counts['train']}/{counts['val']}/"
                      f"{counts['test']} classes split by script, 20 renderings each",
            "machine": f"{mach['cpus']}-CPU {mach['platform']}, torch {mach['torch']}", "date": mach["date"]}
    doc = {"meta": meta, "pixel_nn": floor, "table": summary}
    if args.quick:
        print(markdown(summary, floor, meta))
        return 0
    save("classification_table", doc, markdown(summary, floor, meta))
    plot_curves(summary, args.shots, figure_path("classification_curves.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
