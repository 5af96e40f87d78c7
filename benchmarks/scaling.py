"""One process against two under torchrun, on this machine's CPUs: what ``--nproc_per_node`` buys.

Three jobs, each run as a user types it (the public commands, in fresh processes, one torch thread
per process so that two processes use the two cores that one process with two threads would):

- ``metalearn regression`` meta-training (sinusoid, MAML), the engine's all-reduce;
- ``metatrack meta-train`` (MetaSDNet, the tiny model on synthetic sequences), the tracker loop;
- ``metatrack eval`` (metasdnet on synthetic test sequences), sequences sharded over the ranks,
  against one process with ``--workers 2`` (the process pool) and one with ``--workers 1``.

For every job the script also checks that the two-process outputs equal the one-process ones
(weights to 1e-5, result files byte for byte). Times are the medians of ``--repeats`` runs; the
speed-up is a ratio of medians measured in the same run. GPU figures come from
``benchmarks/gpu_check.sh`` (``benchmarks/results/gpu_check.json``) and are shown when present.

    python benchmarks/scaling.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from _util import load_json, machine, median, save

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--no-python"]


def _env(threads: int) -> dict:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def _shown(cmd: list[str]) -> str:
    """The command as a user types it (``torchrun`` for the module form; data in ``WORK``)."""
    if cmd[:len(TORCHRUN)] == TORCHRUN:
        cmd = ["torchrun"] + cmd[3:]
    return re.sub(r"\S*scaling-[^/\s]+", "WORK", " ".join(cmd).replace("{OUT}", "OUT"))


def _run(cmd: list[str], threads: int = 1) -> float:
    """Wall-clock seconds of one command (it must succeed)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(threads), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}")
    return seconds


def _weights_close(a: str, b: str, key: str) -> float:
    """Largest absolute difference between the tensors of two checkpoints' ``key`` state."""
    import torch

    def tensors(path: str) -> dict:
        obj = torch.load(path, map_location="cpu", weights_only=False)
        for part in key.split("."):
            obj = obj[part]
        return obj
    ta, tb = tensors(a), tensors(b)
    return max(float((ta[k].double() - tb[k].double()).abs().max()) for k in ta if ta[k].is_floating_point())


def _timed(setups: dict[str, tuple[list[str], int]], make_out, repeats: int) -> dict[str, Any]:
    """Median seconds of each setup; ``make_out(setup, repeat)`` -> a fresh output path."""
    out: dict[str, Any] = {}
    for name, (cmd, threads) in setups.items():
        times = []
        for r in range(repeats):
            target = make_out(name, r)
            times.append(_run([c.replace("{OUT}", target) for c in cmd], threads))
        out[name] = {"seconds": times, "median": median(times), "command": _shown(cmd),
                     "torch_threads_per_process": threads}
    return out


def regression(work: str, repeats: int, iterations: int) -> dict[str, Any]:
    base = ["metalearn", "regression", "--shots", "10", "--iterations", str(iterations), "--meta-batch", "32",
            "--eval-tasks", "50", "--no-plot", "--out", "{OUT}", "--no-resume", "--device", "cpu"]
    setups = {"1 process, 1 thread": (base, 1), "1 process, 2 threads": (base, 2),
              "2 processes (torchrun), 1 thread each": (TORCHRUN + base, 1)}
    res = _timed(setups, lambda s, r: os.path.join(work, "reg", s.replace(" ", "_"), str(r)), repeats)
    a = os.path.join(work, "reg", "1_process,_1_thread", "0", "checkpoint.pt")
    b = os.path.join(work, "reg", "2_processes_(torchrun),_1_thread_each", "0", "checkpoint.pt")
    return {"job": f"metalearn regression, {iterations} meta-iterations, meta-batch 32", "name": "metalearn regression",
            "setups": res,
            "max_weight_difference": _weights_close(a, b, "learner.learner")}


def meta_train(work: str, repeats: int, iterations: int) -> dict[str, Any]:
    data = os.path.join(work, "train_seqs")
    _run(["metatrack", "synth", data, "--split", "train", "--sequences", "6", "--frames", "20:30",
          "--size", "160x120", "--no-progress"])
    base = ["metatrack", "meta-train", "--tracker", "metasdnet", "--model", "tiny", "--dataset", data,
            "--iterations", str(iterations), "--meta-batch", "4", "--checkpoint-every", str(iterations),
            "--no-progress", "--device", "cpu", "--out", "{OUT}"]
    setups = {"1 process, 1 thread": (base, 1), "1 process, 2 threads": (base, 2),
              "2 processes (torchrun), 1 thread each": (TORCHRUN + base, 1)}
    res = _timed(setups, lambda s, r: os.path.join(work, "mt", s.replace(" ", "_"), f"{r}.pt"), repeats)
    a = os.path.join(work, "mt", "1_process,_1_thread", "0.pt.ckpt")
    b = os.path.join(work, "mt", "2_processes_(torchrun),_1_thread_each", "0.pt.ckpt")
    return {"job": f"metatrack meta-train (MetaSDNet, tiny model), {iterations} iterations, meta-batch 4",
            "name": "metatrack meta-train",
            "setups": res, "max_weight_difference": _weights_close(a, b, "state.learner.learner")}


def evaluate(work: str, repeats: int, sequences: int) -> dict[str, Any]:
    data = os.path.join(work, "test_seqs")
    _run(["metatrack", "synth", data, "--split", "test", "--sequences", str(sequences), "--no-progress"])
    base = ["metatrack", "eval", "--trackers", "metasdnet", "--dataset", data, "--results", "{OUT}",
            "--no-progress", "--device", "cpu"]
    setups = {"1 process, 1 thread": (base, 1), "1 process, 2 threads": (base, 2),
              "1 process, --workers 2": (base + ["--workers", "2"], 1),
              "2 processes (torchrun), 1 thread each": (TORCHRUN + base, 1)}
    res = _timed(setups, lambda s, r: os.path.join(work, "ev", s.replace(" ", "_"), str(r)), repeats)
    a = os.path.join(work, "ev", "1_process,_1_thread", "0", "metasdnet")
    b = os.path.join(work, "ev", "2_processes_(torchrun),_1_thread_each", "0", "metasdnet")
    same = all(open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read()
               for f in os.listdir(a) if f.endswith(".txt"))
    return {"job": f"metatrack eval (metasdnet) on {sequences} synthetic test sequences", "name": "metatrack eval",
            "setups": res,
            "identical_results": same}


def markdown(data: dict[str, Any]) -> str:
    lines = ["# Scaling: devices and many processes", "",
             "Generated by `python benchmarks/scaling.py` (numbers in `benchmarks/results/scaling.json`); the GPU "
             "section by `benchmarks/gpu_check.sh`. Do not edit by hand.", "",
             "## Commands", "",
             "Every command takes `--device auto|cpu|cuda|cuda:N` (`auto`: CUDA when available). The same "
             "commands run on N processes under torchrun, which splits each meta-batch's tasks (or the "
             "evaluation's sequences) over the ranks; rank 0 writes every file:", "",
             "```bash",
             "# one machine with N GPUs (one process per GPU, nccl)",
             "torchrun --standalone --nproc_per_node=N --no-python metatrack meta-train --device cuda ...",
             "torchrun --standalone --nproc_per_node=N --no-python metalearn classification --device cuda ...",
             "torchrun --standalone --nproc_per_node=N --no-python metatrack eval --device cuda ...",
             "# several machines: the same command on each, with torchrun's rendezvous",
             "torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\",
             "    --no-python metatrack meta-train --device cuda ...",
             "# CPU processes (gloo)",
             "torchrun --standalone --nproc_per_node=2 --no-python metatrack meta-train --device cpu ...",
             "```", "",
             "`--meta-batch` is the total over all processes, so N processes compute what one process "
             "computes (to float round-off in the all-reduce): `tests/test_distributed.py` checks the weights "
             "to 1e-5 and the evaluation's result files byte for byte.", "",
             "## Two processes on this machine's CPUs", "",
             f"Machine: {data['machine']['cpus']} CPUs, torch {data['machine']['torch']}; medians of "
             f"{data['repeats']} runs of each command, start-up included (a fresh process each time).", ""]
    for job in data["jobs"]:
        setups = job["setups"]
        ref = setups["1 process, 1 thread"]["median"]
        lines += [f"**{job['job']}**", "", "| setup | median s | speed-up vs 1 process, 1 thread |", "|---|---|---|"]
        for name, s in setups.items():
            lines.append(f"| {name} | {s['median']:.1f} | {ref / s['median']:.2f}x |")
        if "max_weight_difference" in job:
            lines += ["", f"Two processes against one: largest weight difference "
                          f"{job['max_weight_difference']:.1e} (float round-off of the all-reduce, which "
                          "Adam carries forward from step to step; the tests check 1e-5 after a few steps)."]
        if "identical_results" in job:
            lines += ["", "Two processes against one: result files "
                          + ("identical." if job["identical_results"] else "DIFFERENT.")]
        lines.append("")
    lines += ["Reading: " + reading(data["jobs"]), "", "## GPU", ""]
    gpu = data.get("gpu")
    if gpu is None:
        lines += ["GPU figures have not been measured yet: no GPU machine has run `benchmarks/gpu_check.sh` "
                  "for this version. Everything above, and the whole test suite, runs without one.", ""]
    else:
        lines += [f"Measured by `benchmarks/gpu_check.sh` on {gpu.get('device', '?')} ({gpu.get('date', '?')}):", "",
                  "```json", json.dumps(gpu, indent=1), "```", ""]
    return "\n".join(lines)


def reading(jobs: list[dict[str, Any]]) -> str:
    """Each job's ratios and what they mean, from the numbers (no verdict written in advance)."""
    parts = []
    for job in jobs:
        s = job["setups"]
        two = s["1 process, 1 thread"]["median"] / s["2 processes (torchrun), 1 thread each"]["median"]
        threads = s["1 process, 1 thread"]["median"] / s["1 process, 2 threads"]["median"]
        pays = "pays" if two >= 1.1 else "does not pay"
        parts.append(f"{job['name']}: two processes {two:.2f}x, one process with two threads {threads:.2f}x "
                     f"(a second process {pays} here)")
    return ("; ".join(parts) + ". Where the work per step is small (sinusoid regression, the tiny tracker "
            "model) the second process's start-up (torchrun, imports, data) and the all-reduce of every "
            "iteration cost more than the halved meta-batch saves on two cores; evaluation, whose work "
            "per sequence is large and needs no communication, gains what `--workers 2` gains. torchrun "
            "is for many GPUs or machines, which these figures do not measure.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--regression-iterations", type=int, default=300)
    p.add_argument("--meta-train-iterations", type=int, default=20)
    p.add_argument("--eval-sequences", type=int, default=6)
    p.add_argument("--no-save", action="store_true", help="print the markdown instead of writing files")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite docs/results/scaling.md from the saved JSON and the latest gpu_check.json, measuring nothing")
    args = p.parse_args(argv)
    gpu = load_json("gpu_check")
    if args.report_only:
        data = load_json("scaling")
        data["gpu"] = gpu
        print("\n".join(save("scaling", data, markdown(data))))
        return 0
    work = tempfile.mkdtemp(prefix="scaling-")
    try:
        jobs = [regression(work, args.repeats, args.regression_iterations),
                meta_train(work, args.repeats, args.meta_train_iterations),
                evaluate(work, args.repeats, args.eval_sequences)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    data = {"machine": machine(), "repeats": args.repeats, "jobs": jobs, "gpu": gpu}
    if args.no_save:
        print(markdown(data))
    else:
        print("\n".join(save("scaling", data, markdown(data))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
