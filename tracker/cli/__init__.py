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
HIDDEN = ["variant"]   # helpers for the scripts in weights/, not listed by --help


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit 2) instead of usage + message."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="metatrack",
        description="Meta-learned visual object tracking and the OTB toolkit around it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS + HIDDEN:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}_cmd").add_parser(sub)
    return parser


def _one_line(command: str):
    """Warnings as one line each (``metatrack eval: warning: ...``), not file:line plus source."""
    def fmt(message, category, filename, lineno, line=None) -> str:
        return f"metatrack {command}: warning: {message}\n"

    return fmt


def main(argv: list[str] | None = None) -> int:
    # OpenCV's video backend prints its own errors (a corrupt file) unless told to be quiet
    import os

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:   # usage errors (2) and --help (0) as a return value for callers
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
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
