"""``metatrack meta-train``: learn a tracker's start, its element-wise rates and (optionally) L2F."""
from __future__ import annotations

import argparse

from ._common import add_device_arg, resolve_device_arg

L2F_MODES, L2F_INPUTS = ("sigmoid", "identity"), ("normalized", "mean")  # meta_learning.l2f's (same reason)
KEEP_CHOICES = ("last", "best")   # tracker.metatrain.config's, which imports torch (same reason)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "meta-train", help="meta-train a tracker (start + rates, optionally L2F and DropGrad)",
        description="Meta-train a tracker's start theta0 and element-wise learning rates alpha on "
                    "episodes from training videos (support frame t, query frame t+U{1..10}), "
                    "optionally with the L2F attenuator and DropGrad, all through the meta_learning "
                    "engine: MetaSDNet (all or fc layers, label shuffling) or MetaCREST (the "
                    "correlation-filter target model on a frozen backbone). Writes tracker weights "
                    "to --out, a resumable checkpoint to OUT.ckpt and the losses to OUT.csv. "
                    "Defaults are the family's reference values (MetaSDNet: 15000 iterations, lr "
                    "1e-4 / 1e-5; MetaCREST: 10000 iterations, lr 1e-6 / 1e-6, alpha from 1e-6).")
    from ..api import families

    fams = families()
    p.add_argument("--tracker", default=fams[0].name, choices=[f.name for f in fams],
                   help=f"tracker family to meta-train (default {fams[0].name})")
    p.add_argument("--dataset", required=True, metavar="DIR", help="training videos")
    p.add_argument("--format", default="otb", choices=["otb", "vid", "got10k"],
                   help="layout of --dataset: OTB-format folders (default; e.g. `metatrack synth "
                        "--split train`), ImageNet VID (Data/ + Annotations/), or GOT-10k")
    p.add_argument("--val-dataset", metavar="DIR", help="OTB-format validation videos (query loss "
                                                        "logged at every checkpoint)")
    p.add_argument("--iterations", type=int, help="meta-updates (default 15000 / 10000)")
    p.add_argument("--meta-batch", type=int, default=8, help="episodes per meta-update (default 8)")
    p.add_argument("--lr-start", type=float, help="Adam lr of theta0 (default 1e-4 / 1e-6)")
    p.add_argument("--lr-alpha", type=float, help="Adam lr of the rates (default 1e-5 / 1e-6)")
    p.add_argument("--alpha-init", type=float, help="initial element-wise rate (default 1e-4 / 1e-6)")
    p.add_argument("--lr-attenuator", type=float, default=1e-3, help="Adam lr of g_phi (default 1e-3)")
    p.add_argument("--l2f", action="store_true",
                   help="learn the L2F attenuator g_phi, by default with the shipped recipe's settings "
                        "(meta_learning.l2f.L2FSettings: sigmoid, normalized)")
    p.add_argument("--l2f-mode", choices=L2F_MODES,
                   help="override gamma's form: sigmoid (default, the paper's) or identity (gamma = "
                        "clamp(1 - |s| g, 0, 1) with s from 0, so the start is untouched at first)")
    p.add_argument("--l2f-input", choices=L2F_INPUTS,
                   help="override g_phi's task embedding: normalized (default; per tensor: mean / mean "
                        "|g| and log mean |g|, scale-free) or mean (the paper's per-tensor mean gradient)")
    p.add_argument("--dropgrad", choices=["binary", "gaussian"], help="gradient dropout in the inner step")
    p.add_argument("--dropgrad-rate", type=float, default=0.1, help="DropGrad rate p (default 0.1)")
    p.add_argument("--init", metavar="FILE", help="starting weights: our .pt, an official Meta-Tracker "
                                                  "checkpoint or imagenet-vgg-m.mat (MetaCREST: our "
                                                  ".pt or an official MetaCREST checkpoint with "
                                                  "--backbone)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="processes reading episodes (default 0)")
    p.add_argument("--feature-cache", metavar="DIR",
                   help="keep features on disk so runs from the same start (e.g. the four variants) "
                        "compute them once (MetaSDNet: with --adapt fc; MetaCREST: per-frame windows, "
                        "query windows shifted by whole cells)")
    p.add_argument("--checkpoint-every", type=int, default=50, metavar="N")
    p.add_argument("--keep", choices=KEEP_CHOICES, default="last",
                   help="the start OUT holds: the last iteration's (default) or the one with the lowest "
                        "validation loss (best; needs --val-dataset, validated at every checkpoint); "
                        "OUT.ckpt always holds the last, to resume from")
    p.add_argument("--out", required=True, metavar="FILE", help="weights file to write (.pt)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    p.add_argument("--no-progress", action="store_true")
    add_device_arg(p)
    own = {}   # each family's own flags, in a group of their own: (dest, flag, default)
    for fam in fams:
        group = p.add_argument_group(f"{fam.title} only")
        fam.add_meta_train_args(group)
        own[fam.name] = [(a.dest, a.option_strings[0], a.default) for a in group._group_actions]
    p.set_defaults(func=run, family_flags=own)


def l2f_settings(args: argparse.Namespace):
    """``--l2f``: :class:`meta_learning.l2f.L2FSettings` (the one default) with the flags'
    overrides; None without it, where an override would be silently ignored and is refused."""
    from foundation.errors import UserError
    from meta_learning.l2f import L2FSettings

    given = {k: v for k, v in (("mode", args.l2f_mode), ("input", args.l2f_input)) if v is not None}
    if not args.l2f:
        if given:
            raise UserError(f"{', '.join('--l2f-' + k for k in given)}: only with --l2f")
        return None
    return L2FSettings(**given)


def run(args: argparse.Namespace) -> int:
    import os

    from foundation.distributed import close_world, init_world
    from foundation.errors import UserError
    from foundation.fileio import ensure_writable_file

    from ..api import family
    from ..metatrain.loop import check_keep
    from ..metatrain.sources import load_tracks

    device = resolve_device_arg(args)
    if args.resume and not os.path.isfile(args.out + ".ckpt"):
        raise UserError(f"--resume: no checkpoint {args.out}.ckpt to continue from")
    given = {k: v for k, v in (("iterations", args.iterations), ("lr_start", args.lr_start),
                               ("lr_alpha", args.lr_alpha), ("alpha_init", args.alpha_init)) if v is not None}
    common = dict(meta_batch=args.meta_batch, l2f=l2f_settings(args), lr_attenuator=args.lr_attenuator,
                  dropgrad=args.dropgrad,
                  dropgrad_rate=args.dropgrad_rate,
                  seed=args.seed, workers=args.workers, feature_cache=args.feature_cache,
                  checkpoint_every=args.checkpoint_every, keep=args.keep, **given)
    fam = family(args.tracker)
    # an option of another family would be silently ignored: refuse it instead
    foreign = [flag for name, own in args.family_flags.items() if name != fam.name
               for dest, flag, default in own if getattr(args, dest) != default]
    if foreign:
        raise UserError(f"{', '.join(foreign)}: not an option of --tracker {args.tracker}")
    # every setting and the output are checked before the data is read and training starts
    config = fam.load("train_config")(**fam.meta_train_settings(args), **common).validate()
    if args.init is not None and not os.path.isfile(args.init):
        raise UserError(f"--init {args.init} does not exist")
    fam.check_meta_train(args)
    check_keep(config.keep, bool(args.val_dataset))
    ensure_writable_file(args.out, "--out")
    world = init_world(device)   # torchrun: one process per device, each with its share of the meta-batch
    tracks = load_tracks(args.dataset, args.format)
    val = load_tracks(args.val_dataset, "otb") if args.val_dataset else None
    # paths as the user typed them: weights must not carry this machine's folders
    from foundation.devices import describe_device

    # the device says how far the weights are reproducible (bit for bit on the CPU; docs/tracker.md)
    from otb_eval.synthetic.packages import benchmark_sources

    metadata = {"data": {"dataset": args.dataset, "format": args.format,
                         "tracks": len(tracks), "val_dataset": args.val_dataset,
                         "sources": benchmark_sources(args.dataset)},   # images, packages, profile
                "device": describe_device(device)}
    result = fam.load("train")(tracks, config, args.out, resume=args.resume, val_tracks=val, init=args.init,
                               progress=not args.no_progress, metadata=metadata, device=device,
                               world=world, **fam.meta_train_inputs(args))
    close_world(world)
    if not world.is_main:   # rank 0 wrote the files and reports them
        return 0
    ranks = f" on {world.size} processes" if world.distributed else ""
    print(f"meta-trained {result.iterations} iterations{ranks} in {result.seconds:.0f} s "
          f"(last query loss {result.last_query_loss:.3f}); weights: {result.weights}; "
          f"log: {result.weights}.csv; checkpoint: {result.checkpoint}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} iteration(s) with non-finite values: "
              f"{result.skipped[:10]}{' ...' if len(result.skipped) > 10 else ''}")
    return 0
