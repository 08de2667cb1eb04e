"""Data-parallel tests on the CPU: run a function in several processes joined in one gloo group."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed
import torch.multiprocessing as mp

needs_gloo = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available in this build")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, work, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        work(rank, *args)
    finally:
        torch.distributed.destroy_process_group()


def run_ranks(work, *args, world: int = 2) -> None:
    """``work(rank, *args)`` in ``world`` spawned processes (``work``: a module-level function, so it pickles)."""
    mp.spawn(_rank_main, args=(world, _free_port(), work, args), nprocs=world, join=True)
