"""One process or many: the handful of torch.distributed calls metatrack's commands share.

Commands run unchanged as one process, or under torchrun (``torchrun --nproc_per_node=N --no-python
metatrack ...``), which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address;
:func:`init_world` reads them and joins the process group (gloo for CPU tensors, nccl for CUDA).
Multi-node runs are torchrun's business (``--nnodes``, ``--rdzv-endpoint``); nothing here changes.

The rules the commands follow: work is split by :meth:`World.split` (meta-batch tasks, contiguous)
or :meth:`World.stride` (sequences, round-robin); the meta-gradients are all-reduced by the engine;
rank 0 alone writes checkpoints, logs, results and progress bars.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar

import torch

from .errors import UserError

__all__ = ["World", "SINGLE", "init_world", "close_world", "torchrun_env"]

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` processes (a single process is rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def split(self, n: int) -> Tuple[int, int]:
        """``[start, stop)`` of this rank's contiguous share of ``n`` items (sizes differ by <= 1).

        >>> World(1, 2).split(5)
        (2, 5)
        """
        return self.rank * n // self.size, (self.rank + 1) * n // self.size

    def stride(self, items: Sequence[Any]) -> List[Any]:
        """This rank's round-robin share of ``items`` (balances sorted lists of unequal work)."""
        return list(items[self.rank::self.size])

    # collectives: no-ops for a single process ---------------------------------------------------
    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def broadcast_(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        if self.distributed:
            torch.distributed.broadcast(tensor, src=src)
        return tensor

    def all_gather_object(self, obj: Any) -> List[Any]:
        if not self.distributed:
            return [obj]
        out: List[Any] = [None] * self.size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        if not self.distributed:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=src)
        return box[0]

    def gather_indexed(self, pairs: Sequence[Tuple[int, Any]]) -> List[Any]:
        """The values of every rank's ``(index, value)`` pairs, in index order, on every rank:
        how a sharded evaluation (tasks taken by :meth:`stride`) reassembles one process's list.
        Tensors should be on the CPU (they travel pickled)."""
        gathered = [p for part in self.all_gather_object(list(pairs)) for p in part]
        return [v for _, v in sorted(gathered, key=lambda p: p[0])]

    def on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run by rank 0 alone, its result given to every rank; if it raises, every rank
        raises the same exception (so a bad file or folder stops all ranks, none waits forever).
        For reading rank 0's files (a checkpoint to resume) and checking its output folder."""
        if not self.distributed:
            return fn()
        outcome: Any = None
        if self.is_main:
            try:
                outcome = (True, fn())
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                outcome = (False, exc)
        ok, value = self.broadcast_object(outcome)
        if not ok:
            raise value
        return value

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


SINGLE = World()


def torchrun_env() -> Optional[Tuple[int, int, int]]:
    """``(rank, world_size, local_rank)`` from torchrun's environment, or None outside torchrun."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)") from None
    if size <= 1:
        return None
    if not 0 <= rank < size:
        raise UserError(f"RANK={rank} is outside WORLD_SIZE={size}")
    return rank, size, local


def init_world(device: torch.device, timeout_minutes: float = 60.0) -> World:
    """Join torchrun's process group (once per process) and return this process's :class:`World`;
    a single process outside torchrun gets :data:`SINGLE`. The backend follows the device: nccl
    for CUDA, gloo for the CPU."""
    env = torchrun_env()
    if env is None:
        return SINGLE
    rank, size, local = env
    dist = torch.distributed
    if not dist.is_available():
        raise UserError("this torch has no torch.distributed; run without torchrun")
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise UserError("WORLD_SIZE > 1 but no MASTER_ADDR: start the processes with torchrun")
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return World(rank, size, local)


def close_world(world: World) -> None:
    """Leave the process group at the end of a command (after a last barrier)."""
    if world.distributed and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
