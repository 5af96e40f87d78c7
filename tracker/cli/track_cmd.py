"""``metatrack track``: track one target through a video, a folder of frames or an OTB sequence."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from foundation.errors import UserError

from ._common import add_device_arg, resolve_device_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track", help="track targets in a video / frame folder / OTB sequence / camera / stream; "
                      "write boxes + video",
        description="Track the targets in INPUT (a video file, a folder of frames, an OTB "
                    "sequence folder whose first ground-truth box is the default --box, or a stream "
                    "URL such as rtsp://... or http://...) or in camera --camera N, and write "
                    "OUT/<name>.txt (one x,y,w,h row per frame, in the coordinates of the given box), "
                    "OUT/<name>_time.txt (seconds per frame), OUT/<name>_score.txt (the tracker's "
                    "confidence per frame, when it reports one) and OUT/<name>.mp4 (the frames with "
                    "the boxes drawn). Several targets (--box repeated, --boxes, or several boxes "
                    "drawn) are tracked side by side into <name>.1.txt, <name>.2.txt, ... Without "
                    "--box, the first frame opens in a window: drag a box around each target, Enter "
                    "or Space starts, Backspace undoes, Esc or c cancels.")
    p.add_argument("input", metavar="INPUT", nargs="?", default=None,
                   help="video file, folder of frames, OTB sequence folder, or stream URL")
    p.add_argument("--camera", type=int, default=None, metavar="N",
                   help="track camera N (0 = the first) instead of INPUT")
    p.add_argument("--box", metavar="X,Y,W,H", action="append", default=[],
                   help="initial box on the first frame (top-left x, y, width, height in pixels); "
                        "repeat for several targets; default: the OTB folder's first ground-truth "
                        "box, else drawn in a window")
    p.add_argument("--boxes", metavar="FILE", default=None,
                   help="initial boxes, one x,y,w,h per line (one target each)")
    p.add_argument("--start-frame", type=int, default=1, metavar="N",
                   help="start at frame N (1 = the first) of a video or folder; the boxes are on it")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long a camera or stream may take to deliver a frame (default 10)")
    p.add_argument("--tracker", default="metasdnet", metavar="NAME",
                   help="registered tracker (default metasdnet; see `metatrack eval --help` or "
                        "tracker.names())")
    p.add_argument("--weights", metavar="FILE", default=None,
                   help="weights: our .pt, an official Meta-Tracker checkpoint (MetaSDNet or "
                        "MetaCREST) or imagenet-vgg-m.mat (default: weights/<tracker>.pt)")
    p.add_argument("--backbone", metavar="FILE", default=None,
                   help="metacrest/crest: VGG-16 features (imagenet-vgg-verydeep-16.mat or a torch "
                        "state dict), needed with an official MetaCREST checkpoint")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a tracker option, checked against the family's options: e.g. "
                        "lr_update=1e-4 for metasdnet/mdnet (tracker.sdnet.online.SDNetOptions), "
                        "update_lr=1e-5 or scales=1,0.95,1.05 for metacrest/crest "
                        "(tracker.crest.online.CRESTOptions); repeatable")
    p.add_argument("--mode", choices=["fast", "exact"], default=None,
                   help="metasdnet/mdnet: fast (RoIAlign on one search region, default) or exact "
                        "(107x107 crop per box, MDNet's way; slow)")
    p.add_argument("--out", default="tracked", metavar="DIR",
                   help="output folder (created if missing; default ./tracked)")
    p.add_argument("--name", default=None, help="output file stem (default: INPUT's name)")
    p.add_argument("--show", action="store_true",
                   help="show the frames and boxes while tracking (needs a display; q stops, keeping "
                        "what was tracked)")
    p.add_argument("--no-video", action="store_true", help="do not write OUT/<name>.mp4")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch CPU threads (default 1: the per-frame tensors are small, extra threads "
                        "gain little and on a busy machine cost up to 10x)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_device_arg(p)
    p.set_defaults(func=run)


def parse_box(text: str) -> list:
    parts = [t for t in text.replace(" ", ",").split(",") if t]
    try:
        vals = [float(t) for t in parts]
    except ValueError:
        vals = []
    if len(vals) != 4:
        raise UserError(f"--box must be 4 numbers x,y,w,h (e.g. 120,80,40,60), got {text!r}")
    return vals


def _make_tracker(args: argparse.Namespace, device):
    from ..api import families, family_of, make, spec
    from ._common import parse_key_values

    spec(args.tracker)   # an unknown name first
    fam = family_of(args.tracker)
    options = parse_key_values(args.option, "--option")
    if args.weights is not None:
        if not os.path.isfile(args.weights):
            raise UserError(f"weights file {args.weights} does not exist")
        options["weights"] = args.weights
    for flag in ("mode", "backbone"):   # the flags only one family's trackers take
        if getattr(args, flag) is None:
            continue
        if fam is None or flag not in fam.track_flags:
            owners = " and ".join(n for f in families() if flag in f.track_flags for n in (f.name, f.plain))
            raise UserError(f"tracker {args.tracker!r} takes no --{flag} (an option of {owners})")
        if flag == "backbone" and not os.path.isfile(args.backbone):
            raise UserError(f"backbone file {args.backbone} does not exist")
        options[flag] = getattr(args, flag)
    if options and fam is None:
        titles = " and ".join(f.title for f in families())
        raise UserError(f"tracker {args.tracker!r} takes no --weights/--option "
                        f"(options of the {titles} families)")
    return make(args.tracker, device=device, **options)


def _given_boxes(args: argparse.Namespace) -> List[List[float]]:
    """The boxes of --box (each) and --boxes FILE, in that order; numbers checked, not yet sizes."""
    from foundation.boxes import check_box

    boxes = [parse_box(text) for text in args.box]
    if args.boxes is not None:
        from otb_eval.datasets import parse_boxes

        rows = parse_boxes(args.boxes)
        if not len(rows):
            raise UserError(f"--boxes {args.boxes} holds no x,y,w,h line")
        boxes += [[float(v) for v in row] for row in rows]
    for box in boxes:
        check_box(box)
    return boxes


def _default_boxes(args: argparse.Namespace, source, first) -> Optional[List[List[float]]]:
    """The OTB folder's ground truth on the start frame, else the boxes drawn in the selection
    window (None if the user cancels), else (no display) the one-line error naming --box."""
    if source.gt is not None and len(source.gt) >= args.start_frame:
        return [[float(v) for v in source.gt[args.start_frame - 1]]]
    from ..display import has_display

    if not has_display():
        raise UserError(f"{source.path} has no ground truth and there is no display to draw the box "
                        "on: give the initial box with --box x,y,w,h")
    from ..select import select_boxes

    drawn = select_boxes(first)
    return None if drawn is None else [[float(v) for v in b] for b in drawn]


def _make_trackers(args: argparse.Namespace, device, k: int, quiet: bool = False) -> list:
    """``k`` trackers (one per target); a warning building them (e.g. untrained weights) is one
    line, said once (``quiet``: not at all, it was said for the first)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trackers = [_make_tracker(args, device) for _ in range(k)]
    for message in [] if quiet else dict.fromkeys(str(w.message) for w in caught):
        print(f"metatrack track: warning: {message}", file=sys.stderr)
    return trackers


def run(args: argparse.Namespace) -> int:
    import itertools

    from foundation.boxes import check_box
    from foundation.fileio import output_dir
    from foundation.images import image_size

    from ..sources import open_input

    device = resolve_device_arg(args)
    if args.threads < 1:
        raise UserError("--threads must be >= 1")
    if args.start_frame < 1:
        raise UserError(f"--start-frame must be >= 1, got {args.start_frame}")
    import torch

    torch.set_num_threads(args.threads)
    boxes = _given_boxes(args)
    source = open_input(args.input, args.camera, args.timeout)
    frames = source.frames(args.start_frame - 1)
    try:
        first = next(frames, None)
        if first is None:
            raise UserError(f"{source.path}: no frame {args.start_frame} to start from" if args.start_frame > 1
                            else f"{source.path}: no frames could be read")
        for box in boxes:
            check_box(box, *image_size(first))
        trackers = _make_trackers(args, device, 1)     # tracker flags are checked before any window
        boxes = boxes or _default_boxes(args, source, first)
        if boxes is None:
            print("metatrack track: box selection cancelled; nothing tracked, nothing written",
                  file=sys.stderr)
            return 1
        trackers += _make_trackers(args, device, len(boxes) - 1, quiet=True)
        with output_dir(args.out, "--out"):
            return _track(args, trackers, source, itertools.chain([first], frames), boxes)
    finally:
        frames.close()


def lost_labels(labels: List[str], step) -> List[str]:
    """The targets whose tracker flags this frame as lost (drawn dashed grey)."""
    return [label for label, lost in zip(labels, step.lost) if lost]


def _track(args: argparse.Namespace, trackers: list, source, frames, boxes) -> int:
    """Track frame by frame, drawing the video (and the live view) as it goes."""
    import time

    from ..multitrack import iter_video
    from ..overlay import PALETTE, colors_for, draw_frame
    from ..view import LiveView
    from ._track_outputs import TrackOutputs

    name = args.name or source.name
    k = len(boxes)
    labels = [args.tracker] if k == 1 else [f"target {i + 1}" for i in range(k)]
    colors = colors_for(labels) if k == 1 else {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(labels)}
    outputs = TrackOutputs(args.out, name, k, source.live, not args.no_video, source.fps)
    view = LiveView() if args.show else None
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        total = max(len(source) - args.start_frame + 1, 0) or None
        bar = tqdm(total=total, desc=f"track {name}", unit="frame")
    start, stopped = time.perf_counter(), False
    steps = iter_video(frames, boxes, trackers)
    try:
        for step in steps:
            drawn, number = None, args.start_frame + step.index
            if outputs.sink is not None:
                drawn = draw_frame(step.image, dict(zip(labels, step.boxes)), colors, frame=number, legend=k > 1,
                                   lost=lost_labels(labels, step), scores=dict(zip(labels, step.scores)))
            outputs.add(step.boxes, step.scores, step.seconds, drawn)
            if bar is not None:
                bar.update(1)
            if view is not None and not view.show(step.image, dict(zip(labels, step.boxes)), colors, number, k > 1,
                                                  lost=lost_labels(labels, step),
                                                  scores=dict(zip(labels, step.scores))):
                stopped = True
                break
    except BaseException:
        outputs.abort()      # a file run writes nothing; a live run keeps every tracked frame
        raise
    finally:
        steps.close()
        if bar is not None:
            bar.close()
        if view is not None:
            view.close()
    written = outputs.finish()
    what = f"{outputs.frames} frames" + ("" if k == 1 else f", {k} targets,")
    print(("stopped (q); " if stopped else "")
          + f"{what} tracked with {args.tracker} at {outputs.frames * k / max(outputs.seconds, 1e-9):.1f} fps "
          f"(tracker time; {time.perf_counter() - start:.1f} s in all) -> "
          f"{os.path.join(args.out, written[0])}" + "".join(f", {w}" for w in written[1:])
          + ("" if outputs.sink is None else f", {name}.mp4"))
    return 0
