"""``metatrack report``: score result folders and draw OTB success/precision plots."""
from __future__ import annotations

import argparse

from ._common import add_dataset_args, load_dataset, parse_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="score results and draw success/precision plots",
        description="Score the result folders in --results (written by this project, got10k, "
                    "pytracking, pysot or the OTB MATLAB toolkit) against the dataset, and write "
                    "performance.json (got10k's schema), table.md, table.csv, success_plots.png, "
                    "precision_plots.png and one pair per attribute into --out.")
    add_dataset_args(p)
    p.add_argument("--results", required=True, metavar="DIR",
                   help="folder holding one sub-folder of result files per tracker")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder")
    p.add_argument("--trackers", type=parse_names, default=None, metavar="A,B",
                   help="trackers to include (default: every sub-folder of --results)")
    p.add_argument("--policy", default="got10k", choices=["got10k", "pytracking", "matlab"],
                   help="how invalid ground truth and predictions score (default got10k: "
                        "identical numbers to got10k 0.1.3)")
    p.add_argument("--protocols", type=parse_names, default=None, metavar="ope,tre,sre",
                   help="protocols to report (default: OPE, plus TRE/SRE wherever every tracker "
                        "has their results)")
    p.add_argument("--no-plots", action="store_true", help="write the tables only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from foundation.fileio import output_dir
    from otb_eval.report import available_protocols, evaluate, markdown_table, write_report
    from otb_eval.results import tracker_folders

    from ..overlay import plot_colors

    dataset = load_dataset(args)
    trackers = args.trackers or tracker_folders(args.results)
    protocols = args.protocols or available_protocols(args.results, trackers)
    written = 0
    with output_dir(args.out, "--out"):
        for protocol in protocols:
            performance = evaluate(dataset, args.results, trackers, args.policy, protocol)
            written += len(write_report(performance, args.out, args.policy, protocol,
                                        plots=not args.no_plots, colors=plot_colors(list(performance))))
            print(markdown_table(performance, args.policy, protocol))
    print(f"report written to {args.out} ({written} files; protocols: {', '.join(protocols)})")
    return 0
