"""``metatrack synth``: write a synthetic benchmark in OTB's folder format."""
from __future__ import annotations

import argparse
import re

from foundation.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="write synthetic OTB-format sequences (train/val/test splits)",
        description="Write OUT/<Name>/img/0001.jpg..., groundtruth_rect.txt and attributes.json for "
                    "sequences SynTrain001..., SynVal001... or SynTest001... Targets and backgrounds "
                    "are scikit-image's bundled photographs and procedural textures; the splits "
                    "share no source pixels and no seeds. Deterministic by --seed; sequences "
                    "already written with the same settings are skipped (resume). --objects and "
                    "--backgrounds add folders of real images (cut-outs with alpha keep their "
                    "silhouette); --profile footage adds hand-held camera, perspective turns, a "
                    "holding hand, same-category distractors, motion blur, codec artefacts, exposure "
                    "drift, exits from the view and longer sequences (docs/synthetic.md).")
    p.add_argument("out", metavar="OUT", help="output folder (created if missing)")
    p.add_argument("--sequences", default="25", metavar="N", help="number of sequences (default 25)")
    p.add_argument("--seed", default="0", metavar="S", help="base seed, >= 0 (default 0)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="which split to write (default test)")
    p.add_argument("--frames", default=None, metavar="MIN:MAX",
                   help="frames per sequence, drawn uniformly in MIN..MAX (default 60:120; "
                        "300:600 with --profile footage)")
    p.add_argument("--size", default="320x240", metavar="WxH", help="frame size (default 320x240)")
    p.add_argument("--profile", default="default", choices=["default", "footage"],
                   help="default: the original generator; footage: every footage-like dynamic")
    p.add_argument("--objects", default=None, metavar="DIR",
                   help="folder of object images (PNG cut-outs with alpha or photographs; the "
                        "sub-folder is the category), e.g. /usr/share/tuxpaint/stamps")
    p.add_argument("--backgrounds", default=None, metavar="DIR",
                   help="folder of background photographs, e.g. /usr/share/backgrounds/mate/nature")
    p.add_argument("--overwrite", action="store_true",
                   help="replace sequence folders that hold something else")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def _int(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{option} must be a whole number, got {text!r}") from None


def parse_frames(text: str) -> tuple[int, int]:
    """``"60:120"`` -> (60, 120); a single number N means N:N."""
    m = re.fullmatch(r"\s*(\d+)\s*(?::\s*(\d+)\s*)?", text)
    if not m:
        raise UserError(f"--frames must be MIN:MAX (e.g. 60:120), got {text!r}")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if lo < 2 or hi < lo:
        raise UserError(f"--frames must be MIN:MAX with 2 <= MIN <= MAX, got {text!r}")
    return lo, hi


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> (320, 240)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise UserError(f"--size must be WxH (e.g. 320x240), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def run(args: argparse.Namespace) -> int:

    n = _int(args.sequences, "--sequences")
    seed = _int(args.seed, "--seed")
    from otb_eval.synthetic.footage import PROFILE_FRAMES

    frames = parse_frames(args.frames) if args.frames is not None else PROFILE_FRAMES[args.profile]
    size = parse_size(args.size)
    from foundation.fileio import output_dir

    if n < 1:
        raise UserError(f"--sequences must be at least 1, got {n}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    from otb_eval.synthetic import generate

    with output_dir(args.out, "OUT"):
        names = generate(args.out, n, seed=seed, split=args.split, frames=frames, size=size,
                         progress=not args.no_progress, overwrite=args.overwrite, profile=args.profile,
                         objects=args.objects, backgrounds=args.backgrounds)
    print(f"{len(names)} {args.split} sequences in {args.out}"
          + (f" ({names[0]} .. {names[-1]})" if names else ""))
    return 0
