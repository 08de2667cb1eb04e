"""Data parallelism on ``torch.distributed`` (gloo on CPU, NCCL on GPU), launched by ``torchrun``.

Each process holds a full model copy and a shard of every global batch; DistributedDataParallel
averages gradients, so with equal shards one optimizer step equals a single-process step on the
whole global batch. The trainer wraps the model itself when a process group is up; tasks shard
their batches with :func:`rank` and :func:`world_size`.

Launch::

    torchrun --nproc_per_node 2 -m rnnlab.cli train lm --data ... --out RUN
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment (``WORLD_SIZE`` > 1).

    Returns True if a group was (or already is) initialised. ``backend`` defaults to NCCL when CUDA
    is available, else gloo.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def all_reduce_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """Sum a few floats over all processes (identity when not distributed)."""
    if not is_active():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def all_gather(obj):
    """Every process's ``obj`` as a list indexed by rank (``[obj]`` when not distributed); a collective."""
    if not is_active():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if is_active():
        dist.barrier()
