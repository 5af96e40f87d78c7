"""``metatrack overlay``: several trackers' boxes on a sequence (mp4, gif) or a figure of sequences (png)."""
from __future__ import annotations

import argparse
import os

from foundation.errors import UserError

from ._common import parse_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "overlay", help="draw several trackers' boxes on a sequence (.mp4/.gif) or a figure (.png)",
        description="Draw the boxes of --trackers (read from RESULTS/<tracker>/<seq>.txt, any layout "
                    "`metatrack report` reads) on sequence --sequence of --dataset, with the ground "
                    "truth dashed, the frame number and a legend below the frames. Small frames are "
                    "upscaled so that boxes and text stay legible. OUT ending in .png is a figure for "
                    "a paper: --frames of each --sequence in a row, the legend outside. Colours: metasdnet red, *-l2f green, *-dropgrad blue, "
                    "*-l2f-dropgrad cyan, others from a palette; override with --colors.")
    p.add_argument("--dataset", required=True, metavar="DIR", help="folder of OTB-format sequences")
    p.add_argument("--sequence", required=True, type=parse_names, metavar="NAME[,NAME]",
                   help="sequence name (any spelling); several, comma-separated, for a .png figure "
                        "(one row each)")
    p.add_argument("--results", required=True, metavar="DIR", help="results folder (RESULTS/<tracker>/)")
    p.add_argument("--trackers", required=True, type=parse_names, metavar="A,B",
                   help="comma-separated tracker names (sub-folders of --results)")
    p.add_argument("--out", required=True, metavar="FILE", help="output .mp4, .gif or .png")
    p.add_argument("--frames", default=None, metavar="1,50,100",
                   help="1-based frame numbers, in the order shown: the tiles of a .png (default 6 "
                        "evenly spaced, 4 per sequence with several), or the frames of a video "
                        "(default all)")
    p.add_argument("--colors", default=None, metavar="NAME=COLOR,...",
                   help="colour overrides: name=red, name=#ff8800 (separate r,g,b triples with ;)")
    p.add_argument("--fps", type=float, default=25.0, help="video frame rate (default 25)")
    p.add_argument("--no-gt", action="store_true", help="do not draw the ground truth")
    p.add_argument("--cols", type=int, default=None,
                   help=".png: frames per row (default: all of a sequence's in one row)")
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


def _default_frames(n: int, count: int) -> list:
    import numpy as np

    return sorted(set(int(round(v)) for v in np.linspace(1, n, min(count, n))))


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from foundation.fileio import ensure_writable_file
    from foundation.images import read_bgr
    from otb_eval.datasets import OTBDataset
    from otb_eval.results import find_tracker_results, read_scores

    from ..api import default_lost_threshold
    from ..figure import Panel, legend_strip, qualitative_figure, video_frame
    from ..overlay import VideoSink, colors_for, parse_colors

    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".mp4", ".avi", ".gif", ".png"):
        raise UserError(f"--out must end in .mp4, .avi, .gif or .png, got {args.out!r}")
    if args.fps is not None and not (args.fps > 0 and np.isfinite(args.fps)):
        raise UserError(f"--fps must be a positive number, got {args.fps}")
    if args.cols is not None and args.cols < 1:
        raise UserError(f"--cols must be at least 1, got {args.cols}")
    names = args.sequence
    if len(names) > 1 and ext != ".png":
        raise UserError(f"a video shows one sequence; several (--sequence {','.join(names)}) make a .png figure")
    ensure_writable_file(args.out, "--out")
    overrides = parse_colors(args.colors)
    ds = OTBDataset(args.dataset, "auto", sequences=names)
    seqs = [ds[name] for name in names]
    results = {t: find_tracker_results(args.results, t, ds.seq_names) for t in args.trackers}
    colors = colors_for(args.trackers, overrides)

    thresholds = {t: default_lost_threshold(t) for t in args.trackers}

    def lost_frames(seq) -> dict:
        """Per tracker, the frames its score file flags as lost (none without scores or a threshold)."""
        out = {}
        for t in args.trackers:
            scores = read_scores(args.results, t, seq.name) if thresholds[t] is not None else None
            out[t] = set() if scores is None else {i + 1 for i, v in enumerate(scores) if v < thresholds[t]}
        return out

    def panels(seq, frames):
        boxes = {t: r.boxes(seq) for t, r in results.items()}
        lost = lost_frames(seq)
        for f in frames:
            yield Panel(read_bgr(seq.img_files[f - 1]), f, {t: b[f - 1] for t, b in boxes.items()},
                        None if args.no_gt else seq.anno[f - 1], lost=[t for t in args.trackers if f in lost[t]])

    if ext == ".png":
        rows = []
        for seq in seqs:
            frames = parse_frames(args.frames, len(seq)) if args.frames else \
                _default_frames(len(seq), 6 if len(seqs) == 1 else 4)
            tiles = list(panels(seq, frames))
            step = args.cols or len(tiles)
            for k in range(0, len(tiles), step):
                rows.append((seq.name if k == 0 else f"{seq.name} (cont.)", tiles[k:k + step]))
        figure = qualitative_figure(rows, args.trackers, colors)
        _write_png(args.out, figure)
        count = sum(len(r[1]) for r in rows)
    else:
        seq = seqs[0]
        frames = parse_frames(args.frames, len(seq)) if args.frames else list(range(1, len(seq) + 1))
        legend = None
        with VideoSink(args.out, args.fps) as sink:
            for panel in panels(seq, frames):
                if legend is None:
                    width = max(640, panel.image.shape[1])
                    legend = legend_strip(args.trackers, colors, width, panel.gt is not None,
                                          scale=width / 480 * 0.6)
                sink.write(video_frame(panel, args.trackers, colors, legend=legend))
        count = len(frames)
    print(f"{', '.join(s.name for s in seqs)}: {len(args.trackers)} trackers, {count} frames -> {args.out}")
    return 0


def _write_png(path: str, image) -> None:
    import cv2

    from foundation.fileio import atomic_path

    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise UserError(f"cannot encode {path} as PNG")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(png.tobytes())
