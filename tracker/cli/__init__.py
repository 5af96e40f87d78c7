"""``metatrack``: one command, one subcommand per job.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``; the module sets
``func(args) -> int`` on its parser. Modules import their heavy dependencies (torch, cv2,
matplotlib) inside ``func`` so that ``metatrack --help`` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from foundation.errors import UserError

# Order is the order shown by --help.
SUBCOMMANDS = ["synth", "eval", "report", "pretrain", "meta-train", "track", "overlay", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metatrack",
        description="Meta-learned visual object tracking and the OTB toolkit around it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}_cmd").add_parser(sub)
    return parser


def _one_line(command: str):
    """Warnings as one line each (``metatrack eval: warning: ...``), not file:line plus source."""
    def fmt(message, category, filename, lineno, line=None) -> str:
        return f"metatrack {command}: warning: {message}\n"

    return fmt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    warnings.formatwarning = _one_line(args.command)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"metatrack {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"metatrack {args.command}: interrupted; finished work is kept, rerun to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
