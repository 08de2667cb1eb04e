"""Gate recording at fused speed: run PyTorch's kernel for the outputs, then rebuild every gate at once.

A cell's gates at step t depend only on ``x_t`` and the state before it. The fused kernel gives every
``h_t`` (it hides the gates), so with ``h_prev = [h_0, h_1, .., h_{T-1}]`` the cell's own
:meth:`recurrence` (the LSTM's :meth:`gate_activations`) runs ONCE over all ``T * B`` rows — one batched product instead of ``T`` small
ones — and returns the gates of every step. The LSTM's memory is the one thing that needs the past:
``c_t = f_t c_{t-1} + i_t g_t`` is a linear recurrence in gates we now have, solved by the scan of
:mod:`rnnlab.nn.scan`; then ``h_t = o_t tanh(c_t)``. Lengths: each sequence is reversed within its
length for the backward direction (so padding trails), steps past a length are zeroed, and the final
state is read at the last valid step. Equal to :func:`rnnlab.nn.unroll.unroll` with ``record=True``
(float64 tests in ``tests/test_rebuild.py``).

The fused call is ``torch._VF.lstm/gru/rnn_*`` for one layer and one direction — the functions
``torch.nn.LSTM/GRU/RNN.forward`` call themselves — so intermediate layers' outputs are available.
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.nn.cells import GRUCell, LSTMCell
from rnnlab.nn.scan import chunked_scan
from rnnlab.nn.sequence import lengths_to_mask, reverse_padded

__all__ = ["record_fused"]


def _fused_outputs(cell, x: Tensor, state) -> Tensor:
    """``h_t`` for every step of ``x (T, B, F)`` from PyTorch's kernel (one layer, one direction)."""
    weights = [cell.weight_ih, cell.weight_hh] + ([cell.bias_ih, cell.bias_hh] if cell.bias else [])
    if isinstance(cell, LSTMCell):
        h0, c0 = state
        return torch._VF.lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)), weights, cell.bias, 1, 0.0, False, False,
                              False)[0]
    kernel = torch._VF.gru if isinstance(cell, GRUCell) else (
        torch._VF.rnn_tanh if cell.nonlinearity == "tanh" else torch._VF.rnn_relu)
    return kernel(x, state.unsqueeze(0), weights, cell.bias, 1, 0.0, False, False, False)[0]


def record_fused(cell, inputs: Tensor, state=None, *, lengths: Tensor | None = None, reverse: bool = False):
    """Same contract as ``unroll(..., record=True)`` for a standard LSTM (no projection), GRU or RNN cell:
    ``inputs (T, B, F)`` -> ``(outputs (T, B, H), final state, gates {name: (T, B, H)})``."""
    steps, batch = inputs.shape[0], inputs.shape[1]
    state = cell.init_state(batch, inputs.device, inputs.dtype) if state is None else state
    flip = None
    if reverse:  # read each sequence backwards from its own last step: padding stays at the end
        flip = (lambda v: v.flip(0)) if lengths is None else (
            lambda v: reverse_padded(v.transpose(0, 1), lengths).transpose(0, 1))
        inputs = flip(inputs)
    hs = _fused_outputs(cell, inputs, state)  # (T, B, H)
    h0 = state[0] if isinstance(state, tuple) else state
    h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])  # (T, B, H): the state each step starts from
    x_proj = cell.input_projection(inputs).reshape(steps * batch, -1)  # (T*B, G*H)
    flat_prev = h_prev.reshape(steps * batch, -1)
    if isinstance(cell, LSTMCell):
        # Gates need only h_{t-1}; the memory is the scan c_t = f_t c_{t-1} + i_t g_t of those gates.
        gates = dict(zip("ifgo", (v.reshape(steps, batch, -1) for v in cell.gate_activations(x_proj, flat_prev))))
        c = chunked_scan(gates["f"], gates["i"] * gates["g"], state[1])  # (T, B, H), differentiable
        gates["c"], gates["h"] = c, gates["o"] * torch.tanh(c)
    else:
        _, _, gates = cell.recurrence(x_proj, flat_prev, record=True)
        gates = {k: v.reshape(steps, batch, -1) for k, v in gates.items()}
    out = gates["h"]
    if lengths is None:
        final_h, final_c = out[-1], (gates["c"][-1] if "c" in gates else None)
    else:
        rows, last = torch.arange(batch, device=out.device), lengths.to(out.device) - 1
        final_h = out[last, rows]
        final_c = gates["c"][last, rows] if "c" in gates else None
        valid = lengths_to_mask(lengths.to(out.device), steps).t().unsqueeze(-1)  # (T, B, 1)
        gates = {k: v.masked_fill(~valid, 0.0) for k, v in gates.items()}
        out = gates["h"]
    if flip is not None:
        gates = {k: flip(v) for k, v in gates.items()}
        out = gates["h"]
    final = (final_h, final_c) if isinstance(cell, LSTMCell) else final_h
    return out, final, gates

