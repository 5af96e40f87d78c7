"""How long scoring takes: 100 sequences x 10 trackers x 300 frames, ours against got10k 0.1.3.

Builds an OTB-2015-shaped tree (the 98 official folders, two-target folders, Human4's empty file,
David/Football1/Freeman3/Freeman4/Diving truncated as in the real data) with random results, then
times, in one run: loading the dataset, scoring every tracker (our `evaluate`) and got10k's
`ExperimentOTB.report` with its plotting switched off, plus our tables and plots.

    python benchmarks/report_speed.py [--repeats 3] [--frames 300] [--trackers 10]
"""
from __future__ import annotations

import argparse
import os
import tempfile

from _util import machine, median, save, time_repeats

TRUNCATED = {"David": (770, 471), "Football1": (81, 74), "Freeman3": (474, 460),
             "Freeman4": (297, 283), "Diving": (231, 215)}


def build_tree(root: str, frames: int) -> None:
    from otb_eval.datasets import official_folders
    from otb_eval.testing import make_sequence

    for i, name in enumerate(official_folders("otb2015")):
        n_images, rows = TRUNCATED.get(name, (frames, frames))
        if name in ("Jogging", "Skating2"):
            make_sequence(root, name, n_images, rows, targets=2, seed=i)
        elif name == "Human4":
            make_sequence(root, name, n_images, rows, targets=2, empty_first=True, seed=i)
        else:
            make_sequence(root, name, n_images, rows, seed=i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--trackers", type=int, default=10)
    args = parser.parse_args()

    from otb_eval.datasets import OTBDataset
    from otb_eval.report import evaluate, write_report
    from otb_eval.testing import write_random_results

    with tempfile.TemporaryDirectory() as tmp:
        data, results = os.path.join(tmp, "otb"), os.path.join(tmp, "results", "OTB2015")
        build_tree(data, args.frames)
        ds = OTBDataset(data, "otb2015")
        names = [f"tracker{i:02d}" for i in range(args.trackers)]
        for i, name in enumerate(names):
            write_random_results(results, name, ds, seed=i)
        frames = sum(len(s) for s in ds)

        load = time_repeats(lambda: OTBDataset(data, "otb2015"), args.repeats)
        ours = time_repeats(lambda: evaluate(ds, results, names), args.repeats)
        perf = evaluate(ds, results, names)
        out = os.path.join(tmp, "report")
        tables_plots = time_repeats(lambda: write_report(perf, out), 1)

        import got10k.experiments.otb as g
        from got10k.datasets import OTB

        g.OTB = lambda r, v, download=True: OTB(r, v, download=False)
        g.ExperimentOTB.plot_curves = lambda self, names: None
        exp = g.ExperimentOTB(data, 2015, result_dir=os.path.join(tmp, "results"),
                              report_dir=os.path.join(tmp, "reports"))
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            theirs = time_repeats(lambda: exp.report(names), args.repeats)
            got = exp.report(names)
        max_diff = max(abs(perf[n]["overall"][k] - got[n]["overall"][k])
                       for n in names for k in ("success_score", "precision_score"))

    data_out = {
        "workload": {"sequences": len(ds), "trackers": len(names), "frames_per_tracker": frames},
        "repeats": args.repeats,
        "seconds": {"load_dataset": load, "score_ours": ours, "score_got10k": theirs,
                    "tables_and_plots_ours": tables_plots},
        "median_seconds": {"load_dataset": median(load), "score_ours": median(ours),
                           "score_got10k": median(theirs)},
        "speedup_vs_got10k": median(theirs) / median(ours),
        "max_abs_score_difference_vs_got10k": max_diff,
        "machine": machine(),
    }
    md = f"""# Scoring speed

`python benchmarks/report_speed.py` ({args.repeats} repeats, medians; raw numbers in
`benchmarks/results/report_speed.json`). Workload: {len(ds)} OTB-2015-shaped sequences x
{len(names)} trackers, {frames} frames per tracker (300 per sequence except the truncated ones).

| step | median seconds |
|---|---|
| load the dataset (98 folders, quirks applied) | {median(load):.2f} |
| score all trackers, ours (`otb_eval.report.evaluate`) | {median(ours):.2f} |
| score all trackers, got10k 0.1.3 `ExperimentOTB.report` (plots off) | {median(theirs):.2f} |
| our tables + all plots (overall and 11 attributes), once | {tables_plots[0]:.2f} |

Ours is {median(theirs) / median(ours):.1f}x got10k's time on the same files in the same run, and the
largest difference between the two toolkits' overall scores is {max_diff:.1e}.
"""
    paths = save("report_speed", data_out, md)
    print(md)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
