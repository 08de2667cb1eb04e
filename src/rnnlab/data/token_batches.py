"""Batches from a flat token stream (a numpy array or memmap of ids): TBPTT streams and random windows.

Contiguous (truncated BPTT, carried state; Zaremba et al. 2014, pytorch/examples ``batchify``):
the N ids are cut into B equal streams of n = ⌊(N − 1)/B⌋ + 1 ids (the remainder is dropped)::

    stream b = ids[b·(n−1) : b·(n−1) + n]                     (consecutive streams share one id)
    batch i : x = streams[:, i·T : i·T + T],  y = streams[:, i·T + 1 : i·T + T + 1]     (B, T) each

so row b of batch i+1 continues row b of batch i exactly, and the model's final state of batch i
is the right initial state for batch i+1. ⌊(n − 1)/T⌋ full batches per epoch (a short tail is
dropped, as in Zaremba's reader). Under data parallelism with W processes, process r gets rows
[r·B/W, (r+1)·B/W) of every batch: the global batch is the same as one process with B streams.

Random windows (stateless): each row is ids[s : s + T + 1] for a start s drawn uniformly, from a
generator seeded by (seed, epoch), so an epoch is reproducible and resumable.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from rnnlab.errors import ConfigError, DataError


def _check(ids, batch_size: int, steps: int, rank: int, world: int) -> None:
    for name, value in (("batch_size", batch_size), ("bptt", steps), ("world size", world)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if batch_size % world:
        raise ConfigError(f"batch_size {batch_size} must divide evenly among {world} processes")
    if not 0 <= rank < world:
        raise ConfigError(f"rank must be in [0, {world}), got {rank}")
    if ids.ndim != 1:
        raise DataError(f"token ids must be a flat array, got shape {ids.shape}")


class ContiguousBatches:
    """TBPTT batches ``(x, y)`` of shape (B/W, T) in stream order; ``len()`` batches per epoch."""

    def __init__(self, ids: np.ndarray, batch_size: int, bptt: int, *, rank: int = 0, world: int = 1):
        _check(ids, batch_size, bptt, rank, world)
        self.ids, self.batch_size, self.bptt = ids, batch_size, bptt
        self.stream_len = (len(ids) - 1) // batch_size + 1  # n
        if self.stream_len < bptt + 1:
            raise DataError(f"corpus has {len(ids)} tokens; one batch of {batch_size} streams x {bptt} steps needs "
                            f"at least {batch_size * bptt + 1}")
        local = batch_size // world
        self.rows = range(rank * local, (rank + 1) * local)

    def __len__(self) -> int:
        return (self.stream_len - 1) // self.bptt

    def batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = i * self.bptt
        chunk = np.stack([np.asarray(self.ids[b * (self.stream_len - 1) + start:
                                              b * (self.stream_len - 1) + start + self.bptt + 1], dtype=np.int64)
                          for b in self.rows])  # (B/W, T + 1) read from the memmap
        chunk = torch.from_numpy(chunk)
        return chunk[:, :-1], chunk[:, 1:]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(len(self)):
            yield self.batch(i)


class RandomWindows:
    """Stateless batches of B/W random windows of T + 1 ids; ``num_batches`` per epoch."""

    def __init__(self, ids: np.ndarray, batch_size: int, window: int, num_batches: int, *, seed: int = 0,
                 epoch: int = 0, rank: int = 0, world: int = 1):
        _check(ids, batch_size, window, rank, world)
        if len(ids) < window + 1:
            raise DataError(f"corpus has {len(ids)} tokens; a window of {window} steps needs at least {window + 1}")
        self.ids, self.batch_size, self.window, self.num_batches = ids, batch_size, window, num_batches
        self.seed, self.epoch = seed, epoch
        local = batch_size // world
        self.rows = slice(rank * local, (rank + 1) * local)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        span = len(self.ids) - self.window
        for _ in range(self.num_batches):
            starts = rng.integers(0, span, size=self.batch_size)[self.rows]  # same draw on every process
            chunk = torch.from_numpy(np.stack([np.asarray(self.ids[s:s + self.window + 1], dtype=np.int64)
                                               for s in starts]))
            yield chunk[:, :-1], chunk[:, 1:]
