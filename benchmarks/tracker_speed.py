"""How fast MetaSDNet and MetaCREST track on a CPU: fast vs exact mode, frame-1 meta steps vs training.

In one run, on synthetic OTB-format sequences (``otb_eval.synthetic``, test split, 320x240):

- fps = frames / total tracker time, frame 1 included, for the four shipped MetaSDNet variants
  (``metasdnet``, ``-l2f``, ``-dropgrad``, ``-l2f-dropgrad``, each on its own weights file) in
  fast mode (every frame), ``mdnet`` in fast mode, and ``metasdnet`` in fast and in exact mode on the first
  ``--exact-frames`` frames of each sequence (exact mode is slow; same frames, comparable IoU);
- frame-1 time (the median of ``--repeats`` inits on each sequence's first frame): the one
  meta-SGD step of ``metasdnet`` against the ``finetune_iters`` fine-tuning iterations of ``mdnet``,
  both with bounding-box regression and memory set-up;
- MetaCREST: fps of its four shipped variants and ``crest`` on every frame (same methodology), the frame-1
  time (one meta-SGD step against ``init_iters`` Adam iterations from a random filter, same
  medians), and whether every shipped variant of each family reaches the 40 fps target (issue #11).

The process is warmed up first (one init + update), so one-time import costs (torch._dynamo is
imported by the first torch optimiser of a process) are not billed to a sequence. Weights: the
shipped ``weights/metasdnet.pt`` if there is one, else the untrained CPU configuration (speed
does not depend on the values; the mean IoU printed alongside does); for MetaCREST
``--crest-weights FILE`` if given, else the shipped ``weights/metacrest.pt`` (``crest`` takes its
backbone and options too), else the untrained start on the MetaSDNet conv layers (marked
UNTRAINED in the output).

    python benchmarks/tracker_speed.py [--sequences 3] [--frames 100] [--threads 2]
        [--real benchmarks/.data/real-val --real-size 640x480 --real-rounds 3]

``--real DIR`` adds real footage (benchmarks/real_clips.py's sequences): every frame fitted into
``--real-size`` (aspect kept, black bars; boxes mapped), then every shipped variant of both
families, ``mdnet``, ``crest`` and the OpenCV trackers on every frame of every sequence in the same
run, fps = frames / total tracker time (frame 1 included), each against CSRT's fps: in
``--real-rounds`` rounds of every tracker in turn, the median round's fps and the median of the
per-round ratios (a shared machine's speed drifts by 20-40% between minutes).

``--no-save`` prints the markdown instead of writing the JSON and docs/results/tracker_speed.md (to try
the script on a few frames, e.g. ``--sequences 1 --frames 10 --exact-frames 2 --repeats 1``).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import warnings

from _util import CREST_VARIANTS, SDNET_VARIANTS, letterboxed, machine, median, relative, save, time_repeats


def run_sequence(make, seq, frames=None):
    import numpy as np

    from foundation.boxes import iou
    from otb_eval.datasets import Sequence
    from otb_eval.experiment import track_sequence

    if frames is not None:
        seq = Sequence(seq.name, seq.img_files[:frames], seq.anno[:frames], seq.attributes,
                       seq.folder, seq.frame_numbers[:frames])
    trk = make()
    boxes, times = track_sequence(trk, seq)
    return {"sequence": seq.name, "frames": len(seq), "seconds": float(times.sum()),
            "frame1_seconds": float(times[0]), "fps": float(len(seq) / times.sum()),
            "mean_iou": float(np.mean(iou(boxes, seq.anno)))}


def summarise(rows):
    frames = sum(r["frames"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds,
            "mean_iou": sum(r["mean_iou"] * r["frames"] for r in rows) / frames, "per_sequence": rows}


CREST_TARGET_FPS = 40.0   # frames / total time, frame 1 included, 2 threads (issue #11)
SDNET_TARGET_FPS = 40.0
REAL_CSRT_RATIO = 1.5     # shipped variants against CSRT on real clips (issue #26)


def measure_real(args) -> dict:
    """fps (frames / total time, frame 1 included) and mean IoU of every shipped variant of both
    families, their ordinary starts and the OpenCV trackers on the real clips, same run:
    ``--real-rounds`` rounds, each tracker once per round in turn (a shared machine's speed drifts
    between minutes), reported as the median round's fps and the median of the per-round ratios to
    CSRT."""
    import statistics

    import tracker
    from foundation.images import read_bgr
    from otb_eval.datasets import OTBDataset
    from tracker.baselines import available_baselines

    w, h = (int(v) for v in args.real_size.lower().split("x"))
    dataset = OTBDataset(args.real)
    with tempfile.TemporaryDirectory() as tmp:
        seqs = letterboxed(dataset, (w, h), tmp)
        names = SDNET_VARIANTS + ["mdnet"] + CREST_VARIANTS + ["crest"] + available_baselines()
        out = {"dataset": relative(args.real), "size": [w, h], "sequences": [s.name for s in seqs],
               "rounds": args.real_rounds, "fps": {}, "target_fps": SDNET_TARGET_FPS,
               "csrt_ratio_target": REAL_CSRT_RATIO}
        for name in names:
            warm = tracker.make(name)   # warm-up: imports, first calls, allocator
            warm.init(read_bgr(seqs[0].img_files[0]), seqs[0].anno[0])
            warm.update(read_bgr(seqs[0].img_files[1]))
        rounds = {name: [] for name in names}
        for k in range(args.real_rounds):
            for name in names:
                r = summarise([run_sequence(lambda: tracker.make(name), s) for s in seqs])
                rounds[name].append(r)
                print(f"real round {k + 1} {name:24s} {r['frames']:5d} frames {r['fps']:6.1f} fps  "
                      f"mean IoU {r['mean_iou']:.3f}")
    for name, rs in rounds.items():
        fps = [r["fps"] for r in rs]
        mid = sorted(range(len(rs)), key=lambda i: fps[i])[len(rs) // 2]
        out["fps"][name] = {**rs[mid], "round_fps": fps}
        if "csrt" in rounds:
            out["fps"][name]["x_csrt"] = statistics.median(f / c["fps"] for f, c in zip(fps, rounds["csrt"]))
    shipped = {v: out["fps"][v]["fps"] for v in SDNET_VARIANTS + CREST_VARIANTS}
    out["slowest"] = min(shipped, key=shipped.get)
    out["meets_target"] = min(shipped.values()) >= SDNET_TARGET_FPS
    ratios = {v: out["fps"][v].get("x_csrt") for v in shipped}
    out["meets_csrt_ratio"] = None if "csrt" not in rounds else min(ratios.values()) >= REAL_CSRT_RATIO
    out["lowest_csrt_ratio"] = None if "csrt" not in rounds else min(ratios, key=ratios.get)
    return out


def real_markdown(r: dict, threads: int) -> list:
    """The real-clip section of docs/results/tracker_speed.md."""
    w, h = r["size"]
    csrt = r["fps"].get("csrt", {}).get("fps")
    rounds = r.get("rounds", 1)
    md = ["## Real clips", "",
          f"The real validation clips (`{r['dataset']}`: {', '.join(r['sequences'])}; "
          "[real_clips.md](../real_clips.md)), every frame fitted into "
          f"{w}x{h} (aspect kept, black bars), {threads} torch threads, the shipped weights; same "
          f"run and machine as above, {rounds} round(s), each tracker once per round in turn. fps = "
          "frames / total tracker time, frame 1 included, of the median round (every round's in the "
          "rounds column); x CSRT = the median over rounds of the tracker's fps / CSRT's in that round.", "",
          "| tracker | frames | fps | rounds | x CSRT | mean IoU |", "|---|---:|---:|---|---:|---:|"]
    for name, x in sorted(r["fps"].items(), key=lambda kv: -kv[1]["fps"]):
        ratio = x.get("x_csrt", x["fps"] / csrt if csrt else None)
        each = ", ".join(f"{f:.1f}" for f in x.get("round_fps", [x["fps"]]))
        md.append(f"| {name} | {x['frames']} | {x['fps']:.1f} | {each} | "
                  f"{'-' if ratio is None else f'{ratio:.2f}'} | {x['mean_iou']:.3f} |")
    slow = r["fps"][r["slowest"]]["fps"]
    md += ["", f"Slowest shipped variant: {r['slowest']} at {slow:.1f} fps: "
           + ("at or above" if r["meets_target"] else "BELOW") + f" the {r['target_fps']:.0f} fps target"]
    if csrt is not None:
        low = r.get("lowest_csrt_ratio", r["slowest"])
        x = r["fps"][low].get("x_csrt", r["fps"][low]["fps"] / csrt)
        md[-1] += (f"; lowest ratio to CSRT: {low} at {x:.2f}x ("
                   + ("at or above" if r["meets_csrt_ratio"] else "BELOW") + f" the {r['csrt_ratio_target']:g}x target)")
    md[-1] += (". The mean IoU column is one run of each tracker, not an accuracy table "
               "([real_table.md](real_table.md) is).")
    md.append("")
    return md


def target_reading(family: str, fps: dict, target: float) -> str:
    """Which of a family's shipped variants reach the fps target (``fps``: variant -> fps)."""
    slow = [f"{v} {f:.1f}" for v, f in fps.items() if f < target]
    low = min(fps, key=fps.get)
    if not slow:
        return (f"every shipped {family} variant meets the {target:.0f} fps target "
                f"(slowest: {low}, {fps[low]:.1f} fps)")
    return f"{family} MISSES the {target:.0f} fps target with {', '.join(slow)} fps"


def measure_crest(args, seqs) -> dict:
    """MetaCREST's measurements: fps of ``metacrest`` and ``crest`` (every frame, frame 1
    included) and their frame-1 time (one meta-SGD step vs ``init_iters`` Adam iterations)."""
    import tracker
    from foundation.images import read_bgr
    from tracker.weights import find_weights

    # crest borrows the backbone and trained-with options of the metacrest file; without one,
    # both start untrained on the MetaSDNet conv layers (speed only: IoU means little)
    path = args.crest_weights or find_weights("metacrest")
    wopt = {"weights": path} if path else {}
    make = {"metacrest": lambda: tracker.make("metacrest", **wopt),
            "crest": lambda: tracker.make("crest", **wopt)}
    warm = make["metacrest"]()
    # warm-up of both starts (crest's first Adam step imports torch._dynamo)
    for trk in (warm, make["crest"]()):
        trk.init(read_bgr(seqs[0].img_files[0]), seqs[0].anno[0])
        trk.update(read_bgr(seqs[0].img_files[1]))
    w = warm.weights
    out = {"weights": relative(w.source) if path else "untrained (MetaSDNet conv layers, seeded target model)",
           "trained_weights": bool(w.trained),
           "weights_metadata": {k: w.metadata.get(k) for k in ("command", "date", "iterations")
                                if k in w.metadata},
           "backbone": {"kind": warm.backbone.kind,
                        "out_channels": int(warm.backbone.out_channels)},
           "options": warm.opts.to_dict(), "fps": {}, "frame1": {},
           "target_fps": CREST_TARGET_FPS}
    names = ["metacrest", "crest"]
    if not args.crest_weights:   # the other shipped variants, each on its own weights file
        for v in CREST_VARIANTS[1:]:
            make[v] = lambda v=v: tracker.make(v)
        names = CREST_VARIANTS + ["crest"]
    for name in names:
        rows = [run_sequence(make[name], s) for s in seqs]
        out["fps"][name] = summarise(rows)
        r = out["fps"][name]
        print(f"{name:16s} {r['frames']:5d} frames {r['fps']:6.1f} fps  mean IoU {r['mean_iou']:.3f}")
    crest_trk = make["crest"]()
    out["crest_init_iters"] = int(crest_trk.opts.init_iters)
    o = warm.opts
    residual = f" + {o.residual_iters} residual-branch iterations" if o.residual else ""
    out["metacrest_start"] = f"1 meta-SGD step{residual}"
    out["crest_start"] = f"{crest_trk.opts.init_iters} Adam iterations" + (" with the residual branch"
                                                                          if crest_trk.opts.residual else "")
    for label, trk in ((f"metacrest ({out['metacrest_start']})", warm),
                       (f"crest ({out['crest_start']})", crest_trk)):
        per_seq = []
        for s in seqs:
            img = read_bgr(s.img_files[0])
            per_seq.append(median(time_repeats(lambda: trk.init(img, s.anno[0]), args.repeats)))
        out["frame1"][label] = {"median_seconds": median(per_seq), "per_sequence": per_seq}
        print(f"frame 1 {label:28s} {median(per_seq) * 1000:7.0f} ms")
    meta_s, crest_s = (r["median_seconds"] for r in out["frame1"].values())
    out["frame1_speedup"] = crest_s / meta_s
    variants = {v: out["fps"][v]["fps"] for v in CREST_VARIANTS if v in out["fps"]}
    out["meets_target"] = min(variants.values()) >= CREST_TARGET_FPS
    out["target_reading"] = target_reading("MetaCREST", variants, CREST_TARGET_FPS)
    print(f"{out['target_reading']}; frame 1 {out['frame1_speedup']:.1f}x faster than crest")
    return out


def crest_markdown(c: dict) -> list:
    """The MetaCREST section of docs/results/tracker_speed.md."""
    o, meta = c["options"], c["weights_metadata"]
    md = ["## MetaCREST", "",
          f"Same sequences and machine. Weights: {'trained' if c['trained_weights'] else 'UNTRAINED'} "
          f"({c['weights']}"
          + (f"; made at {meta.get('date')} after {meta.get('iterations')} meta-training iterations"
             if meta.get("iterations") is not None else "")
          + f"); `crest` uses the same backbone and options. Backbone {c['backbone']['kind']} "
          f"({c['backbone']['out_channels']} channels, stride 4); window {o['window_factor']:g} x "
          f"the target, targets scaled to {o['min_target_px']:g}-{o['max_target_px']:g} px; scales "
          f"{', '.join(f'{s:g}' for s in o['scales'])} (one crop each); online update every "
          f"{o['update_every']} frames ({o['update_steps']} Adam steps); CREST's residual branches "
          f"{'on' if o.get('residual') else 'off'}. fps = frames / total "
          "tracker time, frame 1 included.", "",
          "| tracker | frame-1 start | frames | fps | mean IoU |", "|---|---|---:|---:|---:|"]
    starts = {"metacrest": c.get("metacrest_start", "1 meta-SGD step"),
              "crest": c.get("crest_start", f"{c['crest_init_iters']} Adam iterations")}
    for name, r in c["fps"].items():
        md.append(f"| {name} | {starts.get(name, starts['metacrest'])} | {r['frames']} | {r['fps']:.1f} | "
                  f"{r['mean_iou']:.3f} |")
    md += ["", "| start | frame-1 time |", "|---|---:|"]
    for label, r in c["frame1"].items():
        md.append(f"| {label} | {r['median_seconds'] * 1000:.0f} ms |")
    md += ["", f"MetaCREST's meta-learned start ({starts['metacrest']}) needs {c['frame1_speedup']:.1f}x "
           f"less time at frame 1 than `crest`'s {starts['crest']}. Fps: {c['target_reading']}.", ""]
    return md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=3)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--exact-frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default=None,
                        help="FILE, or 'untrained' (default: the shipped weights/metasdnet.pt if any)")
    parser.add_argument("--crest-weights", default=None, metavar="FILE",
                        help="MetaCREST weights for metacrest and crest (default: the shipped "
                             "weights/metacrest.pt if any, else the untrained start)")
    parser.add_argument("--real", default=None, metavar="DIR",
                        help="also time every shipped tracker and OpenCV's on these real clips (an "
                             "OTB folder, e.g. benchmarks/.data/real-val from benchmarks/real_clips.py)")
    parser.add_argument("--real-size", default="640x480", metavar="WxH",
                        help="frame size the real clips are fitted into (default 640x480)")
    parser.add_argument("--real-rounds", type=int, default=3, metavar="N",
                        help="rounds over the real clips, every tracker once per round (default 3)")
    parser.add_argument("--no-save", action="store_true",
                        help="print the markdown; write neither the JSON nor docs/results/tracker_speed.md")
    args = parser.parse_args()
    if args.real_rounds < 1:
        raise SystemExit(f"--real-rounds must be at least 1, got {args.real_rounds}")
    if args.real and not os.path.isdir(args.real):
        raise SystemExit(f"--real: no folder {args.real} (python benchmarks/real_clips.py makes it)")

    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    import tracker
    from foundation.images import read_bgr
    from otb_eval.datasets import OTBDataset
    from otb_eval.synthetic import generate
    from tracker.sdnet.online import SDNetOptions

    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, args.sequences, seed=args.seed, split="test",
                 frames=(args.frames, args.frames), progress=False)
        ds = OTBDataset(tmp, "auto")
        seqs = list(ds)
        # warm-up: imports, first conv calls, allocator
        from tracker.sdnet.weights import untrained_weights

        wopt = {}
        if args.weights == "untrained":
            wopt = {"weights": untrained_weights()}
        elif args.weights:
            wopt = {"weights": args.weights}
        warm = tracker.make("metasdnet", **wopt)
        warm.init(read_bgr(seqs[0].img_files[0]), seqs[0].anno[0])
        warm.update(read_bgr(seqs[0].img_files[1]))
        config = warm.config
        src = warm.weights.source
        weights_source = relative(src) if os.path.isfile(src) else src
        weights_meta = {k: warm.weights.metadata.get(k) for k in ("command", "date", "iterations")
                        if k in warm.weights.metadata}
        trained = warm.weights.trained

        results = {}
        ef = args.exact_frames
        # the other shipped variants (their own weights files) unless --weights names one file
        others = [] if wopt else [(f"{v} fast", v, {"mode": "fast"}, None) for v in SDNET_VARIANTS[1:]]
        for label, name, kw, frames in ([("metasdnet fast", "metasdnet", {"mode": "fast"}, None)] + others
                                        + [("mdnet fast", "mdnet", {"mode": "fast"}, None),
                                           (f"metasdnet fast-{ef}", "metasdnet", {"mode": "fast"}, ef),
                                           (f"metasdnet exact-{ef}", "metasdnet", {"mode": "exact"}, ef)]):
            w = wopt if name in ("metasdnet", "mdnet") else {}
            rows = [run_sequence(lambda: tracker.make(name, **kw, **w), s, frames) for s in seqs]
            results[label] = summarise(rows)
            r = results[label]
            print(f"{label:16s} {r['frames']:5d} frames {r['fps']:6.1f} fps  mean IoU {r['mean_iou']:.3f}")

        frame1 = {}
        for label, name in (("metasdnet (1 meta-SGD step)", "metasdnet"),
                            ("mdnet (fine-tuning)", "mdnet")):
            trk = tracker.make(name, **wopt)
            per_seq = []
            for s in seqs:
                img = read_bgr(s.img_files[0])
                per_seq.append(median(time_repeats(lambda: trk.init(img, s.anno[0]), args.repeats)))
            frame1[label] = {"median_seconds": median(per_seq), "per_sequence": per_seq}
            print(f"frame 1 {label:28s} {median(per_seq) * 1000:7.0f} ms")
        f1_iters = tracker.make("mdnet").opts.finetune_iters

        crest = measure_crest(args, seqs)
    real = measure_real(args) if args.real else None

    speedup = (frame1["mdnet (fine-tuning)"]["median_seconds"]
               / frame1["metasdnet (1 meta-SGD step)"]["median_seconds"])
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    data = {"machine": machine(), "load_average": load, "threads": args.threads,
            "model_config": config.to_dict(), "weights": weights_source, "trained_weights": trained,
            "weights_metadata": weights_meta,
            "sequences": args.sequences, "frames_per_sequence": args.frames,
            "exact_frames": args.exact_frames, "fps": results, "frame1": frame1,
            "frame1_speedup": speedup, "mdnet_finetune_iters": f1_iters, "metacrest": crest, "real": real}
    fast = {v: results[f"{v} fast"]["fps"] for v in SDNET_VARIANTS if f"{v} fast" in results}
    data["target_reading"] = target_reading("MetaSDNet", fast, SDNET_TARGET_FPS)
    md = [
        "# MetaSDNet and MetaCREST tracking speed on a CPU",
        "",
        f"Generated by `python benchmarks/tracker_speed.py --sequences {args.sequences} --frames {args.frames} "
        f"--threads {args.threads}"
        + (f" --crest-weights {args.crest_weights}" if args.crest_weights else "")
        + (f" --real {relative(args.real)} --real-size {args.real_size} --real-rounds {args.real_rounds}"
           if args.real else "")
        + f"` on {data['machine']['cpus']} CPUs ({data['machine']['platform']}), "
        f"torch {data['machine']['torch']}, {args.threads} torch threads, load average "
        f"{', '.join(f'{v:.1f}' for v in load) if load else 'n/a'} (the machine is shared), "
        f"{data['machine']['date']}.",
        "",
        ("Network: `ModelConfig.efficientnet()` (EfficientNet-Lite0's ImageNet blocks 1-"
         f"{config.backbone_blocks}, frozen, fast mode at stride "
         f"{8 if SDNetOptions().dense_for(config) else 16}), fc {config.fc_dim} "
         if not config.learned_conv else f"Network: `ModelConfig{tuple(config.channels)}`, fc {config.fc_dim} ")
        + f"({'trained' if trained else 'UNTRAINED'} weights: {weights_source}; speed does not "
        "depend on the values, the IoU column does"
        + (f"; made at {weights_meta.get('date')} after {weights_meta.get('iterations')} "
           "meta-training iterations" if weights_meta.get("iterations") is not None else "")
        + "). Synthetic sequences (`otb_eval.synthetic`, 320x240). fps = frames / total tracker "
        "time, frame 1 included.",
        "",
        f"Rows `-{args.exact_frames}` run the first {args.exact_frames} frames of each sequence only "
        "(exact mode is slow): compare their IoU with each other, not with the full runs.",
        "",
        "| tracker | mode | frames | fps | mean IoU |",
        "|---|---|---:|---:|---:|",
    ]
    for label, r in results.items():
        name, mode = label.split()
        md.append(f"| {name} | {mode} | {r['frames']} | {r['fps']:.1f} | {r['mean_iou']:.3f} |")
    md += ["", "Frame 1 (median over sequences of the median of "
           f"{args.repeats} inits; samples, the start, box regression and memory included):", "",
           "| start | frame-1 time |", "|---|---:|"]
    for label, r in frame1.items():
        md.append(f"| {label} | {r['median_seconds'] * 1000:.0f} ms |")
    md += ["", f"The meta-learned start needs {speedup:.1f}x less time at frame 1 than "
           f"{f1_iters} iterations of MDNet fine-tuning. Fast mode: {data['target_reading']}.", ""]
    md += crest_markdown(crest)
    if real:
        md += real_markdown(real, args.threads)
    if args.no_save:
        print("\n".join(md))
        return
    paths = save("tracker_speed", data, "\n".join(md))
    print("wrote", *paths)


if __name__ == "__main__":
    main()
