"""``metatrack overlay``: several trackers' boxes on one sequence (mp4, gif or a png contact sheet)."""
from __future__ import annotations

import argparse
import os

from foundation.errors import UserError

from ._common import parse_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "overlay", help="draw several trackers' boxes on a sequence (.mp4/.gif/.png contact sheet)",
        description="Draw the boxes of --trackers (read from RESULTS/<tracker>/<seq>.txt, any layout "
                    "`metatrack report` reads) on sequence --sequence of --dataset, with a legend, the "
                    "ground truth dashed and the frame number. OUT ending in .png is a contact sheet "
                    "of --frames. Colours: metasdnet red, *-l2f green, *-dropgrad blue, "
                    "*-l2f-dropgrad cyan, others from a palette; override with --colors.")
    p.add_argument("--dataset", required=True, metavar="DIR", help="folder of OTB-format sequences")
    p.add_argument("--sequence", required=True, metavar="NAME", help="sequence name (any spelling)")
    p.add_argument("--results", required=True, metavar="DIR", help="results folder (RESULTS/<tracker>/)")
    p.add_argument("--trackers", required=True, type=parse_names, metavar="A,B",
                   help="comma-separated tracker names (sub-folders of --results)")
    p.add_argument("--out", required=True, metavar="FILE", help="output .mp4, .gif or .png")
    p.add_argument("--frames", default=None, metavar="1,50,100",
                   help="1-based frame numbers: the tiles of a .png (default 6 evenly spaced), or "
                        "the frames of a video (default all)")
    p.add_argument("--colors", default=None, metavar="NAME=COLOR,...",
                   help="colour overrides: name=red, name=#ff8800 (separate r,g,b triples with ;)")
    p.add_argument("--fps", type=float, default=25.0, help="video frame rate (default 25)")
    p.add_argument("--no-gt", action="store_true", help="do not draw the ground truth")
    p.add_argument("--cols", type=int, default=None, help="contact sheet columns (default <= 4)")
    p.set_defaults(func=run)


def parse_frames(text: str, n: int) -> list:
    try:
        frames = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--frames must be comma-separated frame numbers, got {text!r}") from None
    bad = [f for f in frames if not 1 <= f <= n]
    if not frames or bad:
        raise UserError(f"--frames must be numbers in 1..{n}, got {text!r}")
    return frames


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from foundation.images import read_bgr
    from otb_eval.datasets import OTBDataset
    from otb_eval.results import find_tracker_results

    from ..overlay import VideoSink, colors_for, contact_sheet, draw_frame, parse_colors

    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".mp4", ".avi", ".gif", ".png"):
        raise UserError(f"--out must end in .mp4, .avi, .gif or .png, got {args.out!r}")
    from foundation.fileio import ensure_writable_file

    if args.fps is not None and not (args.fps > 0 and np.isfinite(args.fps)):
        raise UserError(f"--fps must be a positive number, got {args.fps}")
    if args.cols is not None and args.cols < 1:
        raise UserError(f"--cols must be at least 1, got {args.cols}")
    ensure_writable_file(args.out, "--out")
    overrides = parse_colors(args.colors)
    ds = OTBDataset(args.dataset, "auto", sequences=[args.sequence])
    seq = ds[args.sequence]
    boxes = {t: find_tracker_results(args.results, t, ds.seq_names).boxes(seq) for t in args.trackers}
    colors = colors_for(args.trackers, overrides)
    n = len(seq)
    if args.frames:
        frames = parse_frames(args.frames, n)
    elif ext == ".png":
        frames = sorted(set(int(round(v)) for v in np.linspace(1, n, min(6, n))))
    else:
        frames = list(range(1, n + 1))

    def render(f: int):
        i = f - 1
        gt = None if args.no_gt else seq.anno[i]
        return draw_frame(read_bgr(seq.img_files[i]), {t: b[i] for t, b in boxes.items()}, colors,
                          gt=gt, frame=f)

    if ext == ".png":
        import cv2

        from foundation.fileio import atomic_path

        sheet = contact_sheet([render(f) for f in frames], args.cols)
        with atomic_path(args.out) as tmp:
            ok, png = cv2.imencode(".png", sheet)
            if not ok:
                raise UserError(f"cannot encode {args.out} as PNG")
            with open(tmp, "wb") as f:
                f.write(png.tobytes())
    else:
        with VideoSink(args.out, args.fps) as sink:
            for f in frames:
                sink.write(render(f))
    print(f"{seq.name}: {len(args.trackers)} trackers, {len(frames)} frames -> {args.out}")
    return 0
