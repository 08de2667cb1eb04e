"""Small pure functions for variable-length batches.

A batch of sequences of different lengths is stored padded to the longest, with a ``lengths``
vector ``(B,)`` of valid steps. These helpers check lengths and turn them into masks or pick the
last valid step; they know nothing about cells or layers.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from rnnlab.errors import InputShapeError, LengthsError


def check_lengths(lengths, batch_size: int, max_len: int) -> Tensor:
    """Validate ``lengths`` for a padded batch and return them as an int64 CPU tensor ``(B,)``.

    Raises :class:`LengthsError` when they are not a 1-D integer vector of size ``batch_size`` with
    every value in ``[1, max_len]``.
    """
    lengths_t = torch.as_tensor(lengths)
    if lengths_t.is_floating_point() or lengths_t.is_complex() or lengths_t.dtype == torch.bool:
        raise LengthsError(f"lengths must be integers; got dtype {lengths_t.dtype}")
    if lengths_t.dim() != 1 or lengths_t.shape[0] != batch_size:
        raise LengthsError(
            f"lengths must have shape ({batch_size},), one per sequence in the batch; got {tuple(lengths_t.shape)}"
        )
    lengths_t = lengths_t.to(device="cpu", dtype=torch.int64)
    if batch_size and int(lengths_t.min()) < 1:
        raise LengthsError(f"every length must be at least 1; got minimum {int(lengths_t.min())}")
    if batch_size and int(lengths_t.max()) > max_len:
        raise LengthsError(
            f"lengths cannot exceed the padded sequence length {max_len}; got maximum {int(lengths_t.max())}"
        )
    return lengths_t


def lengths_to_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B,)`` lengths -> ``(B, T)`` boolean mask, True at valid steps ``t < length``."""
    lengths = torch.as_tensor(lengths)
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def last_valid(output: Tensor, lengths: Tensor) -> Tensor:
    """Pick each sequence's last valid step: ``output (B, T, H)``, ``lengths (B,)`` -> ``(B, H)``."""
    if output.dim() != 3:
        raise LengthsError(f"last_valid expects output of shape (B, T, H); got {tuple(output.shape)}")
    lengths = check_lengths(lengths, output.shape[0], output.shape[1]).to(output.device)
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, output.shape[2])
    return output.gather(1, index).squeeze(1)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of a batch-first ``(B, T, ...)`` tensor within its own length.

    Padded steps stay where they are, so ``reverse_padded(reverse_padded(x, L), L) == x``.
    """
    batch, max_len = x.shape[0], x.shape[1]
    lengths = check_lengths(lengths, batch, max_len).to(x.device)
    steps = torch.arange(max_len, device=x.device).unsqueeze(0)  # (1, T)
    index = torch.where(steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps)  # (B, T)
    index = index.view(batch, max_len, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def check_input(x, input_size: int, dtype: torch.dtype, batch_first: bool) -> tuple[Tensor, bool]:
    """Check a layer's input and make it batched: ``(T, B, F)`` / ``(B, T, F)`` or unbatched ``(T, F)``.

    Returns the batched tensor and whether it came unbatched. Raises :class:`InputShapeError` naming
    the expected layout, feature size and dtype against what was given.
    """
    layout = "(B, T, F)" if batch_first else "(T, B, F)"
    if not isinstance(x, Tensor):
        raise InputShapeError(f"input must be a tensor {layout} or a PackedSequence; got {type(x).__name__}")
    if x.dim() not in (2, 3) or x.shape[-1] != input_size:
        raise InputShapeError(f"input must have shape {layout} or unbatched (T, F) with F={input_size}; "
                              f"got {tuple(x.shape)}")
    if x.dtype != dtype:
        raise InputShapeError(f"input dtype must match the parameters ({dtype}); got {x.dtype}")
    unbatched = x.dim() == 2
    if unbatched:
        x = x.unsqueeze(0 if batch_first else 1)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputShapeError(f"input must hold at least one step of one sequence; got {tuple(x.shape)}")
    return x, unbatched


def repack_like(output: Tensor, lengths: Tensor, like: PackedSequence, batch_first: bool) -> PackedSequence:
    """Pack a padded output with exactly the batch order of the ``PackedSequence`` that came in."""
    if like.sorted_indices is not None:
        order = like.sorted_indices.to(output.device)
        output = output.index_select(0 if batch_first else 1, order)
        lengths = lengths.index_select(0, like.sorted_indices.cpu())
    data = pack_padded_sequence(output, lengths, batch_first=batch_first, enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
