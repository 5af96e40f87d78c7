"""The prepared GPU check: what a lent GPU machine must show, in one short run (under 8 minutes).

1. the tests marked ``cuda`` (``pytest -m cuda``): CPU/GPU agreement of trackers and engine;
2. tracking speed on the GPU: ``metatrack eval --device cuda`` of metasdnet and metacrest on
   synthetic test sequences, fps = frames / tracker time (frame 1 included), and the mean IoU
   between the GPU boxes and the CPU boxes of the same run;
3. a short MetaSDNet meta-training (small model) and a short glyph classification run
   (5-way 1-shot, 4-conv) on the GPU, seconds per iteration, against the same on the CPU.

Writes ``benchmarks/results/gpu_check.json``; ``python benchmarks/scaling.py --report-only`` then
puts it into docs/results/scaling.md. ``--device cpu`` runs the same steps on the CPU (to try the script).

    bash benchmarks/gpu_check.sh          # = python benchmarks/gpu_check.py --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
from _util import RESULTS, ROOT, machine, write_json


def _run(cmd: list[str], timeout: float) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
        return proc.returncode, proc.stdout, time.perf_counter() - t0
    except subprocess.TimeoutExpired as exc:
        return 124, str(exc.stdout or ""), time.perf_counter() - t0


def cuda_tests(timeout: float) -> dict[str, Any]:
    rc, out, seconds = _run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"], timeout)
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|deselected)", out)}
    return {"returncode": rc, "counts": counts, "seconds": round(seconds, 1), "tail": out.strip().splitlines()[-3:]}


def _boxes(folder: str) -> dict[str, np.ndarray]:
    return {f[:-4]: np.loadtxt(os.path.join(folder, f), delimiter=",", ndmin=2)
            for f in sorted(os.listdir(folder)) if f.endswith(".txt")}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


def tracking(work: str, device: str, sequences: int, timeout: float) -> dict[str, Any]:
    data = os.path.join(work, "test")
    _run(["metatrack", "synth", data, "--sequences", str(sequences), "--no-progress"], timeout)
    out: dict[str, Any] = {}
    for name in ("metasdnet", "metacrest"):
        per = {}
        for dev in dict.fromkeys([device, "cpu"]):
            res = os.path.join(work, f"res-{dev.replace(':', '')}")
            rc, log, _ = _run(["metatrack", "eval", "--trackers", name, "--dataset", data, "--results", res,
                               "--device", dev, "--no-progress"], timeout)
            if rc != 0:
                per[dev] = {"returncode": rc, "tail": log.strip().splitlines()[-3:]}
                continue
            folder = os.path.join(res, name)
            frames = sum(len(b) for b in _boxes(folder).values())
            seconds = sum(float(np.loadtxt(os.path.join(folder, "times", f)).sum())
                          for f in os.listdir(os.path.join(folder, "times")))
            per[dev] = {"fps": round(frames / seconds, 1), "frames": frames, "folder": folder}
        if all("folder" in v for v in per.values()) and device != "cpu":
            a, b = _boxes(per[device]["folder"]), _boxes(per["cpu"]["folder"])
            per["mean_iou_gpu_vs_cpu"] = round(float(np.mean(np.concatenate([_iou(a[k], b[k]) for k in a]))), 4)
        for v in per.values():
            if isinstance(v, dict):
                v.pop("folder", None)
        out[name] = per
    return out


def training(work: str, device: str, timeout: float) -> dict[str, Any]:
    train = os.path.join(work, "train")
    _run(["metatrack", "synth", train, "--split", "train", "--sequences", "6", "--frames", "30:40",
          "--no-progress"], timeout)
    jobs = {
        "meta-train metasdnet (small model), 30 iterations, meta-batch 8": lambda dev, out: [
            "metatrack", "meta-train", "--tracker", "metasdnet", "--dataset", train, "--iterations", "30",
            "--meta-batch", "8", "--no-progress", "--device", dev, "--out", out + ".pt"],
        "metalearn classification glyphs 5-way 1-shot conv4, 30 iterations": lambda dev, out: [
            "metalearn", "classification", "--dataset", "glyphs", "--ways", "5", "--shots", "1",
            "--iterations", "30", "--eval-tasks", "20", "--val-every", "1000", "--quiet", "--device", dev,
            "--out", out],
    }
    result: dict[str, Any] = {}
    for label, make in jobs.items():
        per = {}
        for dev in dict.fromkeys([device, "cpu"]):
            rc, log, seconds = _run(make(dev, os.path.join(work, re.sub(r"\W+", "_", label) + dev.replace(":", ""))),
                                    timeout)
            per[dev] = {"returncode": rc, "seconds": round(seconds, 1)}
            if rc != 0:
                per[dev]["tail"] = log.strip().splitlines()[-3:]
        result[label] = per
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="device to check (default cuda)")
    p.add_argument("--sequences", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds any one command may take")
    p.add_argument("--out", default=os.path.join(RESULTS, "gpu_check.json"))
    args = p.parse_args(argv)
    import torch

    info: dict[str, Any] = {"machine": machine(), "device_requested": args.device,
                            "cuda_available": torch.cuda.is_available(),
                            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    t0 = time.perf_counter()
    steps = {"cuda_tests": lambda work: cuda_tests(2.5 * args.timeout),
             "tracking": lambda work: tracking(work, args.device, args.sequences, args.timeout),
             "training": lambda work: training(work, args.device, args.timeout)}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        for key, step in steps.items():   # the JSON after every step: a time-out keeps what was measured
            info[key] = step(work)
            info["seconds"] = round(time.perf_counter() - t0, 1)
            write_json(args.out, info, indent=1)
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
