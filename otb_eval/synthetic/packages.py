"""The Debian packages whose images feed ``metatrack synth --objects/--backgrounds``.

Installed offline with ``apt-get install tuxpaint-stamps-default mate-backgrounds``; see
docs/synthetic.md for what each holds and its licence. :func:`used_packages` gives
``{package: version}`` (``dpkg-query -W``) for the folders a benchmark used, for the weights
recipes' metadata; ``python -m otb_eval.synthetic.packages DIR ...`` prints it as JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

__all__ = ["PACKAGE_ROOTS", "TUXPAINT_KEEP", "TUXPAINT_SKIP", "keep_stamp", "installed_versions",
           "used_packages", "benchmark_sources"]

# Where each package puts the images we use (split keys are relative to these roots).
PACKAGE_ROOTS = {
    "tuxpaint-stamps-default": "/usr/share/tuxpaint/stamps",
    "mate-backgrounds": "/usr/share/backgrounds/mate",
}

# Tux Paint stamp folders that hold photographs (or photo-real renders) of real objects, chosen
# by looking at contact sheets of every folder (2022.06.04-1). Left out: symbols/ (alphabets,
# signs, coins, chess), clothes/ and people/ (line drawings), seasonal/ and town/ (mostly
# drawings: cards, dreidels, road signs, cartoon houses), naturalforces/ (fire, smoke: no
# silhouette), medical/ (a drawn tooth among few), food/ itself (a drawn pizza), and every
# ``cartoon`` or ``toys`` sub-folder anywhere.
TUXPAINT_KEEP = (
    "animals/", "food/fruit/", "food/nuts/", "food/spices/", "food/vegetables/", "plants/",
    "household/", "hobbies/", "military/", "space/", "sports/", "vehicles/",
)
TUXPAINT_SKIP_FOLDERS = ("cartoon", "toys")
# Single drawings inside kept folders.
TUXPAINT_SKIP = ("animals/mammals/hedgehog.png", "animals/mammals/echidna.png")


def keep_stamp(rel: str) -> bool:
    """Whether the stamp at ``rel`` (relative to the stamps folder) is a photograph we use."""
    rel = rel.replace(os.sep, "/")
    parts = rel.split("/")[:-1]
    return (rel.startswith(TUXPAINT_KEEP) and rel not in TUXPAINT_SKIP
            and not any(p in TUXPAINT_SKIP_FOLDERS for p in parts))


def installed_versions(packages) -> dict:
    """``{package: version}`` of the installed ``packages`` (absent ones and no dpkg: left out)."""
    out = {}
    for package in packages:
        try:
            res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                                 text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if res.returncode == 0 and res.stdout.strip():
            out[package] = res.stdout.strip()
    return out


def used_packages(folders) -> dict:
    """``{package: version}`` of the packages that own images under any of ``folders``."""
    wanted = []
    for folder in folders:
        real = os.path.realpath(folder)
        for package, root in PACKAGE_ROOTS.items():
            root = os.path.realpath(root)
            if real == root or real.startswith(root + os.sep) or root.startswith(real + os.sep):
                wanted.append(package)
    return installed_versions(sorted(set(wanted)))


def benchmark_sources(folder: str) -> dict:
    """What the synthetic sequences under ``folder`` were made from, for weights metadata: each
    profile and image source (folder, usable files, content hash, packages with versions) found in
    their ``attributes.json``, once each; ``{}`` for a folder that is not a synthetic benchmark."""
    profiles, sources = set(), {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name, "attributes.json")
        try:
            with open(path, encoding="utf-8-sig") as f:
                generator = json.load(f).get("generator") or {}
        except (OSError, ValueError, AttributeError):
            continue
        profiles.add(str(generator.get("profile", "default")))
        for kind in ("objects", "backgrounds"):
            if isinstance(generator.get(kind), dict):
                info = generator[kind]
                sources.setdefault(kind, {k: info.get(k) for k in ("folder", "files", "sha256", "packages")})
    return {"profiles": sorted(profiles), **sources} if profiles else {}


if __name__ == "__main__":  # pragma: no cover - a helper for the recipes
    print(json.dumps(used_packages(sys.argv[1:] or list(PACKAGE_ROOTS.values())), indent=1))
