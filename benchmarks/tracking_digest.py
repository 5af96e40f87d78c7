"""Fingerprints of every tracker's boxes on the synthetic test split, to show a refactor changed none.

    python benchmarks/tracking_digest.py --out before.json [--sequences 25] [--seed 0] [--workers 2]
    python benchmarks/tracking_digest.py --out after.json --compare before.json

Runs the public commands only (``metatrack synth`` and ``metatrack eval``), so the same script
measures the code before and after a change of internals. The JSON maps each tracker to the
SHA-256 of each sequence's result file (boxes only; per-frame times differ between runs). With
``--compare`` it lists the trackers and sequences whose boxes differ and exits 1 if any do.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

from tracker.api import families, variants

# every family's four variants, then its plain start (metasdnet ... mdnet, metacrest ... crest)
TRACKERS = [n for fam in families() for n in variants(fam.name) + [fam.plain]] + ["mil", "identity"]


def digest(results: str, trackers: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name in trackers:
        folder = os.path.join(results, name)
        out[name] = {}
        for fname in sorted(os.listdir(folder)):
            if fname.endswith(".txt"):
                with open(os.path.join(folder, fname), "rb") as f:
                    out[name][fname[:-4]] = hashlib.sha256(f.read()).hexdigest()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--work", default=os.path.join("benchmarks", ".data", "digest"),
                        help="folder for the split and the results (default benchmarks/.data/digest)")
    parser.add_argument("--sequences", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trackers", default=",".join(TRACKERS))
    parser.add_argument("--compare", help="an earlier JSON of this script")
    args = parser.parse_args()

    trackers = args.trackers.split(",")
    data = os.path.join(args.work, f"synth-test-{args.sequences}-s{args.seed}")
    results = os.path.join(args.work, "results")
    subprocess.run(["metatrack", "synth", data, "--sequences", str(args.sequences),
                    "--seed", str(args.seed), "--split", "test"], check=True)
    subprocess.run(["metatrack", "eval", "--dataset", data, "--trackers", ",".join(trackers),
                    "--results", results, "--workers", str(args.workers), "--no-progress"],
                   check=True)
    fingerprints = digest(results, trackers)
    with open(args.out, "w") as f:
        json.dump({"sequences": args.sequences, "seed": args.seed, "boxes_sha256": fingerprints}, f,
                  indent=1)
    if not args.compare:
        return 0
    with open(args.compare) as f:
        before = json.load(f)["boxes_sha256"]
    changed = [f"{t}/{s}" for t in trackers for s in sorted(set(before.get(t, {})) | set(fingerprints[t]))
               if before.get(t, {}).get(s) != fingerprints[t].get(s)]
    total = sum(len(v) for v in fingerprints.values())
    print(f"{total - len(changed)} of {total} result files identical" +
          (f"; changed: {', '.join(changed)}" if changed else ""))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
