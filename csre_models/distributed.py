"""Everything distributed in one place: a plain run needs no launcher, a ``torchrun`` job runs as DDP.

``torchrun`` (and SLURM-like launchers that follow it) tell every process its place through the
environment: ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. :func:`init_distributed` starts a process group
only when ``WORLD_SIZE > 1`` (NCCL on CUDA, gloo on the CPU); otherwise every helper here is the identity
of a world of one.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Iterable, List, Tuple

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

__all__ = ["WorldInfo", "world_info_from_env", "init_distributed", "shutdown_distributed", "is_distributed",
           "barrier", "all_gather_objects", "all_reduce_sum", "broadcast_buffers", "wrap_ddp"]


@dataclass(frozen=True)
class WorldInfo:
    """This process's place in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and logs."""
        return self.rank == 0


def world_info_from_env() -> WorldInfo:
    """``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` from the environment (a world of one when unset)."""
    def read(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        try:
            return int(value) if value != "" else default
        except ValueError:
            raise ValueError(f"environment variable {name}={value!r} is not an integer") from None

    world_size = read("WORLD_SIZE", 1)
    rank = read("RANK", 0)
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside the world of WORLD_SIZE={world_size} processes")
    return WorldInfo(rank=rank, local_rank=read("LOCAL_RANK", 0), world_size=world_size)


def init_distributed(device: torch.device, world: WorldInfo) -> torch.device:
    """Join the process group when the world is larger than one; return the device this process uses.

    On CUDA every process takes the GPU of its ``LOCAL_RANK`` (``device`` ``cuda`` becomes ``cuda:<local
    rank>``) and the backend is NCCL; on the CPU it is gloo. The rendezvous (``MASTER_ADDR``, ``MASTER_PORT``)
    comes from the environment, as ``torchrun`` sets it.
    """
    if device.type == "cuda" and world.world_size > 1:
        device = torch.device("cuda", world.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world.world_size > 1 and not is_distributed():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                rank=world.rank, world_size=world.world_size)
    return device


def shutdown_distributed() -> None:
    """Leave the process group, if one was joined."""
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes in the joined process group (1 without one)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank in the joined process group (0 without one)."""
    return dist.get_rank() if is_distributed() else 0


def barrier() -> None:
    """Wait for every process (nothing to wait for in a world of one)."""
    if is_distributed():
        dist.barrier()


def all_gather_objects(value: Any) -> List[Any]:
    """``value`` of every rank, in rank order (``[value]`` in a world of one). Picklable values only."""
    if not is_distributed():
        return [value]
    gathered: List[Any] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``values`` over all ranks (a new tensor; ``values`` itself is unchanged)."""
    total = values.clone()
    if is_distributed():
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def wrap_ddp(module: torch.nn.Module, device: torch.device) -> DistributedDataParallel:
    """``module`` in DistributedDataParallel, without the buffer broadcast before every forward.

    DDP's default copies every buffer of rank 0 to the others at each step; here the buffers that must agree
    are synchronised explicitly with :func:`broadcast_buffers` (BatchNorm statistics matter only for
    evaluation and checkpoints, and large buffers such as memory banks that every rank keeps identical
    would otherwise travel at every step).
    """
    no_sync = ({"forward_sync_buffers": False}
               if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else {"broadcast_buffers": False})
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)


def broadcast_buffers(module: torch.nn.Module, exclude: Iterable[torch.Tensor] = ()) -> None:
    """Copy rank 0's buffers of ``module`` (BatchNorm statistics, ...) to every rank, in place, except
    the buffers in ``exclude``."""
    if not is_distributed():
        return
    skipped = {id(buffer) for buffer in exclude}
    for buffer in module.buffers():
        if id(buffer) not in skipped:
            dist.broadcast(buffer, src=0)


def all_gather_rows(rows: torch.Tensor, indices: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Concatenate ``rows`` ``(n_r, D)`` and ``indices`` ``(n_r,)`` of all ranks in rank order.

    Ranks may hold different batch sizes (the last batch of an epoch): sizes are exchanged first and every
    rank pads to the largest one. Not differentiable (the CSRE bank sends detached rows).
    """
    ranks = world_size()
    size = torch.tensor([rows.shape[0]], device=rows.device)
    sizes = [torch.empty_like(size) for _ in range(ranks)]
    dist.all_gather(sizes, size)
    sizes = [int(s) for s in sizes]
    largest = max(sizes)
    padded_rows = rows.new_zeros(largest, rows.shape[1])
    padded_rows[:rows.shape[0]] = rows
    padded_indices = indices.new_zeros(largest)
    padded_indices[:indices.shape[0]] = indices
    gathered_rows = [torch.empty_like(padded_rows) for _ in range(ranks)]
    gathered_indices = [torch.empty_like(padded_indices) for _ in range(ranks)]
    dist.all_gather(gathered_rows, padded_rows)
    dist.all_gather(gathered_indices, padded_indices)
    return (torch.cat([r[:n] for r, n in zip(gathered_rows, sizes)]),
            torch.cat([i[:n] for i, n in zip(gathered_indices, sizes)]))
