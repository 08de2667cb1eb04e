"""The one Python time loop: run a cell over a sequence.

``unroll`` projects the whole input sequence in one matrix product, then steps the cell through
time (forwards or backwards). With ``lengths``, steps past a sequence's end leave its state
untouched and give zero outputs, so the final state is the last *valid* one, and a reverse pass
starts each sequence at its own last step (what ``pack_padded_sequence`` does in ``torch.nn``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.nn.sequence import lengths_to_mask


def _where(mask: Tensor, new, old):
    """``mask ? new : old`` over a state that is a tensor or a tuple of tensors."""
    if isinstance(new, tuple):
        return tuple(torch.where(mask, n, o) for n, o in zip(new, old))
    return torch.where(mask, new, old)


def unroll(cell, inputs: Tensor, state=None, *, lengths: Tensor | None = None, reverse: bool = False,
           record: bool = False):
    """Run ``cell`` over ``inputs (T, B, F)`` (time-major).

    Args:
        cell: a :class:`rnnlab.nn.cells.RecurrentCell` (or anything with ``input_projection``,
            ``recurrence`` and ``init_state``).
        state: the initial state (``h`` or ``(h, c)``, batch-major) or ``None`` for zeros.
        lengths: ``(B,)`` valid steps per sequence (already checked), or ``None`` for all ``T``.
        reverse: walk from the last step to the first.
        record: also return the per-step gate activations.

    Returns:
        ``outputs (T, B, H_out)``, the final state, and when recording a dict name -> ``(T, B, H)``
        (``None`` otherwise). Outputs and recorded gates are zero at padded steps.
    """
    steps, batch = inputs.shape[0], inputs.shape[1]
    if state is None:
        state = cell.init_state(batch, inputs.device, inputs.dtype)
    projected = cell.input_projection(inputs)  # (T, B, G*H): all input products at once
    mask, first_padded = None, steps
    if lengths is not None:
        first_padded = int(lengths.min())  # steps before this are valid for every sequence
        if first_padded < steps:
            mask = lengths_to_mask(lengths.to(inputs.device), steps).t().unsqueeze(-1)  # (T, B, 1)

    outputs: list[Tensor | None] = [None] * steps
    records: list[dict | None] = [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        h, new_state, gates = cell.recurrence(projected[t], state, record)
        if t >= first_padded and mask is not None:
            valid = mask[t]  # (B, 1)
            new_state = _where(valid, new_state, state)
            h = h.masked_fill(~valid, 0.0)
            if gates is not None:
                gates = {name: value.masked_fill(~valid, 0.0) for name, value in gates.items()}
        state = new_state
        outputs[t], records[t] = h, gates

    recorded = {name: torch.stack([r[name] for r in records]) for name in records[0]} if record else None
    return torch.stack(outputs), state, recorded
