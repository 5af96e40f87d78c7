"""Shared plumbing of the benchmark scripts: timing, machine facts, JSON + markdown output."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DOCS = os.path.join(ROOT, "docs")


def machine() -> dict:
    import numpy
    import torch

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "numpy": numpy.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
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
