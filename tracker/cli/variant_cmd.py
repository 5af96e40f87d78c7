"""``metatrack variant FAMILY [VARIANT ...]``: the variant table for the weights recipes.

Hidden from ``metatrack --help``: ``weights/train_*.sh`` ask it which tracker each variant is and
which ``meta-train`` flags make it, so the recipes hold no copy of :mod:`tracker.variants`.
"""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(   # no help=: not listed among the commands
        "variant", description="Print one line per variant of FAMILY (all four without VARIANT): its "
                               "tracker name, then the metatrack meta-train flags that make it.")
    p.add_argument("family", metavar="FAMILY", help="a tracker family, e.g. metasdnet")
    p.add_argument("keys", nargs="*", metavar="VARIANT", help="base, l2f, dropgrad or l2f-dropgrad")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..api import family
    from ..variants import VARIANTS, variant

    fam = family(args.family)
    rows = [variant(k) for k in args.keys] or list(VARIANTS)   # every key checked before printing
    for v in rows:
        print(" ".join((v.name(fam.name), *v.flags())))
    return 0
