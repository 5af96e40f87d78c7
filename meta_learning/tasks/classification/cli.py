"""``metalearn classification`` and ``metalearn glyphs``: parsers and the two commands.

Every option defaults to ``None`` so that ``--config NAME`` (a row of Table A/B) can fill it and an
explicit option still overrides it; the rest falls back to :class:`ClassificationConfig`'s defaults.
Bad input is a ``ValueError``/``UserError`` raised before any work starts (one line, exit 2).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict

__all__ = ["add_parsers", "run_command"]

# option dest -> ClassificationConfig field (same name unless listed)
_FIELDS = ("dataset", "root", "ways", "shots", "queries", "backbone", "image_size", "iterations", "meta_batch",
           "inner_steps", "eval_inner_steps", "inner_lr", "outer_lr", "first_order_iterations", "l2f", "dropgrad",
           "dropgrad_rate", "surgery", "l2_meta_reg", "l2_lambda0", "val_every", "val_tasks", "top_k",
           "eval_tasks", "seed", "glyph_seed", "checkpoint_every")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def add_parsers(sub: argparse._SubParsersAction, positive_int: Callable, nonneg_int: Callable,
                rate: Callable) -> None:
    """Add the ``classification`` and ``glyphs`` subcommands to ``metalearn``'s parser."""
    from foundation.devices import DEVICE_CHOICES_HELP

    from .backbones import BACKBONES
    from .configs import CONFIGS
    from .datasets import DATASETS, SPLIT_CHOICES

    c = sub.add_parser(
        "classification", help="few-shot classification (glyphs, miniImageNet, tieredImageNet, CIFAR-FS, "
                               "FC100, Omniglot, an image folder)",
        description="Meta-train an N-way K-shot classifier, keep the top-k validation checkpoints, and "
                    "write the test accuracy of their averaged predictions (600 fixed tasks, 95% CI) to "
                    "--out/results.json, with checkpoint.pt (resume) and model.pt (for --evaluate). A run "
                    "whose --out holds a checkpoint with the same settings resumes from it.")
    c.add_argument("--config", choices=sorted(CONFIGS), metavar="NAME",
                   help="a row of the seed's Table A/B (see docs/classification.md); options given override it")
    c.add_argument("--dataset", choices=DATASETS, help="data set (default glyphs, the embedded benchmark)")
    c.add_argument("--root", type=str, help="folder holding the data set (all but glyphs)")
    c.add_argument("--ways", type=positive_int, help="N classes per task")
    c.add_argument("--shots", type=positive_int, help="K support images per class")
    c.add_argument("--queries", type=positive_int, help="query images per class (default 15)")
    c.add_argument("--backbone", choices=BACKBONES, help="default conv4")
    c.add_argument("--image-size", type=positive_int, help="default: glyphs/omniglot 28, CIFAR 32, others 84")
    c.add_argument("--iterations", type=nonneg_int, help="meta-iterations (default 50000)")
    c.add_argument("--meta-batch", type=positive_int, help="tasks per meta-update (default 2 for 5+ shots, else 4)")
    c.add_argument("--inner-steps", type=positive_int, help="inner SGD steps (default 5)")
    c.add_argument("--eval-inner-steps", type=positive_int, help="inner steps at test (default: --inner-steps)")
    c.add_argument("--inner-lr", type=_positive_float, help="default 0.01")
    c.add_argument("--outer-lr", type=_positive_float, help="default 1e-3")
    c.add_argument("--first-order-iterations", type=nonneg_int,
                   help="first-order meta-iterations before second order (default iterations / 10)")
    c.add_argument("--l2f", action="store_true", default=None, help="L2F task-and-layer-wise attenuation")
    c.add_argument("--dropgrad", choices=["binary", "gaussian"], help="DropGrad inner-gradient noise")
    c.add_argument("--dropgrad-rate", type=rate, help="DropGrad rate p (default 0.1)")
    c.add_argument("--surgery", choices=["graddrop", "pcgrad"], help="surgery across per-task meta-gradients")
    c.add_argument("--l2-meta-reg", choices=["eqc", "mean", "min", "max"],
                   help="layer-wise l2 meta-regularisation (Table B); needs --l2-gamma")
    c.add_argument("--l2-gamma", type=Path, metavar="JSON", help="an L2F run's results.json (its gamma)")
    c.add_argument("--l2-lambda0", type=_positive_float, help="lambda0 of Eq. C (default 5e-4)")
    c.add_argument("--val-every", type=positive_int, help="validate every this many iterations (default 500)")
    c.add_argument("--val-tasks", type=positive_int, help="validation tasks (default 200)")
    c.add_argument("--top-k", type=positive_int, help="validation checkpoints averaged at test (default 3)")
    c.add_argument("--eval-tasks", type=positive_int, help="test tasks (default 600)")
    c.add_argument("--seed", type=nonneg_int)
    c.add_argument("--glyph-seed", type=nonneg_int, help="rendering seed of the glyph benchmark (default 0)")
    c.add_argument("--checkpoint-every", type=positive_int, help="default 500")
    c.add_argument("--evaluate", type=Path, metavar="CHECKPOINT",
                   help="skip training: evaluate a trained model.pt / checkpoint.pt on --dataset")
    c.add_argument("--split", choices=SPLIT_CHOICES, default=None,
                   help="with --evaluate: the split of --dataset to score, or all (every class of it: a "
                        "model trained on one domain scored on a whole folder of another; default test)")
    c.add_argument("--out", type=Path, required=True, help="output folder")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="require a checkpoint in --out and continue it")
    g.add_argument("--no-resume", action="store_true", help="ignore any checkpoint in --out")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_CHOICES_HELP)

    gl = sub.add_parser("glyphs", help="write the glyph benchmark as an image folder",
                        description="Render (or read from the cache) the glyph benchmark and write it as "
                                    "OUT/<split>/<script>/<U+code>/<k>.png, black ink on white, with "
                                    "OUT/letters.csv.")
    gl.add_argument("out", type=Path, metavar="OUT")
    gl.add_argument("--image-size", type=positive_int, default=28)
    gl.add_argument("--seed", type=nonneg_int, default=0)
    gl.add_argument("--quiet", action="store_true")


def _config(args: argparse.Namespace):
    from ..regression import load_gamma
    from .configs import CONFIGS, needs_gamma
    from .train import ClassificationConfig

    values: Dict[str, Any] = dict(CONFIGS[args.config]) if args.config else {}
    for name in _FIELDS:
        v = getattr(args, name)
        if v is not None:
            values[name] = v
    if values.get("ways") is None or values.get("shots") is None:
        raise ValueError("--ways and --shots are required (or --config NAME)")
    if args.l2_gamma is not None:
        if values.get("l2_meta_reg") is None:
            raise ValueError("--l2-gamma needs --l2-meta-reg")
        try:
            values["l2_gamma"] = load_gamma(args.l2_gamma)
        except OSError as exc:
            raise ValueError(f"cannot read {args.l2_gamma}: {exc.strerror or exc}") from None
        except (ValueError, AttributeError) as exc:
            raise ValueError(f"bad --l2-gamma file {args.l2_gamma}: {exc}") from None
    elif values.get("l2_meta_reg") is not None and not args.evaluate:
        hint = " (the results.json of the table-a ...-l2f run)" if args.config and needs_gamma(args.config) else ""
        raise ValueError(f"--l2-meta-reg needs --l2-gamma JSON{hint}")
    if values.get("dataset", "glyphs") != "glyphs" and not values.get("root"):
        raise ValueError(f"--dataset {values['dataset']} needs --root DIR")
    if values.get("root") and not os.path.isdir(values["root"]):
        raise ValueError(f"--root {values['root']} is not a folder")
    return ClassificationConfig(**values).validate()


def _classification(args: argparse.Namespace, check_out_dir: Callable[[Path], None],
                    run_world: Callable[..., Any]) -> int:
    from foundation.devices import resolve_device

    from .train import evaluate_checkpoint, run

    device = resolve_device(args.device)
    cfg = _config(args)

    def checks() -> None:
        if args.split is not None and args.evaluate is None:
            raise ValueError("--split chooses what --evaluate scores; training uses the data set's own splits")
        if args.evaluate is not None and not args.evaluate.is_file():
            raise ValueError(f"--evaluate: {args.evaluate} is not a file")
        if args.resume and not (args.out / "checkpoint.pt").exists():
            raise ValueError(f"--resume: no checkpoint.pt in {args.out}")
        check_out_dir(args.out)

    meta_batch = cfg.resolved().meta_batch if args.evaluate is None else sys.maxsize   # no tasks to share
    with run_world(device, meta_batch, checks) as world:
        if args.evaluate is not None:
            res = evaluate_checkpoint(args.evaluate, cfg, args.out, progress=not args.quiet, device=device,
                                      world=world, split=args.split or "test")
        else:
            res = run(cfg, args.out, resume=not args.no_resume, progress=not args.quiet, device=device, world=world)
    if not world.is_main:
        return 0
    acc = res["accuracy"]
    where = f" ({res['split']} split, {res['classes']} classes)" if args.evaluate is not None else ""
    print(f"{res['config']['method']} {cfg.ways}-way {cfg.shots}-shot on {cfg.dataset}{where}: "
          f"{100 * acc['mean']:.2f}% +- {100 * acc['ci95']:.2f} ({acc['tasks']} tasks) -> {args.out / 'results.json'}")
    return 0


def _glyphs(args: argparse.Namespace, check_out_dir: Callable[[Path], None]) -> int:
    from .glyphs import GlyphConfig, write_image_folder

    cfg = GlyphConfig(image_size=args.image_size, seed=args.seed).validate()
    check_out_dir(args.out)
    n = write_image_folder(cfg, args.out, progress=not args.quiet)
    print(f"{n} glyph images -> {args.out}")
    return 0


def run_command(args: argparse.Namespace, check_out_dir: Callable[[Path], None],
                run_world: Callable[..., Any]) -> int:
    """Run ``metalearn classification`` or ``metalearn glyphs``; ``check_out_dir`` is the command
    line's writability check of the output folder (raises ValueError) and ``run_world`` its
    context of the run's processes (:func:`meta_learning.cli.run_world`)."""
    if args.command == "classification":
        return _classification(args, check_out_dir, run_world)
    return _glyphs(args, check_out_dir)
