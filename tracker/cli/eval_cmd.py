"""``metatrack eval``: run trackers over an OTB-format dataset and write their results."""
from __future__ import annotations

import argparse

from ._common import add_dataset_args, add_device_arg, load_dataset, parse_names, resolve_device_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="run trackers over an OTB-format dataset (resumable)",
        description="Run each tracker over every sequence of the dataset (one-pass evaluation) and "
                    "write RESULTS/<tracker>/<seq>.txt and RESULTS/<tracker>/times/<seq>_time.txt, "
                    "as got10k does. Finished sequences are skipped, so an interrupted run resumes. "
                    "Under torchrun (torchrun --nproc_per_node=N --no-python metatrack eval ...) the "
                    "sequences are shared round-robin over the N processes, each written once.")
    add_dataset_args(p)
    p.add_argument("--trackers", type=parse_names, default=[],
                   help="comma-separated registered tracker names, e.g. metasdnet,mil,identity")
    p.add_argument("--weights", action="append", default=[], metavar="LABEL=FILE",
                   help="track weights FILE under the result name LABEL, with the tracker of the "
                        "family the file was written by (e.g. fresh weights on the val split); "
                        "repeatable")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a tracking option of every tracker run, checked against its family's "
                        "options (as `metatrack track --option`); repeatable")
    p.add_argument("--results", required=True, metavar="DIR", help="results folder")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="sequences tracked in parallel processes (default 1)")
    p.add_argument("--protocol", default="ope", choices=["ope", "tre", "sre"],
                   help="ope: one pass from the first frame (default); tre: 20 runs from evenly "
                        "spaced start frames; sre: 12 runs from shifted/scaled first boxes")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from foundation.distributed import close_world, init_world
    from foundation.errors import UserError
    from foundation.fileio import output_dir
    from otb_eval.experiment import results_folder, run_protocol
    from otb_eval.results import remove_stale_temporaries

    device = resolve_device_arg(args)
    if args.workers > 1 and device.type == "cuda":
        raise UserError(f"--workers {args.workers} with --device {args.device} ({device}): worker processes "
                        "are forked and cannot use this process's CUDA device; use --workers 1 (the GPU "
                        "tracks one sequence at a time) or --device cpu")
    runs = planned_runs(args, device)   # names, files and options fail before work
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    dataset = load_dataset(args)
    world = init_world(device)
    with output_dir(args.results, "--results"):
        for name, make in runs:
            if world.distributed:   # stale temporaries go before any rank writes new ones
                if world.is_main:
                    remove_stale_temporaries(args.results, results_folder(name, args.protocol))
                world.barrier()
            summary = run_protocol(make, dataset, args.results, args.protocol, name=name, workers=args.workers,
                                   progress=not args.no_progress and world.is_main,
                                   shard=(world.rank, world.size), clean=not world.distributed)
            parts = world.all_gather_object((len(summary.tracked), len(summary.skipped), summary.frames,
                                             summary.seconds))
            tracked, skipped, frames = (sum(p[i] for p in parts) for i in range(3))
            seconds = max(p[3] for p in parts)
            fps = f"{frames / seconds:.1f} fps" if frames and seconds > 0 else "nothing to do"
            if world.is_main:
                print(f"{name} ({args.protocol.upper()}): {tracked} runs tracked, {skipped} already done "
                      f"({fps}) -> {args.results}/{summary.tracker}", flush=True)
    close_world(world)
    return 0


def planned_runs(args: argparse.Namespace, device) -> list:
    """``(result name, tracker factory)`` per ``--trackers`` name and ``--weights LABEL=FILE``,
    every name, file and ``--option`` checked first (one UserError line, before any work)."""
    import os

    from foundation.errors import UserError

    from ..api import factory, families, family_of, family_of_weights, spec
    from ._common import parse_key_values

    if not args.trackers and not args.weights:
        raise UserError("nothing to run: give --trackers NAMES and/or --weights LABEL=FILE")
    options = parse_key_values(args.option, "--option")
    rows = [(name, name, None) for name in args.trackers]   # (result name, tracker, weights file)
    for pair in args.weights:
        label, sep, path = (t.strip() for t in pair.partition("="))
        if not sep or not label or not path:
            raise UserError(f"--weights needs LABEL=FILE, got {pair!r}")
        if os.sep in label or label in (".", ".."):
            raise UserError(f"--weights {pair}: LABEL names a results folder, got {label!r}")
        if not os.path.isfile(path):
            raise UserError(f"weights file {path} does not exist")
        rows.append((label, family_of_weights(path).name, path))
    seen = [label for label, _, _ in rows]
    twice = sorted({label for label in seen if seen.count(label) > 1})
    if twice:
        raise UserError(f"result name(s) given twice: {', '.join(twice)}")
    runs = []
    for label, name, path in rows:
        spec(name)   # an unknown name fails here, before options are checked against it
        if options:
            fam = family_of(name)
            if fam is None:
                titles = " and ".join(f.title for f in families())
                raise UserError(f"--option: tracker {name!r} takes no options "
                                f"(options of the {titles} families)")
            fam.check_options(options, name)
        extra = {} if path is None else {"weights": path}
        runs.append((label, factory(name, device=device, **extra, **options)))
    return runs
