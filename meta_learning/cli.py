"""``metalearn``: command-line front end of the meta-learning engine.

Errors in the input (bad numbers, unwritable output folder, a checkpoint made with other settings,
a device that is not there) are reported as one line on stderr with exit status 2, never as a
traceback.

Every training command takes ``--device`` and runs unchanged under torchrun (``torchrun
--nproc_per_node=N --no-python metalearn regression ...``): the meta-batch given is the total over
all processes, each process adapts its share, rank 0 alone checks and writes ``--out``, prints and
shows progress; errors are printed by rank 0 only.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, List, NoReturn, Optional

from foundation.devices import DEVICE_CHOICES_HELP
from foundation.errors import UserError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line (exit 2) instead of usage + message."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="metalearn", description="MAML-family meta-learning experiments.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser(
        "regression", help="sinusoid regression (MAML protocol)",
        description="Meta-train on sinusoid tasks, evaluate on held-out tasks, write results.json, "
                    "checkpoint.pt and fits.png into --out.  A run whose --out already holds a "
                    "checkpoint with the same settings resumes from it (use --no-resume to restart).")
    r.add_argument("--shots", type=_positive_int, required=True, help="K support (and query) points per task")
    r.add_argument("--l2f", action="store_true", help="L2F task-and-layer-wise attenuation (the paper's: "
                                                     "sigmoid gamma fed the mean gradients)")
    r.add_argument("--dropgrad", choices=["binary", "gaussian"], help="DropGrad inner-gradient noise")
    r.add_argument("--dropgrad-rate", type=_rate, default=0.1, help="DropGrad rate p (default 0.1)")
    r.add_argument("--meta-sgd", action="store_true", help="learn element-wise inner learning rates")
    r.add_argument("--surgery", choices=["graddrop", "pcgrad"], help="surgery across per-task meta-gradients")
    r.add_argument("--l2-meta-reg", choices=["eqc", "mean", "min", "max"],
                   help="layer-wise l2 meta-regularisation (L2F appendix B)")
    r.add_argument("--l2-gamma", type=Path, metavar="JSON",
                   help="gammas for Eq. C: an L2F run's results.json or a name->gamma JSON "
                        "(default: gamma = 1 for every tensor, i.e. plain l2 with lambda0)")
    r.add_argument("--l2-lambda0", type=float, default=5e-4, help="lambda0 of Eq. C (default 5e-4)")
    r.add_argument("--first-order", action="store_true", help="first-order MAML")
    r.add_argument("--inner-steps", type=_positive_int, default=1, help="inner steps at meta-training")
    r.add_argument("--inner-lr", type=float, default=0.01)
    r.add_argument("--outer-lr", type=float, default=1e-3)
    r.add_argument("--iterations", type=_nonneg_int, default=3000, help="meta-iterations (default 3000: the documented run; more helps)")
    r.add_argument("--meta-batch", type=_positive_int, default=25, help="tasks per meta-update (default 25)")
    r.add_argument("--eval-tasks", type=_positive_int, default=600)
    _add_run_options(r, checkpoint_every=1000)
    _add_rl(sub)
    _add_classification(sub)
    return parser


def _add_classification(sub: argparse._SubParsersAction) -> None:
    from .tasks.classification.cli import add_parsers

    add_parsers(sub, _positive_int, _nonneg_int, _rate)


def _add_rl(sub: argparse._SubParsersAction) -> None:
    from .tasks.rl.envs import ENV_NAMES

    r = sub.add_parser(
        "rl", help="meta-RL: 2D navigation, HalfCheetah/Ant velocity and direction (MAML-TRPO)",
        description="Meta-train a Gaussian MLP policy (VPG inner loop, TRPO outer loop), evaluate the start "
                    "with the best training return after 0..4 VPG steps, write results.json, checkpoint.pt "
                    "and returns.png into --out.  Resumes from a checkpoint in --out made with the same "
                    "settings.  The MuJoCo environments need the extra: pip install -e \".[rl]\".")
    r.add_argument("--env", choices=ENV_NAMES, required=True)
    r.add_argument("--protocol", choices=["seed", "reduced"], default="seed",
                   help="defaults for horizon/meta-batch/trajectories/eval tasks: the seed's (MuJoCo 200/40/40) "
                        "or the reduced CPU one (MuJoCo 100/20/10); 2D navigation is 100/20/20 in both")
    r.add_argument("--iterations", type=_nonneg_int, default=500, help="TRPO outer iterations (default 500)")
    r.add_argument("--meta-batch", type=_positive_int, help="tasks per outer iteration")
    r.add_argument("--trajectories", type=_int_at_least(2), help="trajectories per task and step")
    r.add_argument("--horizon", type=_positive_int, help="steps per trajectory")
    r.add_argument("--eval-tasks", type=_positive_int, help="held-out evaluation tasks")
    r.add_argument("--inner-lr", type=float, default=0.1, help="VPG inner learning rate (default 0.1)")
    r.add_argument("--l2f", action="store_true", help="L2F task-and-layer-wise attenuation")
    r.add_argument("--dropgrad", choices=["binary", "gaussian"], help="DropGrad inner-gradient noise")
    r.add_argument("--dropgrad-rate", type=_rate, default=0.1, help="DropGrad rate p (default 0.1)")
    r.add_argument("--meta-sgd", action="store_true", help="learn element-wise inner learning rates")
    r.add_argument("--first-order", action="store_true", help="first-order MAML")
    r.add_argument("--hvp", choices=["first_order", "exact"], default="first_order",
                   help="KL Hessian through the adaptation: first-order Jacobian (default, fast) or exact")
    r.add_argument("--hvp-stride", type=_positive_int, default=5,
                   help="use every k-th post-adaptation step in the KL Hessian (default 5)")
    _add_run_options(r, checkpoint_every=10)


def _add_run_options(r: argparse.ArgumentParser, checkpoint_every: int) -> None:
    """What every training subcommand takes: the seed, checkpoints, the output folder, resume."""
    r.add_argument("--seed", type=_nonneg_int, default=0)
    r.add_argument("--checkpoint-every", type=_positive_int, default=checkpoint_every)
    r.add_argument("--out", type=Path, required=True, help="output folder")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="require a checkpoint in --out and continue it")
    g.add_argument("--no-resume", action="store_true", help="ignore any checkpoint in --out")
    r.add_argument("--no-plot", action="store_true")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_option(r)


def add_device_option(r: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda|cuda:N`` (default auto), for every training subcommand."""
    r.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_CHOICES_HELP)


def _check_resume_and_out(args: argparse.Namespace) -> None:
    """Before a training run: ``--resume`` has a checkpoint and ``--out`` is writable."""
    if args.resume and not (args.out / "checkpoint.pt").exists():
        raise ValueError(f"--resume: no checkpoint.pt in {args.out}")
    _check_out_dir(args.out)


@contextmanager
def run_world(device: Any, meta_batch: int, checks: Callable[[], None]) -> Iterator[Any]:
    """The processes of a training run: checks that every torchrun process gets at least one task
    of the meta-batch, joins torchrun's process group (a single process outside torchrun), runs
    ``checks`` (of ``--out`` and the like) on rank 0 with every rank raising its error, sets torch's
    threads (METALEARN_THREADS, default 1: these small models lose more to intra-op threads'
    overhead than they gain) and yields the :class:`foundation.distributed.World`.  The group is
    left after a successful run; after an error the process just exits (torchrun stops the rest)."""
    import torch

    from foundation.distributed import close_world, init_world, torchrun_env

    env = torchrun_env()
    if env is not None and env[1] > meta_batch:
        raise ValueError(f"--meta-batch {meta_batch} is smaller than the {env[1]} processes: "
                         f"every process needs at least one task of the meta-batch")
    world = init_world(device)
    world.on_main(checks)
    threads = os.environ.get("METALEARN_THREADS", "1")
    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else 1)
    yield world
    close_world(world)


def _is_main_process() -> bool:
    """Rank 0 of torchrun (or a single process): the one that prints errors."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


def _check_out_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".metalearn-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"cannot write to output folder {path}: {exc.strerror or exc}") from None


def _regression(args: argparse.Namespace) -> int:
    from foundation.devices import resolve_device

    from .tasks.regression import RegressionConfig, load_gamma, run

    device = resolve_device(args.device)
    if not all(math.isfinite(v) and v > 0 for v in (args.inner_lr, args.outer_lr)) or \
            not (math.isfinite(args.l2_lambda0) and args.l2_lambda0 >= 0):
        raise ValueError("learning rates must be positive numbers and --l2-lambda0 >= 0")
    gamma = None
    if args.l2_gamma is not None:
        if args.l2_meta_reg is None:
            raise ValueError("--l2-gamma needs --l2-meta-reg")
        try:
            gamma = load_gamma(args.l2_gamma)
        except OSError as exc:
            raise ValueError(f"cannot read {args.l2_gamma}: {exc.strerror or exc}") from None
        except (ValueError, AttributeError) as exc:
            raise ValueError(f"bad --l2-gamma file {args.l2_gamma}: {exc}") from None
    cfg = RegressionConfig(
        shots=args.shots, iterations=args.iterations, meta_batch=args.meta_batch,
        inner_steps=args.inner_steps, inner_lr=args.inner_lr, outer_lr=args.outer_lr,
        first_order=args.first_order, meta_sgd=args.meta_sgd, l2f=args.l2f,
        dropgrad=args.dropgrad, dropgrad_rate=args.dropgrad_rate, surgery=args.surgery,
        l2_meta_reg=args.l2_meta_reg, l2_lambda0=args.l2_lambda0, l2_gamma=gamma,
        eval_tasks=args.eval_tasks, seed=args.seed, checkpoint_every=args.checkpoint_every,
    ).validate()
    with run_world(device, cfg.meta_batch, lambda: _check_resume_and_out(args)) as world:
        results = run(cfg, args.out, resume=not args.no_resume, progress=not args.quiet, plot=not args.no_plot,
                      device=device, world=world)
    if not world.is_main:
        return 0
    m = results["mse"]
    print(f"{results['config']['method']} {cfg.shots}-shot: "
          + ", ".join(f"{k} step{'s' if k != '1' else ''} MSE {v['mean']:.3f} +- {v['ci95']:.3f}"
                      for k, v in m.items()) + f" -> {args.out / 'results.json'}")
    return 0


def _rl(args: argparse.Namespace) -> int:
    from foundation.devices import resolve_device

    from .tasks.rl.envs import MUJOCO_ENVS, require_mujoco
    from .tasks.rl.train import config_for, run

    device = resolve_device(args.device)
    if not (math.isfinite(args.inner_lr) and args.inner_lr > 0):
        raise ValueError(f"--inner-lr must be a positive number, got {args.inner_lr}")
    cfg = config_for(args.env, args.protocol, iterations=args.iterations, meta_batch=args.meta_batch,
                     trajectories=args.trajectories, horizon=args.horizon, eval_tasks=args.eval_tasks,
                     inner_lr=args.inner_lr, l2f=args.l2f, dropgrad=args.dropgrad,
                     dropgrad_rate=args.dropgrad_rate, meta_sgd=args.meta_sgd, first_order=args.first_order,
                     hvp=args.hvp, hvp_stride=args.hvp_stride, seed=args.seed,
                     checkpoint_every=args.checkpoint_every).validate()
    if args.env in MUJOCO_ENVS:
        require_mujoco(args.env)
    with run_world(device, cfg.meta_batch, lambda: _check_resume_and_out(args)) as world:
        results = run(cfg, args.out, resume=not args.no_resume, progress=not args.quiet, plot=not args.no_plot,
                      device=device, world=world)
    if not world.is_main:
        return 0
    print(f"{cfg.env} {results['config']['method']}: return "
          + ", ".join(f"{k} step{'s' if k != '1' else ''} {v['mean']:.1f} +- {v['ci95']:.1f}"
                      for k, v in results["return"].items()) + f" -> {args.out / 'results.json'}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``metalearn``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2) and --help (0), as a return value for callers
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    warnings.formatwarning = lambda message, *rest, **kw: f"metalearn {args.command}: warning: {message}\n"
    out = getattr(args, "out", None)
    existed = out is not None and Path(out).exists()
    try:
        if args.command == "regression":
            return _regression(args)
        if args.command == "rl":
            return _rl(args)
        if args.command in ("classification", "glyphs"):
            from .tasks.classification.cli import run_command

            return run_command(args, _check_out_dir, run_world)
    except (ValueError, UserError) as exc:
        if not _is_main_process():            # under torchrun rank 0 alone speaks (and owns --out)
            return 2
        if out is not None and not existed:   # a failed run leaves no empty output folder behind
            try:
                Path(out).rmdir()
            except OSError:
                pass
        print(f"metalearn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _is_main_process():
            print("metalearn: interrupted (the last checkpoint is kept; rerun to resume)", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
