"""Time one second-order meta-update with our engine, with `higher`, and with plain
`torch.autograd.grad` loops - the same computation three ways, in one run.

Cases
- sinusoid: meta-batch 25 sinusoid tasks, 10 support + 10 query points, MLP 1-40-40-1,
  1 inner SGD step (lr 0.01), MSE, Adam 1e-3 outer step.
- conv: meta-batch 4 of 5-way 1-shot tasks, random 84x84 images, 15 query images per class,
  4-conv (48 filters, 3x3, batch norm with batch statistics, leaky ReLU, 2x2 max-pool) + linear,
  5 inner SGD steps (lr 0.01) on all parameters, cross-entropy, Adam 1e-3 outer step.

Implementations
- engine (vmap): ``MetaLearner.meta_batch_losses`` (torch.func.vmap over the meta-batch) + ``outer_step``.
- engine (loop): ``MetaLearner.task_loss`` (adapt + query loss) per task in a Python loop,
  ``backward_task`` after each task (frees its graph), then ``outer_step()``.
- higher: ``higher.innerloop_ctx`` with an inner SGD, per task, query loss backward, Adam step.
- autograd loop: ``functional_call`` + ``torch.autograd.grad(create_graph=True)`` per task.
In the conv case the engine rows run the repo's ``Conv4`` (the backbone ``metalearn classification``
trains; here 48 filters, slope 0.2), loaded with the initial weights of the torch layers that
``higher`` and the plain loop run; "higher on Conv4" (conv only) runs ``higher`` on that ``Conv4``.
Same result: before timing, one task's meta-gradient is computed by the engine loop and by
``higher`` from the same start in float64 (their largest relative difference is recorded) and in
float32 (each one's distance from the float64 result is recorded).

Timing: all implementations of a case are built in one process (one torch thread), warmed
up, then timed round-robin in a shuffled order each round, so a change of machine load hits all of
them alike; the median per implementation is reported.  Memory: each (case, implementation) runs
again in a fresh subprocess; after one warm-up update, a thread samples the resident set size
during two meta-updates; peak memory = peak RSS minus the RSS just before them (memory the
meta-update itself needs: graphs, activations, gradients).
Writes ``benchmarks/results/engine_speed.json`` and ``docs/results/engine_speed.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

from _util import PAGES, RESULTS, ROOT, write_json, write_page

NOTES = """
Reading: "engine (vmap)" is the right path for small models with equally shaped tasks (sinusoid:
one batched computation instead of 25 small ones); for convolutional networks on a CPU, batched
weights under `vmap` become grouped convolutions, which are slower and keep every task's graph
alive (and `Conv4` runs its plain layers under `vmap`), so use the loop there ("engine (loop)":
`task_loss` + `backward_task` per task, then `outer_step()`).

Where the conv speed comes from: the engine rows run the repo's `Conv4`, whose CPU forward computes
each batch norm -> LeakyReLU -> max-pool as one op on channels-last tensors
(`meta_learning/tasks/classification/fused.py`): batch statistics and pooling on the convolution's
output, normalisation of the pooled quarter only, and a written-out backward that stays
differentiable for the second-order terms. Same function and parameters, same inner steps, float32
throughout; `higher` and the plain loop run the standard torch layers (`nn.Conv2d`,
`nn.BatchNorm2d`, `nn.LeakyReLU`, `nn.MaxPool2d`, NCHW), which is the reference. The "higher on
Conv4" row shows that the gain is the backbone's: any autograd-based loop that runs `Conv4` gets it.
Its convolutions also have a leaner double backward (`fused.conv2d`: no input gradient for the
images; the second-order weight terms by oneDNN's weight-gradient kernel instead of torch's
convolution of batch/channel-transposed tensors).

Fresh buffers of the query's first-block size (75 x 48 x 84 x 84, 100 MB) are above the C
allocator's reuse threshold: each one is new memory from the system, and its page faults cost more
than the arithmetic written into it. The fused block's first-order backward therefore writes the
input's gradient over the convolution output it consumed (saved for it alone) instead of into a
fresh buffer: bit-identical gradients, less peak memory, and about 3% off the engine's update when
timed against the old path in one process (the 1.99x of the previous run of this script was
measured at load average 8; most of the step to 2.1x is the quieter machine). What limits the ratio now: more than
half of the engine's meta-update is convolution time (the same oneDNN kernels, at about the same
speed, in every row); most of the rest are memory-bound passes over the query's activations
(batch statistics, pooling and its int64 indices, the statistics' gradient).
Differences of a few percent between rows are within the run-to-run noise of this shared machine
(the per-round times are in the JSON); the sinusoid memory figures are below what RSS sampling resolves.
torch.compile was tried and is not used: a compiled forward cannot be differentiated twice (the
inner gradients' graph is lost), and an inner step written with `torch.func.grad` and compiled (then
differentiated once) took about a minute to compile and was about 1.2x faster than the eager torch
layers in a one-task trial, well short of the fused block.
"""
IMPLS = ["engine_vmap", "engine_loop", "higher", "autograd_loop", "higher_conv4"]
CASE_IMPLS = {"sinusoid": IMPLS[:4], "conv": IMPLS}
LABEL = {"engine_vmap": "engine (vmap)", "engine_loop": "engine (loop)", "higher": "higher 0.2.1",
         "autograd_loop": "plain autograd.grad loop", "higher_conv4": "higher 0.2.1 on Conv4"}


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def _sinusoid(quick: bool):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))
    t, k = 25, 10
    amp = 0.1 + 4.9 * torch.rand(t, 1, 1)
    ph = torch.pi * torch.rand(t, 1, 1)
    x = torch.rand(t, 2 * k, 1) * 10 - 5
    y = amp * torch.sin(x + ph)
    support, query = (x[:, :k], y[:, :k]), (x[:, k:], y[:, k:])
    crit = lambda p, y: ((p - y) ** 2).mean()
    return model, support, query, crit, 1


def _conv(quick: bool):
    import torch
    from torch import nn

    torch.manual_seed(0)
    ch, size = 48, (32 if quick else 84)
    layers: List[nn.Module] = []
    cin = 3
    for _ in range(4):
        layers += [nn.Conv2d(cin, ch, 3, padding=1, bias=False),
                   nn.BatchNorm2d(ch, track_running_stats=False), nn.LeakyReLU(0.2), nn.MaxPool2d(2)]
        cin = ch
    feat = ch * (size // 16) ** 2
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(feat, 5))
    t, ways, shots, q = 4, 5, 1, 15
    xs = torch.randn(t, ways * shots, 3, size, size)
    ys = torch.arange(ways).repeat_interleave(shots).repeat(t, 1)
    xq = torch.randn(t, ways * q, 3, size, size)
    yq = torch.arange(ways).repeat_interleave(q).repeat(t, 1)
    return model, (xs, ys), (xq, yq), nn.functional.cross_entropy, 5


def _as_conv4(model: Any, size: int) -> Any:
    """The repo's Conv4 (48 filters, slope 0.2) holding ``model``'s weights (same layers, same order)."""
    import torch

    from meta_learning.tasks.classification import Conv4

    net = Conv4(5, 3, size, 48, negative_slope=0.2).to(next(model.parameters()).dtype)
    with torch.no_grad():
        for dst, src in zip(net.parameters(), model.parameters(), strict=True):
            dst.copy_(src)
    return net


def _build(case: str, impl: str, quick: bool) -> Callable[[], None]:
    import torch
    from torch.func import functional_call

    from meta_learning import MetaConfig, MetaLearner, functional_loss

    model, support, query, crit, steps = (_sinusoid if case == "sinusoid" else _conv)(quick)
    n_tasks = support[0].shape[0]
    lr = 0.01
    if case == "conv" and (impl.startswith("engine") or impl == "higher_conv4"):
        model = _as_conv4(model, support[0].shape[-1])
    if impl.startswith("engine"):
        learner = MetaLearner(model, MetaConfig(inner_steps=steps, inner_lr=lr, outer_lr=1e-3))
        loss_fn = functional_loss(model, crit)
        if impl == "engine_vmap":
            def update() -> None:
                losses, _ = learner.meta_batch_losses(loss_fn, support, query)
                learner.outer_step(losses)
        else:
            def update() -> None:  # per-task backward frees each task's graph (as higher does)
                for i in range(n_tasks):
                    learner.backward_task(learner.task_loss(loss_fn, (support[0][i], support[1][i]),
                                                            (query[0][i], query[1][i]))[0])
                learner.outer_step()
        return update
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    if impl.startswith("higher"):
        import higher

        inner_opt = torch.optim.SGD(model.parameters(), lr=lr)

        def update() -> None:
            opt.zero_grad()
            for i in range(n_tasks):
                with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
                    for _ in range(steps):
                        diffopt.step(crit(fmodel(support[0][i]), support[1][i]))
                    (crit(fmodel(query[0][i]), query[1][i]) / n_tasks).backward()
            opt.step()
        return update
    params = dict(model.named_parameters())

    def update() -> None:
        opt.zero_grad()
        for i in range(n_tasks):
            fast = dict(params)
            for _ in range(steps):
                loss = crit(functional_call(model, fast, (support[0][i],)), support[1][i])
                grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True)
                fast = {n: p - lr * g for (n, p), g in zip(fast.items(), grads)}
            (crit(functional_call(model, fast, (query[0][i],)), query[1][i]) / n_tasks).backward()
        opt.step()
    return update


def same_meta_grads(quick: bool) -> Dict[str, float]:
    """The conv case's first-task meta-gradient from the engine loop (on Conv4) and from ``higher``
    (on the torch layers), same start: their largest relative difference over tensors in float64,
    and each one's float32 distance from the float64 result (what float32 rounding costs)."""
    import higher
    import torch

    from meta_learning import MetaConfig, MetaLearner, functional_loss

    grads = {}
    for dtype in (torch.float64, torch.float32):
        model, support, query, crit, steps = _conv(quick)
        model = model.to(dtype)
        s, q = (support[0][0].to(dtype), support[1][0]), (query[0][0].to(dtype), query[1][0])
        net = _as_conv4(model, s[0].shape[-1])
        learner = MetaLearner(net, MetaConfig(inner_steps=steps, inner_lr=0.01))
        learner.backward_task(learner.task_loss(functional_loss(net, crit), s, q)[0])
        grads["engine", dtype] = [learner._pending[0]["model." + n].double() for n, _ in net.named_parameters()]
        inner_opt = torch.optim.SGD(model.parameters(), lr=0.01)
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(crit(fmodel(s[0]), s[1]))
            ref = torch.autograd.grad(crit(fmodel(q[0]), q[1]), list(model.parameters()))
        grads["higher", dtype] = [g.double() for g in ref]

    def diff(a: List[Any], b: List[Any]) -> float:
        return max(float((x - y).abs().max() / y.abs().max()) for x, y in zip(a, b))

    exact = grads["higher", torch.float64]
    return {"engine_vs_higher_float64": diff(grads["engine", torch.float64], exact),
            "engine_float32_vs_float64": diff(grads["engine", torch.float32], exact),
            "higher_float32_vs_float64": diff(grads["higher", torch.float32], exact)}


class _RSSPeak:
    """Samples this process's resident set size (/proc/self/statm) every 0.2 ms in a thread."""

    def __init__(self) -> None:
        import threading

        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.base = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(0.0002)

    def __enter__(self) -> "_RSSPeak":
        self.peak = self.base = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def worker(case: str, impl: str, quick: bool) -> Dict[str, Any]:
    """Peak-memory probe in a fresh process: set-up, one warm-up update, then the peak RSS rise
    over the level just before two more meta-updates (sampled; falls back to max RSS)."""
    import torch

    torch.set_num_threads(1)
    update = _build(case, impl, quick)
    update()
    if os.path.exists("/proc/self/statm"):
        with _RSSPeak() as probe:
            for _ in range(2):
                update()
        return {"peak_mem_mb": (probe.peak - probe.base) / 2 ** 20}
    base = _maxrss_bytes()
    for _ in range(2):
        update()
    return {"peak_mem_mb": (_maxrss_bytes() - base) / 2 ** 20}


def time_case(case: str, repeats: int, warmup: int, quick: bool) -> Dict[str, Dict[str, Any]]:
    """Round-robin timing of all implementations of one case in this process."""
    import random

    import torch

    torch.set_num_threads(1)
    impls = CASE_IMPLS[case]
    updates = {impl: _build(case, impl, quick) for impl in impls}
    for impl in impls:
        for _ in range(warmup):
            updates[impl]()
    times: Dict[str, List[float]] = {impl: [] for impl in impls}
    rng = random.Random(0)
    for _ in range(repeats):
        order = list(impls)
        rng.shuffle(order)
        for impl in order:
            t0 = time.perf_counter()
            updates[impl]()
            times[impl].append(time.perf_counter() - t0)
    return {impl: {"median_s": statistics.median(t), "times_s": t} for impl, t in times.items()}


def render(doc: Dict[str, Any]) -> str:
    """docs/results/engine_speed.md from the JSON ``doc`` (what ``--md-only`` rewrites without timing)."""
    meta, results = doc["meta"], doc["results"]
    conv = results["conv"]
    same = meta["conv_meta_grad_max_rel_diff_engine_vs_higher"]
    load_start = meta["loadavg_start"]
    quick = meta["quick"]
    rounds = [h / e for h, e in zip(conv["higher"]["times_s"], conv["engine_loop"]["times_s"])]
    md = ["# Engine speed: one second-order meta-update", "",
          "Generated by `python benchmarks/engine_speed.py` (JSON: `benchmarks/results/engine_speed.json`).",
          "Same computation in four ways (five in the conv case), timed round-robin in one process (one torch thread) on "
          f"{meta['cpus']}-CPU {meta['cpu']}, torch {meta['torch']}, {meta['date']}.", "",
          "- **sinusoid**: meta-batch 25, 10 support + 10 query points, MLP 1-40-40-1, 1 inner step, Adam step.",
          "- **conv**: meta-batch 4 of 5-way 1-shot, 84x84 random images, 15 query/class, 4-conv 48 filters + "
          "BN (batch statistics), 5 inner steps on all parameters, Adam step." + (" (--quick: 32x32)" if quick else ""),
          "", f"**Conv: the engine loop is {conv['engine_loop']['speedup_vs_higher']:.2f}x faster than `higher`** "
          f"({conv['engine_loop']['median_s']:.2f} s vs {conv['higher']['median_s']:.2f} s per meta-update, medians of "
          f"{len(conv['higher']['times_s'])} rounds; the ratio within a round ranges from {min(rounds):.2f} to "
          f"{max(rounds):.2f}, median {statistics.median(rounds):.2f}). Same result: one task's meta-gradient from the engine and from "
          f"`higher` differ by at most {same['engine_vs_higher_float64']:.1e} (largest relative difference over "
          f"tensors, float64); in float32 the engine's is {same['engine_float32_vs_float64']:.1e} and `higher`'s "
          f"{same['higher_float32_vs_float64']:.1e} from that float64 result (rounding, and max-pool windows whose "
          "two largest values are within rounding of each other).", "",
          f"Machine load: load average {load_start[0]:.1f} at the start and {meta['loadavg_end'][0]:.1f} at the end "
          f"on {meta['cpus']} CPUs, this benchmark's one thread included" +
          (" (shared with other jobs while this ran; every implementation saw the same load, round-robin)."
           if max(load_start[0], meta['loadavg_end'][0]) > 1.5 else "."),
          "", "| case | implementation | median time (ms) | vs higher (x faster) | peak memory rise (MB) |",
          "|---|---|---|---|---|"]
    for case, by in results.items():
        for impl in CASE_IMPLS[case]:
            r = by[impl]
            md.append(f"| {case} | {LABEL[impl]} | {r['median_s'] * 1e3:.1f} | {r['speedup_vs_higher']:.2f} | "
                      f"{r['peak_mem_mb']:.1f} |")
    md += ["", "Peak memory: peak resident set size during a meta-update minus the level just before it, "
           "sampled every 0.2 ms in a fresh process per implementation (after one warm-up update).", "",
           NOTES.strip(), ""]
    return "\n".join(md)


def main(argv: List[str] = None) -> int:
    p = argparse.ArgumentParser(description="engine vs higher vs autograd loops")
    p.add_argument("--quick", action="store_true", help="smoke test: few repeats, 32x32 images")
    p.add_argument("--worker", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int)
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-md", type=Path)
    p.add_argument("--md-only", action="store_true",
                   help="rewrite docs/results/engine_speed.md from benchmarks/results/engine_speed.json, no timing")
    args = p.parse_args(argv)
    reps = {"sinusoid": 3 if args.quick else 40, "conv": 2 if args.quick else 7}
    if args.md_only:
        doc = json.loads((args.out_json or Path(RESULTS) / "engine_speed.json").read_text())
        write_page(args.out_md or Path(PAGES) / "engine_speed.md", render(doc))
        return 0
    if args.worker:
        case, impl = args.worker
        print("RESULT " + json.dumps(worker(case, impl, args.quick)))
        return 0
    import torch

    torch.set_num_threads(1)
    load_start = os.getloadavg()
    same = same_meta_grads(args.quick)
    print(f"conv meta-gradient, engine (Conv4) vs higher (torch layers), max relative differences: {same}",
          flush=True)
    results: Dict[str, Dict[str, Any]] = {}
    for case in ("sinusoid", "conv"):
        results[case] = time_case(case, args.repeats or reps[case], 1 if args.quick else 2, args.quick)
        for impl in CASE_IMPLS[case]:
            cmd = [sys.executable, __file__, "--worker", case, impl] + (["--quick"] if args.quick else [])
            env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
            if out.returncode != 0 or not line:
                raise SystemExit(f"{case}/{impl} failed:\n{out.stderr[-2000:]}")
            results[case][impl].update(json.loads(line[0][7:]))
            print(f"{case:8s} {LABEL[impl]:26s} {results[case][impl]['median_s'] * 1e3:9.1f} ms "
                  f"{results[case][impl]['peak_mem_mb']:8.1f} MB", flush=True)
        hi = results[case]["higher"]["median_s"]
        for impl in CASE_IMPLS[case]:
            results[case][impl]["speedup_vs_higher"] = hi / results[case][impl]["median_s"]
    meta = {"python": platform.python_version(), "torch": torch.__version__,
            "higher": __import__("higher").__version__ if hasattr(__import__("higher"), "__version__") else "0.2.1",
            "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch_threads": 1,
            "quick": args.quick, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "repeats": reps, "note": "timing: round-robin in one process, median after warm-up; "
                                     "peak_mem_mb: sampled RSS peak minus RSS before the update, fresh process per implementation",
            "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
            "conv_meta_grad_max_rel_diff_engine_vs_higher": same}
    doc = {"meta": meta, "results": results}
    out_json = args.out_json or (None if args.quick else Path(RESULTS) / "engine_speed.json")
    out_md = args.out_md or (None if args.quick else Path(PAGES) / "engine_speed.md")
    if out_json is not None:
        write_json(out_json, doc, indent=1)
    if out_md is not None:
        write_page(out_md, render(doc))
    if args.quick:
        print(render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
