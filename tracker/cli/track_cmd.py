"""``metatrack track``: track one target through a video, a folder of frames or an OTB sequence."""
from __future__ import annotations

import argparse
import os

from foundation.errors import UserError

from ._common import add_device_arg, resolve_device_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "track", help="track a target in a video / frame folder / OTB sequence; write boxes + video",
        description="Track the target in INPUT (a video file, a folder of frames, or an OTB "
                    "sequence folder whose first ground-truth box is the default --box) and write "
                    "OUT/<name>.txt (one x,y,w,h row per frame, in the coordinates of the given box), "
                    "OUT/<name>_time.txt (seconds per frame) and OUT/<name>.mp4 (the frames with the "
                    "box drawn).")
    p.add_argument("input", metavar="INPUT", help="video file, folder of frames, or OTB sequence folder")
    p.add_argument("--box", metavar="X,Y,W,H", default=None,
                   help="initial box on the first frame (top-left x, y, width, height in pixels); "
                        "default: the OTB folder's first ground-truth box")
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
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--name", default=None, help="output file stem (default: INPUT's name)")
    p.add_argument("--show", action="store_true", help="show the frames while tracking (needs a display)")
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


def run(args: argparse.Namespace) -> int:
    import sys
    import warnings

    from ..video import open_frames

    device = resolve_device_arg(args)
    if args.threads is not None:  # always set (default 1)
        if args.threads < 1:
            raise UserError("--threads must be >= 1")
        import torch

        torch.set_num_threads(args.threads)
    source = open_frames(args.input)
    name = args.name or source.name
    if args.box is not None:
        box = parse_box(args.box)
    elif source.gt is not None and len(source.gt):
        box = [float(v) for v in source.gt[0]]
    else:
        raise UserError(f"{args.input} has no ground truth: give the initial box with --box x,y,w,h")
    from foundation.boxes import check_box

    check_box(box)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trk = _make_tracker(args, device)
    for w in caught:  # e.g. untrained weights: one line, not a traceback-looking warning
        print(f"metatrack track: warning: {w.message}", file=sys.stderr)

    from foundation.fileio import output_dir

    with output_dir(args.out, "--out"):
        return _track(args, trk, source, name, box)


def _track(args: argparse.Namespace, trk, source, name: str, box) -> int:
    """Track, drawing the video as it goes; write the boxes and times when all went well."""
    import time

    import numpy as np

    from ..overlay import VideoSink, colors_for, draw_frame

    sink = None if args.no_video else VideoSink(os.path.join(args.out, f"{name}.mp4"), source.fps)
    color = colors_for([args.tracker])
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(source) or None, desc=f"track {name}", unit="frame")
    show = [args.show]

    def on_frame(f: int, frame, out) -> None:
        if sink is not None or show[0]:
            drawn = draw_frame(frame, {args.tracker: out}, color, frame=f + 1, legend=False)
            if sink is not None:
                sink.write(drawn)
            if show[0]:
                show[0] = _show(drawn)
        if bar is not None:
            bar.update(1)

    from otb_eval.experiment import track_frames

    start = time.perf_counter()
    try:
        boxes, times = track_frames(trk, source, box, on_frame)
    except BaseException:
        if sink is not None:
            sink.discard()      # an earlier good video stays as it was
        raise
    else:
        if sink is not None:
            sink.close()
    finally:
        if bar is not None:
            bar.close()
        if args.show:
            _close_windows()
    if not len(boxes):
        raise UserError(f"{args.input}: no frames could be read")
    from foundation.fileio import atomic_write_text
    from otb_eval.results import format_boxes

    atomic_write_text(os.path.join(args.out, f"{name}_time.txt"), "".join(f"{t:.8f}\n" for t in times))
    atomic_write_text(os.path.join(args.out, f"{name}.txt"), format_boxes(np.array(boxes)))
    total = time.perf_counter() - start
    print(f"{len(boxes)} frames tracked with {args.tracker} at {len(boxes) / max(sum(times), 1e-9):.1f} fps "
          f"(tracker time; {total:.1f} s in all) -> {os.path.join(args.out, name)}.txt"
          + ("" if sink is None else f", {name}.mp4"))
    return 0


def _show(img) -> bool:
    try:
        import cv2

        cv2.imshow("metatrack", img)
        cv2.waitKey(1)
        return True
    except Exception as err:  # noqa: BLE001 - no display / headless OpenCV
        import sys

        print(f"metatrack track: --show unavailable ({str(err).splitlines()[0][:80]}); continuing",
              file=sys.stderr)
        return False


def _close_windows() -> None:
    try:
        import cv2

        cv2.destroyAllWindows()
    except Exception:  # noqa: BLE001
        pass
