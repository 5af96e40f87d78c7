"""The resumable meta-training run every domain shares (regression, classification, RL, the trackers).

A domain says how to do one meta-iteration (draw its meta-batch, compute the task losses, step the
learner), how to validate and what else a checkpoint keeps; :class:`MetaRun` does the rest the same
way for all of them:

- resume under ONE rule: the checkpoint's ``settings`` (the domain's settings bar those that cannot
  change the weights) must equal this run's, else a one-line :class:`~foundation.errors.UserError`;
- seeds: with ``seeding="iteration"`` torch is reseeded from :func:`iteration_seed` before every
  iteration (shared by all ranks; :meth:`MetaRun.rank_stream` switches a rank to its own stream);
  with ``"once"`` a fresh run seeds ranks above 0 once and the random state carries on; the CPU
  (and CUDA) random state of every rank is saved and restored either way;
- checkpoints written by rank 0 alone through :mod:`foundation.checkpoint` (the only reader and
  writer) every ``checkpoint_every`` iterations, after every validation and at the end;
- the history: rows kept in the checkpoint, or appended to a CSV file that a resume truncates;
- an iteration whose loss, gradient norm or new weights are not finite is skipped: the learner and
  its optimizer are rolled back and the iteration is recorded in ``skipped``;
- validation every ``val_every`` iterations and at the last one; the tqdm progress bar.

Why one: four loops had drifted apart (three error types for a settings mismatch, a checkpoint
reader of their own, rollback in one only); a resumed run must continue exactly as an
uninterrupted one in every domain, which is easiest to keep true in one place.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from foundation.checkpoint import load_checkpoint, save_checkpoint, torch_load
from foundation.distributed import SINGLE, World
from foundation.errors import UserError
from foundation.fileio import atomic_path

__all__ = ["RunConfig", "Step", "MetaRun", "iteration_seed", "read_state", "rank_validation"]

# the keys the run writes into a checkpoint; a domain's own keys must be others
RUN_KEYS = frozenset({"learner", "iteration", "settings", "skipped", "history", "seconds", "torch_rng",
                      "torch_rng_ranks", "cuda_rng_ranks"})
CSV_OWN = ("iteration", "skipped", "seconds")   # CSV columns the run fills in a domain's dict rows


def iteration_seed(seed: int, iteration: int, rank: int = 0) -> int:
    """The torch seed of meta-iteration ``iteration`` of a run seeded ``seed``, on ``rank`` (rank 0's
    stream is the one a single process draws)."""
    return (seed * 1_000_003 + iteration * 7_919 + 17) % (2 ** 63 - 1) + 1_000_003 * rank


def rank_validation(kept: Sequence[Mapping[str, Any]], entry: Mapping[str, Any], k: int, key: str,
                    higher_is_better: bool) -> Tuple[List[Dict[str, Any]], bool]:
    """The ``k`` best validations once ``entry`` joins ``kept`` (dicts with ``"iteration"`` and
    ``key``, best first; a tie goes to the later iteration), and whether ``entry`` is among them.
    What a run keeps to pick its checkpoints by validation (the top-k ensemble of classification,
    the best-validation weights of the trackers)."""
    sign = -1.0 if higher_is_better else 1.0
    ranked = sorted([*kept, entry], key=lambda t: (sign * float(t[key]), -int(t["iteration"])))[:k]
    return [dict(t) for t in ranked], any(t["iteration"] == entry["iteration"] for t in ranked)


@dataclass
class RunConfig:
    """How a run is paced: ``iterations`` in all (``stop_after`` may end a session earlier),
    ``seeding`` ``"iteration"``, ``"once"`` or ``"domain"`` (the domain seeds its own streams),
    validation every ``val_every`` iterations (0: at the last one only)."""

    iterations: int
    seed: int
    checkpoint_every: int
    val_every: int = 0
    seeding: str = "iteration"
    desc: str = "meta-train"

    def __post_init__(self) -> None:
        if self.seeding not in ("iteration", "once", "domain"):
            raise ValueError(f"seeding must be iteration, once or domain, got {self.seeding!r}")


@dataclass
class Step:
    """What one iteration (or a validation) reports: the loss and gradient norm (non-finite: the
    iteration is skipped and rolled back), a history row (None: none) and the bar's postfix."""

    loss: float = 0.0
    grad_norm: float = 0.0
    row: Any = None
    postfix: Optional[Dict[str, Any]] = None


def _normal(settings: Any) -> Any:
    """Settings as JSON would hold them (tuples are lists, keys strings), so they compare alike."""
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def _saved_settings(state: Mapping[str, Any]) -> Any:
    """The settings of a checkpoint, also of those written before the run existed."""
    if "settings" in state:
        return state["settings"]
    if "training_key" in state:     # regression, classification (a dict), RL (its JSON)
        key = state["training_key"]
        return json.loads(key) if isinstance(key, str) else key
    if "train_config" in state:     # the trackers: the whole config bar the iterations
        return {k: v for k, v in state["train_config"].items() if k != "iterations"}
    return None


def read_state(path: str) -> Dict[str, Any]:
    """The state of a checkpoint (also a regression ``checkpoint.pt`` of the format before
    :mod:`foundation.checkpoint`: a bare dict, read tensors-only like every other file)."""
    try:
        return load_checkpoint(path)[0]
    except UserError:
        obj = torch_load(path)
        if isinstance(obj, dict) and "learner" in obj and "iteration" in obj:
            return obj
        raise


def _device(learner: Any) -> torch.device:
    return next(learner.parameters()).device


def _truncate_csv(path: str, fields: Sequence[str], iteration: int) -> None:
    """Drop rows beyond ``iteration`` (written after the checkpoint a resume starts from)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= iteration]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields))
        w.writeheader()
        w.writerows(rows)


class MetaRun:
    """One meta-training run of ``learner`` (a :class:`~meta_learning.MetaLearner`): call
    :meth:`start` (resume), then :meth:`train` with the domain's step. ``checkpoint``: the file to
    resume from and write (None: neither). ``settings``: what a checkpoint must share to be
    resumed. ``csv``: ``(path, columns)`` to keep the history in a CSV file instead of the
    checkpoint. ``world``: this process among torchrun's."""

    def __init__(self, learner: Any, settings: Mapping[str, Any], config: RunConfig,
                 checkpoint: Optional[str] = None, *, resume: bool = True, stop_after: Optional[int] = None,
                 csv_log: Optional[Tuple[str, Sequence[str]]] = None, metadata: Optional[Mapping[str, Any]] = None,
                 progress: bool = True, world: World = SINGLE) -> None:
        self.learner, self.settings, self.config = learner, _normal(dict(settings)), config
        self.path, self.resume, self.csv, self.metadata = checkpoint, resume, csv_log, metadata
        self.progress, self.world = progress, world
        self.end = config.iterations if stop_after is None else min(config.iterations, stop_after)
        self.iteration = 0
        self.skipped: List[int] = []
        self.history: List[Any] = []
        self.seconds = 0.0
        self.resumed = False
        self._saved = False

    # ------------------------------------------------------------------ resume
    def start(self) -> Dict[str, Any]:
        """Resume from the checkpoint when asked and there is one (rank 0 reads it and gives it to
        the others); returns its state, where the domain finds its own keys ({} for a fresh run)."""
        world = self.world
        path = self.path
        state = world.on_main(lambda: read_state(path) if self.resume and path and os.path.isfile(path) else None)
        if state is None:
            if self.csv is not None and world.is_main and os.path.exists(self.csv[0]):
                os.unlink(self.csv[0])
            if self.config.seeding == "once" and world.rank:   # rank 0 keeps one process's stream
                torch.manual_seed(iteration_seed(self.config.seed, 0, world.rank))
            self.learner.distribute(world)
            return {}
        if _normal(_saved_settings(state)) != self.settings:
            saved = _normal(_saved_settings(state)) or {}
            differ = sorted(k for k in set(saved) | set(self.settings) if saved.get(k) != self.settings.get(k))
            raise UserError(f"{path} was written with other settings ({', '.join(differ) or 'unknown'}); "
                            "use another output (--out) or do not resume")
        self.learner.load_checkpoint_state(state["learner"])
        self.iteration = int(state["iteration"])
        self.skipped = list(state.get("skipped", []))
        self.history = list(state.get("history", []))
        self.seconds = float(state.get("seconds", 0.0))
        self.resumed = True
        self._restore_rng(state)
        if self.csv is not None and world.is_main:
            _truncate_csv(self.csv[0], self.csv[1], self.iteration)
        self.learner.distribute(world)
        return state

    def _restore_rng(self, state: Mapping[str, Any]) -> None:
        """Each rank continues its own CPU and CUDA streams; another process count gets fresh
        streams on ranks above 0 (with a warning)."""
        world = self.world
        per_rank = state.get("torch_rng_ranks")
        if per_rank is not None and len(per_rank) == world.size:
            torch.set_rng_state(per_rank[world.rank])
        elif "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
            saved = len(per_rank) if per_rank is not None else 1
            if saved != world.size:
                warnings.warn(f"the checkpoint was written by {saved} process(es), this run has {world.size}: "
                              "random inner-loop noise (DropGrad) continues from new streams")
                if world.rank:
                    torch.manual_seed(iteration_seed(self.config.seed, self.iteration, world.rank))
        cuda = state.get("cuda_rng_ranks")
        device = _device(self.learner)
        if device.type == "cuda" and cuda is not None and len(cuda) == world.size:
            torch.cuda.set_rng_state(cuda[world.rank], device)

    # ------------------------------------------------------------------ seeds
    def rank_stream(self, iteration: int) -> None:
        """Switch this rank from the iteration's shared stream to its own (rank 0 keeps the shared
        one): call it once the draws every rank must share (the meta-batch) are done."""
        if self.world.rank:
            torch.manual_seed(iteration_seed(self.config.seed, iteration, self.world.rank))

    # ------------------------------------------------------------------ checkpoints
    def save(self, iteration: int, keep: Optional[Callable[[], Mapping[str, Any]]] = None,
             on_checkpoint: Optional[Callable[[int], None]] = None) -> None:
        """Checkpoint (every rank calls it: the random states are gathered; rank 0 writes), then
        ``on_checkpoint(iteration)`` on rank 0 (the domain's own files)."""
        world = self.world
        rng = world.all_gather_object(torch.get_rng_state())
        device = _device(self.learner)   # DropGrad draws from the CUDA generator on a GPU: keep it too
        cuda = world.all_gather_object(torch.cuda.get_rng_state(device)) if device.type == "cuda" else None
        self._saved = True
        if not world.is_main or self.path is None:
            return
        extra = dict(keep() if keep is not None else {})
        clash = RUN_KEYS & set(extra)
        if clash:
            raise ValueError(f"checkpoint keys {sorted(clash)} belong to the run")
        state = {"learner": self.learner.checkpoint_state(), "iteration": iteration, "settings": self.settings,
                 "skipped": list(self.skipped), "seconds": self.seconds, "torch_rng": rng[0],
                 **({"history": self.history} if self.csv is None else {}),
                 **({"torch_rng_ranks": rng} if world.distributed else {}),
                 **({"cuda_rng_ranks": cuda} if cuda is not None else {}), **extra}
        save_checkpoint(self.path, state, self.metadata)
        if on_checkpoint is not None:
            on_checkpoint(iteration)

    # ------------------------------------------------------------------ the loop
    def _finite(self, step: Step) -> bool:
        return (math.isfinite(step.loss) and math.isfinite(step.grad_norm)
                and all(bool(torch.isfinite(p).all()) for p in self.learner.parameters()))

    def _validation_due(self, done: int) -> bool:
        every = self.config.val_every
        return bool(every and done % every == 0) or done == self.config.iterations

    def train(self, step: Callable[[int], Step], validate: Optional[Callable[[int], Optional[Step]]] = None,
              keep: Optional[Callable[[], Mapping[str, Any]]] = None,
              on_checkpoint: Optional[Callable[[int], None]] = None) -> "MetaRun":
        """Run iterations ``self.iteration .. self.end - 1``: ``step(i)`` does meta-iteration ``i``
        (0-based) and reports it; ``validate(n)`` scores the start after ``n`` iterations (its row
        joins a dict row of the step, or is a row of its own); ``keep()`` gives the domain's keys of
        a checkpoint. A run of zero iterations validates and checkpoints its start."""
        from tqdm.auto import tqdm

        cfg, world = self.config, self.world
        bar = tqdm(total=cfg.iterations, initial=self.iteration, desc=cfg.desc, unit="it", mininterval=1.0,
                   disable=not (self.progress and world.is_main), dynamic_ncols=True)
        log = writer = None
        if self.csv is not None and world.is_main:
            new_file = not os.path.isfile(self.csv[0])
            log = open(self.csv[0], "a", newline="")
            writer = csv.DictWriter(log, fieldnames=list(self.csv[1]))
            if new_file:
                writer.writeheader()
        t0 = time.perf_counter()
        try:
            while self.iteration < self.end:
                it = self.iteration
                if cfg.seeding == "iteration":
                    torch.manual_seed(iteration_seed(cfg.seed, it))
                snapshot = (copy.deepcopy(self.learner.state_dict()),
                            copy.deepcopy(self.learner.optimizer.state_dict()))
                result = step(it)
                done = it + 1
                skipped = not self._finite(result)
                if skipped:
                    self.learner.load_state_dict(snapshot[0])
                    self.learner.optimizer.load_state_dict(snapshot[1])
                    self.skipped.append(done)
                    warnings.warn(f"{cfg.desc}: iteration {done} has a non-finite loss or gradient; "
                                  "skipped and rolled back")
                del snapshot
                self.iteration = done
                rows, postfix = [result.row], result.postfix
                validated = validate is not None and self._validation_due(done)
                if validated:
                    rows, postfix = self._validate(validate, done, rows, postfix)
                elapsed = self.seconds + time.perf_counter() - t0
                for row in rows:
                    self._record(row, writer, done, skipped, elapsed)
                if log is not None:
                    log.flush()
                if postfix:
                    bar.set_postfix(**postfix)
                bar.update(1)
                if done % cfg.checkpoint_every == 0 or done == self.end or validated:
                    self.seconds += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self.save(done, keep, on_checkpoint)
        finally:
            bar.close()
            if log is not None:
                log.close()
        if not self._saved and not self.resumed:   # zero iterations: the start is the result
            if validate is not None and cfg.iterations == 0:
                rows, _ = self._validate(validate, 0, [], None)
                self.history.extend(r for r in rows if r is not None)
            self.save(self.iteration, keep, on_checkpoint)
        return self

    @staticmethod
    def _validate(validate: Callable[[int], Optional[Step]], done: int, rows: List[Any],
                  postfix: Optional[Dict[str, Any]]) -> Tuple[List[Any], Optional[Dict[str, Any]]]:
        v = validate(done)
        if v is None:
            return rows, postfix
        if isinstance(v.row, dict) and rows and isinstance(rows[0], dict):
            rows[0].update(v.row)
        elif v.row is not None:
            rows = rows + [v.row]
        return rows, {**(postfix or {}), **(v.postfix or {})}

    def _record(self, row: Any, writer: Any, done: int, skipped: bool, elapsed: float) -> None:
        if row is None:
            return
        if isinstance(row, dict) and self.csv is not None:
            own = {"iteration": done, "skipped": int(skipped), "seconds": f"{elapsed:.2f}"}
            row.update({k: v for k, v in own.items() if k in self.csv[1]})
        if writer is not None:
            writer.writerow(row)
        elif self.csv is None:
            self.history.append(row)
