"""Length handling and augmentation for labelled sequences (:mod:`rnnlab.data.labelled_sequences`).

Downsampling by block means (``stride`` s): a sequence ``x (T, F)`` becomes ``(ceil(T / s), F)``::

    y[k] = mean(x[k s : min((k + 1) s, T)])          (the last block may be shorter)

Averaging before keeping every s-th step is a (box) low-pass filter, so it does not alias the fast
variation of a long sequence into slow patterns the way plain subsampling does. A recurrent network
reads ``ceil(T / s)`` steps instead of ``T``: less time, and a shorter path for the gradient.

:func:`auto_stride` is the default rule: sequences no longer than ``limit`` (400) steps are kept as
they are; otherwise the stride brings the longest down to about ``target`` (200) steps.

Augmentation (training batches only), on standardised, padded batches ``x (B, T, F)``:

    jitter   x + sigma_j * N(0, 1)                       at the valid steps only (padding stays 0)
    scaling  x * (1 + sigma_s * N(0, 1)), one factor per sequence and channel
"""
from __future__ import annotations

import math

import numpy as np
import torch

from rnnlab.errors import ConfigError

LIMIT = 400
TARGET = 200


def downsample(sequence: np.ndarray, stride: int) -> np.ndarray:
    """Block means of ``stride`` steps: ``(T, F) -> (ceil(T / stride), F)``."""
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ConfigError(f"the downsampling stride must be a positive integer; got {stride!r}")
    if stride == 1:
        return sequence
    T = len(sequence)
    starts = np.arange(0, T, stride)
    sums = np.add.reduceat(np.asarray(sequence, np.float64), starts, axis=0)
    counts = np.minimum(starts + stride, T) - starts
    return (sums / counts[:, None]).astype(np.float32)


def auto_stride(lengths, *, limit: int = LIMIT, target: int = TARGET) -> tuple[int, str]:
    """``(stride, why)``: 1 when the longest sequence has at most ``limit`` steps, else about
    ``longest / target``."""
    longest = int(max(lengths))
    if longest <= limit:
        return 1, f"longest sequence {longest} steps <= {limit}: kept at full length"
    stride = math.ceil(longest / target)
    return stride, (f"longest sequence {longest} steps > {limit}: block means of {stride} steps "
                    f"(longest now {math.ceil(longest / stride)})")


def augment(batch: dict, rng: np.random.Generator, *, jitter: float = 0.0, scaling: float = 0.0) -> dict:
    """A jittered and scaled copy of a padded batch (``x (B, T, F)``, ``lengths (B,)``); see the module
    docstring. ``rng`` makes it reproducible (the task seeds it with (seed, epoch), so resume is exact)."""
    if jitter < 0 or scaling < 0:
        raise ConfigError(f"jitter and scaling must be >= 0; got {jitter} and {scaling}")
    if not jitter and not scaling:
        return batch
    x = batch["x"]
    B, T, F = x.shape
    valid = (torch.arange(T)[None, :] < batch["lengths"][:, None]).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    out = x.clone()
    if scaling:
        out = out * torch.from_numpy(1 + scaling * rng.standard_normal((B, 1, F))).to(x.dtype)
    if jitter:
        out = out + torch.from_numpy(jitter * rng.standard_normal((B, T, F))).to(x.dtype) * valid
    return {**batch, "x": out}
