"""Which frozen backbone should MetaCREST read? ``crest`` (the target model trained at frame 1,
so no meta-training is needed to compare features) on the VALIDATION split with each backbone.

Rows: the shipped backbone (MetaSDNet conv1-conv2 trained here, stride 4) and EfficientNet-Lite0's
ImageNet features after a number of blocks, at stride 4 or 8 (a trous). Every backbone's features
are scaled to unit RMS on windows of the validation split's first frames; targets are normalised to
``--target-px`` pixels as in the shipped weights. fps: frames / total time, 2 sequences side by
side (one torch thread each). Never run on the test split.

    python benchmarks/crest_backbone.py [--dataset benchmarks/.data/synth-val-20] [--workers 2]

Writes benchmarks/results/crest_backbone.json and docs/results/crest_backbone.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings

from _util import DATA, machine, relative, save

# label -> (blocks, dilate_from); None: the shipped MetaCREST backbone
BACKBONES = {"shipped (sdnet conv2, s4)": None,
             "effnet b3 (24 ch, s4)": (3, None),
             "effnet b4 (40 ch, s4)": (4, 3),
             "effnet b5 (40 ch, s4)": (5, 3),
             "effnet b5 (40 ch, s8)": (5, None),
             "effnet b8 (80 ch, s8)": (8, 5),
             "effnet b11 (112 ch, s8)": (11, 5)}


def crest_weights(blocks_dilate, dataset, target_px: float):
    """CRESTWeights on an EfficientNet backbone calibrated on the split's first-frame windows (the
    start is a placeholder: ``crest`` trains its own at frame 1)."""
    import numpy as np
    import torch

    from foundation.images import read_bgr, to_rgb
    from tracker.crest.backbone import Backbone
    from tracker.crest.dcf import init_params
    from tracker.crest.weights import CRESTWeights
    from tracker.crest.window import WindowGeometry, crop_windows

    bb = Backbone.efficientnet(*blocks_dilate)
    patches = []
    for seq in dataset:
        box = np.asarray(seq.anno[0], float)
        g = WindowGeometry.for_box(box[2:], bb, 5.0, target_px, target_px)
        patches.append(crop_windows(to_rgb(read_bgr(seq.img_files[0])), box[:2] + box[2:] / 2,
                                    [g.frame_side(box[2:])], g.window, g.border))
    bb.calibrate(np.concatenate(patches))
    start = init_params(bb.out_channels, (5, 5), generator=torch.Generator().manual_seed(0))
    return CRESTWeights(backbone=bb, params=start, alpha=None, trained=True,
                        options={"max_target_px": target_px, "min_target_px": target_px, "update_lr": 1e-4})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=os.path.join(DATA, "synth-val-20"),
                        help="OTB-format folder (default: `metatrack synth benchmarks/.data/synth-val-20 "
                             "--sequences 20 --split val --seed 0`)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--target-px", type=float, default=32.0)
    parser.add_argument("--only", default="", help="comma list of row labels' prefixes to run (printed, "
                                                   "not saved: the committed table is one whole run)")
    args = parser.parse_args()

    from otb_eval.datasets import OTBDataset
    from otb_eval.experiment import run_ope
    from otb_eval.report import evaluate
    from tracker.api import factory

    if not os.path.isdir(args.dataset):
        sys.exit(f"crest_backbone: no dataset {args.dataset} (make it with `metatrack synth "
                 f"{args.dataset} --sequences 20 --split val --seed 0`)")
    warnings.simplefilter("ignore")
    dataset = OTBDataset(args.dataset)
    results = os.path.join(DATA, "results-crest-backbone")
    shutil.rmtree(results, ignore_errors=True)        # every number from this run
    rows, names = {}, {}
    wanted = [p.strip() for p in args.only.split(",") if p.strip()]
    for i, (label, spec) in enumerate(BACKBONES.items()):
        if wanted and not any(label.startswith(w) for w in wanted):
            continue
        name = f"crest-bb{i}"
        names[label] = name
        extra = {} if spec is None else {"weights": crest_weights(spec, dataset, args.target_px)}
        run_ope(factory("crest", **extra), dataset, results, name=name, workers=args.workers)
    perf = evaluate(dataset, results, list(names.values()))
    for label, name in names.items():
        o = perf[name]["overall"]
        rows[label] = {"auc": o["success_score"], "precision_20px": o["precision_score"],
                       "success_rate_0.5": o["success_rate"], "fps": o["fps"]}
    out = {"dataset": {"path": relative(args.dataset), "sequences": len(dataset)},
           "target_px": args.target_px, "rows": rows, "machine": machine()}
    lines = ["# MetaCREST's backbone: shipped features against EfficientNet-Lite0's ImageNet features", "",
             f"Generated by `python benchmarks/crest_backbone.py --target-px {args.target_px:g}`: `crest` (target model "
             f"trained at frame 1) on the validation split ({len(dataset)} sequences); raw numbers in "
             "`benchmarks/results/crest_backbone.json`. Features scaled to unit RMS; s = stride in pixels. "
             "fps: frames / total time with 2 sequences side by side on 2 shared cores.", "",
             "| backbone | AUC | precision@20px | success@0.5 | fps |", "|---|---|---|---|---|"]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['auc']:.3f} | {r['precision_20px']:.3f} | "
                     f"{r['success_rate_0.5']:.3f} | {r['fps']:.1f} |")
    md = "\n".join(lines) + "\n"
    print(md)
    if not wanted:
        print("wrote", *save("crest_backbone", out, md))


if __name__ == "__main__":
    main()
