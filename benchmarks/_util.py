"""Shared plumbing of the benchmark scripts: timing, machine facts, JSON + markdown output."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Callable

from tracker.api import variants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DOCS = os.path.join(ROOT, "docs")
# the shipped variants of each family (weights/<name>.pt), as the benchmarks report them: the registry's
SDNET_VARIANTS = variants("metasdnet")
CREST_VARIANTS = variants("metacrest")


def machine() -> dict:
    import numpy
    import torch

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "numpy": numpy.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def time_repeats(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls (report the median, never a single run)."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def relative(path: str) -> str:
    """``path`` relative to the repository root (what committed JSON and docs record)."""
    return os.path.relpath(os.path.abspath(path), ROOT)


def save(name: str, data: dict, markdown: str) -> tuple[str, str]:
    """Write ``benchmarks/results/<name>.json`` and ``docs/<name>.md`` (atomically)."""
    from foundation.fileio import atomic_write_text

    json_path = os.path.join(RESULTS, f"{name}.json")
    md_path = os.path.join(DOCS, f"{name}.md")
    atomic_write_text(json_path, json.dumps(data, indent=2))
    atomic_write_text(md_path, markdown)
    return json_path, md_path


def first_frame_gamma(trk, dataset) -> tuple[dict[str, list[float]], list[list[float]]] | None:
    """An L2F tracker's gamma per adapted tensor on every sequence's first frame, and g_phi's input
    there (empty lists for a tracker that does not keep it); None for a tracker without L2F."""
    from foundation.images import read_bgr

    gamma: dict[str, list[float]] = {}
    embeddings = []
    for seq in dataset:
        trk.init(read_bgr(seq.img_files[0]), seq.anno[0])
        if trk.gamma is None:
            return None
        for n, g in trk.gamma.items():
            gamma.setdefault(n, []).append(float(g))
        embeddings.append(list(getattr(trk, "l2f_embedding", None) or []))
    return gamma, embeddings
