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
    p.add_argument("--trackers", required=True, type=parse_names,
                   help="comma-separated registered tracker names, e.g. metasdnet,mil,identity")
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

    from ..api import factory

    device = resolve_device_arg(args)
    if args.workers > 1 and device.type == "cuda":
        raise UserError(f"--workers {args.workers} with --device {args.device} ({device}): worker processes "
                        "are forked and cannot use this process's CUDA device; use --workers 1 (the GPU "
                        "tracks one sequence at a time) or --device cpu")
    factories = [factory(name, device=device) for name in args.trackers]  # unknown names fail before work
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    dataset = load_dataset(args)
    world = init_world(device)
    with output_dir(args.results, "--results"):
        for name, make in zip(args.trackers, factories):
            if world.distributed:   # stale temporaries go before any rank writes new ones
                if world.is_main:
                    remove_stale_temporaries(args.results, results_folder(name, args.protocol))
                world.barrier()
            summary = run_protocol(make, dataset, args.results, args.protocol, workers=args.workers,
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
