"""Arguments and helpers shared by several subcommands."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from foundation.errors import UserError

from ..options import parse_key_values

if TYPE_CHECKING:
    import torch


def parse_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names


def add_device_arg(p: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda|cuda:N`` (default auto) on a command that computes with tensors;
    the command resolves it first, with :func:`resolve_device_arg`."""
    from foundation.devices import DEVICE_CHOICES_HELP

    p.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_CHOICES_HELP)


def resolve_device_arg(args: argparse.Namespace) -> "torch.device":
    """``--device`` as a ``torch.device`` checked to exist. Called before anything is read or
    written, so a missing GPU is one line and exit 2 with nothing left behind."""
    from foundation.devices import resolve_device

    return resolve_device(args.device)


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, metavar="DIR",
                   help="folder of OTB-format sequences (<Name>/img/*, groundtruth_rect*.txt)")
    p.add_argument("--version", default="auto",
                   choices=["auto", "otb2013", "otb2015", "tb50", "tb100"],
                   help="official sequence list to require; 'auto' (default) takes every "
                        "sequence folder present")
    p.add_argument("--tiger1", default="got10k", choices=["got10k", "otb"],
                   help="Tiger1: keep all frames like got10k (default) or skip the first 5 like the "
                        "MATLAB toolkit")
    p.add_argument("--sequences", type=parse_names, default=None, metavar="A,B",
                   help="only these sequences (any toolkit's spelling)")


def load_dataset(args: argparse.Namespace):
    from otb_eval.datasets import OTBDataset

    return OTBDataset(args.dataset, args.version, tiger1=args.tiger1, sequences=args.sequences)


__all__ = ["UserError", "add_dataset_args", "add_device_arg", "load_dataset", "parse_key_values",
           "parse_names", "resolve_device_arg"]
