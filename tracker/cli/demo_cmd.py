"""``metatrack demo``: the whole product in one command on a fresh install.

Makes a small synthetic test set, tracks it with the shipped MetaSDNet and MetaCREST variants
(those whose weights are found) and OpenCV's CSRT, KCF and MedianFlow (MIL where the installed cv2
lacks the contrib modules), and writes results, success/precision plots, a table, an overlay video
of one sequence and a qualitative figure.

Colours are :func:`tracker.overlay.colors_for`'s family colours (baseline red, L2F green,
DropGrad blue, both cyan; MetaCREST in lighter shades), the same in the plots and the video.
"""
from __future__ import annotations

import argparse
import os
import time

from ._common import add_device_arg, resolve_device_arg

DEMO_BASELINES = ["csrt", "kcf", "medianflow"]   # MIL only without opencv-contrib-python


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="track a small synthetic test set with the shipped trackers; plots, table, video",
        description="Generate a small synthetic OTB-format test set, run the shipped MetaSDNet and "
                    "MetaCREST variants (baseline, L2F, DropGrad, L2F+DropGrad; those whose weights "
                    "are found) and OpenCV's CSRT, KCF and MedianFlow on it, and write results, "
                    "success/precision plots, a table, an overlay video and a qualitative figure "
                    "into --out. Rerunning resumes.")
    p.add_argument("--out", default="metatrack-demo", metavar="DIR", help="output folder (default ./metatrack-demo)")
    p.add_argument("--sequences", type=int, default=4, help="synthetic sequences (default 4)")
    p.add_argument("--frames", default="60:80", metavar="MIN:MAX", help="frames per sequence (default 60:80)")
    p.add_argument("--seed", type=int, default=2026, help="synthetic seed (default 2026)")
    p.add_argument("--workers", type=int, default=2,
                   help="parallel sequences (default 2; on a CUDA device one process tracks them all)")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from foundation.errors import UserError
    from otb_eval.datasets import OTBDataset
    from otb_eval.experiment import run_ope
    from otb_eval.report import evaluate, markdown_table, write_report
    from otb_eval.synthetic import generate

    from ..api import factory, families, variants
    from ..baselines import available_baselines
    from ..overlay import plot_colors
    from ..weights import find_weights
    from . import main as cli_main

    device = resolve_device_arg(args)
    try:
        lo, hi = (int(v) for v in args.frames.split(":"))
    except ValueError:
        raise UserError(f"--frames must be MIN:MAX, got {args.frames!r}") from None
    if args.sequences < 1 or args.workers < 1:
        raise UserError("--sequences and --workers must be at least 1")
    from foundation.fileio import ensure_writable_dir

    ensure_writable_dir(args.out, "--out")
    t0 = time.perf_counter()
    data, results, report = (os.path.join(args.out, d) for d in ("data", "results", "report"))
    print(f"1/4 synthetic test set: {args.sequences} sequences -> {data}")
    generate(data, args.sequences, seed=args.seed, split="test", frames=(lo, hi), progress=True)
    dataset = OTBDataset(data)

    # the variants of every family whose weights are shipped; without any of the first family's
    # (MetaSDNet), its baseline with the untrained start, so the demo always has one of ours
    first, *others = families()
    shipped = [v for v in variants(first.name) if find_weights(v)]
    if not shipped:
        warnings.warn(f"no shipped weights found: running {first.name} with its untrained start")
        shipped = [first.name]
    shipped += [v for fam in others for v in variants(fam.name) if find_weights(v)]
    have = available_baselines()
    opencv = [b for b in DEMO_BASELINES if b in have] or [b for b in ("mil",) if b in have]
    trackers = shipped + opencv
    # forked worker processes cannot use this process's GPU: there, this process tracks
    workers = 1 if device.type == "cuda" else args.workers
    on = "" if device.type == "cpu" else f" on {device}"
    print(f"2/4 tracking with {', '.join(trackers)}{on} -> {results}")
    for name in trackers:
        run_ope(factory(name, device=device), dataset, results, workers=workers)

    print(f"3/4 scoring -> {report}")
    perf = evaluate(dataset, results, trackers)
    write_report(perf, report, colors=plot_colors(trackers))
    ranked = sorted(dataset, key=lambda s: (len(s.attributes), len(s)), reverse=True)
    seq = ranked[0]
    video = os.path.join(args.out, f"overlay_{seq.name}.mp4")
    figure = os.path.join(args.out, "figure.png")
    print(f"4/4 overlay video of {seq.name} -> {video}; qualitative figure -> {figure}")
    cli_main(["overlay", "--dataset", data, "--sequence", seq.name, "--results", results,
              "--trackers", ",".join(trackers), "--out", video])
    # the seed's Fig. A: the four variants of a family (baseline red, L2F green, DropGrad blue,
    # L2F+DropGrad cyan) on the sequences with the most attributes
    family = [v for v in variants(first.name) if v in trackers] or trackers
    cli_main(["overlay", "--dataset", data, "--sequence", ",".join(s.name for s in ranked[:2]),
              "--results", results, "--trackers", ",".join(family), "--out", figure])
    print()
    print(markdown_table(perf), end="")
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s: plots {report}/success_plots.png, "
          f"{report}/precision_plots.png; video {video}; figure {figure}")
    return 0
