"""Meta-RL table: 2D navigation at the seed's protocol (MAML, +L2F, +DropGrad, +L2F+DropGrad,
3 seeds) and HalfCheetah velocity at the reduced CPU protocol (MAML, +L2F).

Writes ``benchmarks/results/rl_table.json`` and ``docs/results/rl_table.md`` from every run that has
finished.  Each run lives in ``--workdir/<env>/<method>/seed<k>`` with its own checkpoint, so the
script is resumable: finished runs are reused, an interrupted one continues from its checkpoint.
Runs go in priority order (seed 0 of MAML and +L2F on 2D navigation, the HalfCheetah runs,
seed 0 of the DropGrad rows, then seeds 1 and 2); ``--budget-minutes`` stops starting new runs after that much wall time, and
``--report-only`` rewrites the table from the finished runs without training.

    nice -n 10 python benchmarks/rl_table.py > runs/rl_table.log 2>&1 &
    nice -n 10 python benchmarks/rl_table.py --reverse > runs/rl_table2.log 2>&1 &   # the second CPU
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from _util import ROOT, load_json, machine, save

from meta_learning.tasks.rl.train import config_for, run

METHODS: Dict[str, Dict[str, Any]] = {
    "MAML": {},
    "+L2F": {"l2f": True},
    "+DropGrad": {"dropgrad": "binary", "dropgrad_rate": 0.1},
    "+L2F+DropGrad": {"l2f": True, "dropgrad": "binary", "dropgrad_rate": 0.1},
}
SLUG = {"MAML": "maml", "+L2F": "l2f", "+DropGrad": "dropgrad", "+L2F+DropGrad": "l2f_dropgrad"}
NAV_METHODS = list(METHODS)
HC_METHODS = ["MAML", "+L2F"]


def plan(args: argparse.Namespace) -> List[Tuple[str, str, int]]:
    """(env, method, seed) in priority order."""
    runs = [("2dnav", m, 0) for m in NAV_METHODS[:2]] + [("halfcheetah-vel", m, 0) for m in HC_METHODS]
    runs += [("2dnav", m, 0) for m in NAV_METHODS[2:]]
    runs += [("2dnav", m, s) for s in range(1, args.seeds) for m in NAV_METHODS]
    return runs


def run_dir(workdir: Path, env: str, method: str, seed: int) -> Path:
    return workdir / env / SLUG[method] / f"seed{seed}"


def config(env: str, method: str, seed: int, args: argparse.Namespace):
    if env == "2dnav":
        return config_for("2dnav", "seed", iterations=args.nav_iterations, seed=seed, **METHODS[method]).validate()
    return config_for(env, "reduced", iterations=args.hc_iterations, seed=seed, checkpoint_every=5,
                      **METHODS[method]).validate()


def run_key(env: str, method: str, seed: int) -> str:
    return f"{env} {method} seed {seed}"


def saved_results() -> Dict[str, Dict[str, Any]]:
    """Each finished run's whole ``results.json`` as the committed table keeps it, so that a run
    finished in an earlier session counts as done when its working folder is gone."""
    runs = (load_json("rl_table") or {}).get("runs", {})
    return {k: v["results"] for k, v in runs.items() if "results" in v}


def _kept(res: Dict[str, Any]) -> Dict[str, Any]:
    """A run's results as the table keeps them: everything but the per-iteration training history
    (in the run's folder; not needed to rebuild the table)."""
    train = {k: v for k, v in res["train"].items() if not k.startswith("history")}
    return {**res, "train": train}


def finished(out: Path, cfg: Any, saved: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """The run's results if it finished with exactly these settings (its folder first, else the
    committed table's copy), else None."""
    done = out / "results.json"
    res = json.loads(done.read_text()) if done.exists() else saved
    if res is None or res["train"]["iterations"] != cfg.iterations:
        return None
    same = all(res["config"].get(k) == v for k, v in cfg.to_dict().items()
               if k in res["config"] and not isinstance(v, (list, tuple)))
    return res if same else None


def claim(out: Path):
    """An exclusive lock on the run's folder (an open file), or None when another worker holds it:
    several workers (one per CPU) share the plan without training one run twice."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def summarise(results: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Per step: median over seeds of the per-seed mean return, the per-seed values and 95% CIs
    over the evaluation tasks; a 95% CI over seeds when there are at least 2."""
    steps = sorted(results[0]["return"], key=int)
    out: Dict[str, Any] = {"seeds": [r["config"]["seed"] for r in results], "return": {}}
    for k in steps:
        means = [r["return"][k]["mean"] for r in results]
        cis = [r["return"][k]["ci95"] for r in results]
        entry = {"median": statistics.median(means), "per_seed": means, "ci95_tasks": cis}
        if len(means) > 1:
            # Student's t: with 2 or 3 seeds the normal 1.96 would claim far too narrow an interval
            from scipy.stats import t as student_t
            entry["ci95_seeds"] = float(student_t.ppf(0.975, len(means) - 1)) * statistics.stdev(means) / math.sqrt(len(means))
        out["return"][k] = entry
    out["train_seconds"] = [r["train"]["seconds"] for r in results]
    out["eval_seconds"] = [r.get("eval_seconds", 0.0) for r in results]
    out["best_iteration"] = [r["train"]["best_iteration"] for r in results]
    out["best_train_return"] = [r["train"]["best_return"] for r in results]
    if "gamma" in results[0]:
        out["gamma_mean"] = {n: statistics.mean(r["gamma"][n] for r in results) for n in results[0]["gamma"]}
    return out


def interval(entry: Dict[str, Any]) -> float:
    """Half-width used for comparisons: the CI over seeds when there are >= 2, else over tasks."""
    return entry.get("ci95_seeds", entry["ci95_tasks"][0] if len(entry["ci95_tasks"]) == 1 else max(entry["ci95_tasks"]))


def verdict(base: Dict[str, Any], other: Dict[str, Any]) -> str:
    diff = other["median"] - base["median"]
    if abs(diff) <= interval(base) + interval(other):
        return "~"
    return "better" if diff > 0 else "worse"


def cell(entry: Dict[str, Any]) -> str:
    if "ci95_seeds" in entry:
        return f"{entry['median']:.1f} +- {entry['ci95_seeds']:.1f} (seeds)"
    return f"{entry['median']:.1f} +- {entry['ci95_tasks'][0]:.1f} (tasks)"


def markdown(table: Dict[str, Dict[str, Any]], meta: Dict[str, Any]) -> str:
    lines = [
        "# Meta-RL: 2D navigation and HalfCheetah velocity",
        "",
        "Generated by `python benchmarks/rl_table.py` (numbers in `benchmarks/results/rl_table.json`). "
        "Do not edit by hand.",
        "",
    ]
    for env, title, proto in (("2dnav", "2D navigation, the seed's protocol", meta["protocols"]["2dnav"]),
                              ("halfcheetah-vel", "HalfCheetah velocity, the reduced CPU protocol",
                               meta["protocols"]["halfcheetah-vel"])):
        lines += [f"## {title}", "", proto, ""]
        rows = table.get(env, {})
        if not rows:
            lines += ["No run has finished yet.", ""]
            continue
        steps = sorted(next(iter(rows.values()))["return"], key=int)
        lines.append("| method | seeds | " + " | ".join(f"{k} step{'s' if k != '1' else ''}" for k in steps)
                     + " | best iteration | train min / run |")
        lines.append("|---|---|" + "---|" * len(steps) + "---|---|")
        base = rows.get("MAML")
        for method, s in rows.items():
            cells = []
            for k in steps:
                c = cell(s["return"][k])
                if base is not None and method != "MAML":
                    v = verdict(base["return"][k], s["return"][k])
                    c += {"better": " **better**", "worse": " *worse*", "~": ""}[v]
                cells.append(c)
            mins = statistics.mean(s["train_seconds"]) / 60
            lines.append(f"| {method} | {', '.join(str(x) for x in s['seeds'])} | " + " | ".join(cells)
                         + f" | {', '.join(str(b) for b in s['best_iteration'])} | {mins:.1f} |")
        lines.append("")
    lines += [
        "Cells: median over the listed seeds of the mean return over the held-out evaluation tasks (the same "
        "tasks and noise for every run), +- the 95% CI over seeds (t(0.975, n - 1) sd / sqrt(n), Student's t) when there are 2 or more "
        "seeds, else over the evaluation tasks (1.96 sd / sqrt(tasks)). **better** / *worse*: the medians differ by "
        "more than the two half-widths together; unmarked: no clear difference.",
        "",
        f"Missing runs (not finished when the table was written): {', '.join(meta['missing']) or 'none'}.",
        "",
        f"Compute: {meta['train_minutes_total']:.1f} min of training and {meta['eval_minutes_total']:.1f} min of "
        f"evaluation over {meta['finished']} runs, one torch thread each, {meta['machine']['cpus']} CPUs shared "
        "with other jobs (times are wall-clock, so they overstate the CPU time on a busy machine).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nav-iterations", type=int, default=500)
    p.add_argument("--hc-iterations", type=int, default=500,
                   help="HalfCheetah outer iterations (default 500, the reduced protocol; ~5 s each on one CPU)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=Path(ROOT) / "runs" / "rl_table")
    p.add_argument("--budget-minutes", type=float, default=None, help="start no new run after this much wall time")
    p.add_argument("--report-only", action="store_true", help="write the table from finished runs only")
    p.add_argument("--env", choices=["2dnav", "halfcheetah-vel"], default=None,
                   help="train only this environment's runs")
    p.add_argument("--reverse", action="store_true",
                   help="take the plan from its end (a second worker; runs in progress are locked)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    todo = plan(args)
    saved = saved_results()
    for env, method, seed in (reversed(todo) if args.reverse else todo):
        if args.report_only:
            break
        if args.env is not None and env != args.env:
            continue
        cfg = config(env, method, seed, args)
        out = run_dir(args.workdir, env, method, seed)
        if finished(out, cfg, saved.get(run_key(env, method, seed))):
            continue
        if args.budget_minutes is not None and time.perf_counter() - t0 > 60 * args.budget_minutes:
            print(f"budget reached: not starting {env} {method} seed {seed}", flush=True)
            break
        lock = claim(out)
        if lock is None:   # another worker trains this run now
            continue
        t = time.perf_counter()
        with lock:
            res = run(cfg, out, resume=True, progress=False, plot=seed == 0)
        print(f"{env} {method} seed {seed}: " + ", ".join(f"{k}: {v['mean']:.1f}" for k, v in res["return"].items())
              + f" ({time.perf_counter() - t:.0f} s)", flush=True)
    table: Dict[str, Dict[str, Any]] = {}
    missing, all_res = [], []
    for env, method, seed in todo:
        cfg = config(env, method, seed, args)
        res = finished(run_dir(args.workdir, env, method, seed), cfg, saved.get(run_key(env, method, seed)))
        if res is None:
            missing.append(run_key(env, method, seed))
            continue
        all_res.append((run_key(env, method, seed), res))
        table.setdefault(env, {}).setdefault(method, []).append(res)
    summary = {env: {m: summarise(rs) for m, rs in rows.items()} for env, rows in table.items()}
    nav, hc = config("2dnav", "MAML", 0, args), config("halfcheetah-vel", "MAML", 0, args)
    protocols = {
        "2dnav": (f"TRPO for {nav.iterations} outer iterations, meta-batch {nav.meta_batch} tasks, "
                  f"{nav.trajectories} trajectories per task, horizon {nav.horizon}, one VPG step (lr {nav.inner_lr}) "
                  f"at meta-training; evaluation of the start with the best training return on {nav.eval_tasks} "
                  f"held-out goals after 0-{nav.eval_steps} VPG steps, {nav.trajectories} fresh trajectories per step."),
        "halfcheetah-vel": (f"TRPO for {hc.iterations} outer iterations, meta-batch {hc.meta_batch} tasks, "
                            f"{hc.trajectories} trajectories per task, horizon {hc.horizon} (the seed's full protocol is "
                            f"500 iterations, 40 tasks, 40 trajectories, horizon 200); evaluation on {hc.eval_tasks} "
                            f"held-out target velocities after 0-{hc.eval_steps} steps, {hc.trajectories} trajectories per step."),
    }
    meta = {"machine": machine(), "protocols": protocols, "missing": missing, "finished": len(all_res),
            "nav_iterations": args.nav_iterations, "hc_iterations": args.hc_iterations, "seeds": args.seeds,
            "train_minutes_total": sum(r["train"]["seconds"] for _, r in all_res) / 60,
            "eval_minutes_total": sum(r.get("eval_seconds", 0.0) for _, r in all_res) / 60,
            "note": "train seconds are each run's own wall-clock training time, summed over resumed segments"}
    data = {"meta": meta, "table": summary,
            "runs": {key: {"return": r["return"], "train_seconds": r["train"]["seconds"],
                      "eval_seconds": r.get("eval_seconds"), "best_iteration": r["train"]["best_iteration"],
                      "best_train_return": r["train"]["best_return"], "results": _kept(r)} for key, r in all_res}}
    save("rl_table", data, markdown(summary, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
