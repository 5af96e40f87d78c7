"""Rewrite the shipped weights in the current layout without touching a tensor.

    python weights/migrate_metadata.py

Each ``weights/*.pt`` is loaded by its family's reader and saved again, so the file gains what
the current layout records (``family``, the ``adapted`` tensors) and its metadata's data paths
become relative to the repository root (metatrack 0.1 wrote absolute ones). The original date,
command and training settings are kept; a line per file says what changed.
"""
from __future__ import annotations

import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _relative(path):
    if isinstance(path, str) and os.path.isabs(path):
        return os.path.relpath(path, ROOT)
    return path


def main() -> None:
    from tracker.api import family_of_weights

    for path in sorted(glob.glob(os.path.join(ROOT, "weights", "*.pt"))):
        fam = family_of_weights(path)
        family, load, save = fam.name, fam.load("read_weights"), fam.load("write_weights")
        w = load(path)
        data = dict(w.metadata.get("data") or {})
        changed = {k: (v, _relative(v)) for k, v in data.items() if _relative(v) != v}
        w.metadata["data"] = {k: _relative(v) for k, v in data.items()}
        save(path, w)
        print(f"{os.path.relpath(path, ROOT)}: {family}, adapts {len(w.adapted_names())} tensors"
              + "".join(f"; {k}: {a} -> {b}" for k, (a, b) in changed.items()))


if __name__ == "__main__":
    main()
