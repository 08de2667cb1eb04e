"""Which code computes a cell over a sequence: one table, one decision.

Every layer runs each (layer, direction) through one of four paths:

==========  ====================================================================  ==========================
path        what runs                                                              cells
==========  ====================================================================  ==========================
``fused``   PyTorch's own kernel (``torch.nn.LSTM/GRU/RNN.forward``: oneDNN/cuDNN)  LSTMCell, GRUCell, RNNCell
``fast``    the explicit equations as one autograd node with a hand-written        LSTM, peephole, layer-norm, GRU, RNN
            backward (:mod:`rnnlab.nn.fastpath`); for the LSTM and peephole
            cells on a CPU the time loop compiled (:mod:`rnnlab.nn.compiled`,
            :func:`fast_lstm`)
``scan``    a parallel scan of a linear recurrence (:mod:`rnnlab.nn.scan`)         minGRU, minLSTM
``rebuild`` gates recorded at fused speed: the fused kernel for the outputs, then  LSTMCell, GRUCell, RNNCell
            every gate at once (:mod:`rnnlab.nn.rebuild`)
``unroll``  the cell stepped by :func:`rnnlab.nn.unroll.unroll`: the reference     every cell
==========  ====================================================================  ==========================

:data:`KERNELS` says which paths a cell class has (by exact class: a user's subclass may change the
equations, so it gets the reference loop until it registers its own kernels); :func:`choose_path`
picks one. Every non-reference path is tested equal to ``unroll`` in float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from rnnlab.errors import ConfigError
from rnnlab.nn import compiled, fastpath
from rnnlab.nn.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.nn.minimal import MinGRUCell, MinLSTMCell
from rnnlab.nn.rebuild import record_fused
from rnnlab.nn.variants import LayerNormLSTMCell, PeepholeLSTMCell

__all__ = ["Kernels", "KERNELS", "SCANS", "kernels_for", "choose_path", "scan_method", "fast_lstm", "record_lstm"]

BACKENDS = ("auto", "fused", "explicit")
SCANS = ("auto", "chunked", "log", "sequential")


@dataclass(frozen=True)
class Kernels:
    """The paths a cell class has besides the reference loop."""

    fused: bool = False                # torch.nn's kernel computes exactly this cell
    fast: Callable | None = None       # fast(cell, inputs (T,B,F), state, *, lengths, reverse, drop, zone_h, zone_c)
    scan: bool = False                 # h_t = a_t h_{t-1} + b_t with gates from x_t only: parallel scan
    rebuild: Callable | None = None    # record gates from the fused outputs: rebuild(cell, inputs, state, *, lengths, reverse)


def fast_lstm(cell, inputs: torch.Tensor, state=None, *, lengths: torch.Tensor | None = None, reverse: bool = False,
              drop: torch.Tensor | None = None, zone_h: torch.Tensor | None = None, zone_c: torch.Tensor | None = None):
    """The ``fast`` path of the LSTM and peephole cells (contract of :func:`rnnlab.nn.fastpath.run_lstm`).

    The compiled time loop (:mod:`rnnlab.nn.compiled`) when it is built (``compiled.status()``), the
    tensors are float32/float64 on a CPU and there is no recurrent dropout or zoneout; else the Python
    loop of :mod:`rnnlab.nn.fastpath`. Same numbers either way (float64-equal to ``unroll``). Graph
    capture never gets here: :func:`choose_path` sends it to ``unroll``.
    """
    if (drop is None and zone_h is None and zone_c is None and inputs.device.type == "cpu"
            and inputs.dtype in compiled.DTYPES and compiled.available()):
        return compiled.run_lstm(cell, inputs, state, lengths=lengths, reverse=reverse)
    return fastpath.run_lstm(cell, inputs, state, lengths=lengths, reverse=reverse, drop=drop, zone_h=zone_h,
                             zone_c=zone_c)


def record_lstm(cell, inputs: torch.Tensor, state=None, *, lengths: torch.Tensor | None = None,
                reverse: bool = False):
    """The ``rebuild`` path of the LSTM cell (contract of :func:`rnnlab.nn.rebuild.record_fused`).

    Without gradients (``torch.no_grad()``, the gate viewer's case) and with the compiled loop built, the
    compiled forward records the gates as it runs (one pass); otherwise the fused kernel's outputs and one
    batched rebuild of the gates, which autograd can follow. Same numbers either way.
    """
    state_grad = state is not None and any(part.requires_grad for part in state)
    needs_grad = torch.is_grad_enabled() and (
        inputs.requires_grad or state_grad or any(p.requires_grad for p in cell.parameters()))
    if (not needs_grad and inputs.device.type == "cpu" and inputs.dtype in compiled.DTYPES
            and compiled.available()):
        return compiled.record_lstm(cell, inputs, state, lengths=lengths, reverse=reverse)
    return record_fused(cell, inputs, state, lengths=lengths, reverse=reverse)


KERNELS: dict[type, Kernels] = {
    LSTMCell: Kernels(fused=True, fast=fast_lstm, rebuild=record_lstm),
    PeepholeLSTMCell: Kernels(fast=fast_lstm),
    LayerNormLSTMCell: Kernels(fast=fastpath.run_layernorm_lstm),
    GRUCell: Kernels(fused=True, fast=fastpath.run_gru, rebuild=record_fused),
    RNNCell: Kernels(fused=True, fast=fastpath.run_rnn, rebuild=record_fused),
    MinGRUCell: Kernels(scan=True),
    MinLSTMCell: Kernels(scan=True),
}


def kernels_for(cell_class: type) -> Kernels:
    """The kernels of exactly ``cell_class`` (none besides ``unroll`` for an unregistered class)."""
    return KERNELS.get(cell_class, Kernels())


def tracing() -> bool:
    """Whether a graph is being captured (``torch.jit.trace``, ``torch.compile``, ``torch.export``): the
    hand-written kernels write into preallocated buffers, which graph capture cannot follow, so the
    reference loop (plain differentiable ops) runs instead — same numbers, traceable."""
    compiler = getattr(torch, "compiler", None)
    return bool(torch.jit.is_tracing() or (compiler is not None and (
        compiler.is_compiling() or getattr(compiler, "is_exporting", lambda: False)())))


def choose_path(cell_class: type, *, backend: str = "auto", record: bool = False, regularized: bool = False,
                projected: bool = False, allow_fast: bool = True, scan: str = "auto") -> str:
    """The path a layer of ``cell_class`` takes.

    ``backend``: ``"auto"`` takes ``fused`` whenever it computes the same thing (no recurrent
    dropout/zoneout; with recording, ``rebuild``: fused outputs, gates rebuilt at once), else the
    fastest explicit path; ``"fused"`` insists (and raises when it
    cannot); ``"explicit"`` never takes ``fused``. ``record`` (gates per step) needs ``unroll`` or
    ``scan``; ``projected`` (LSTM ``proj_size``) has no fast loop; ``scan="sequential"`` asks a scan
    cell for the reference loop.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}; got {backend!r}")
    kernels = kernels_for(cell_class)
    if kernels.scan:
        return "unroll" if scan == "sequential" else "scan"
    fusable = kernels.fused and not regularized
    if record and fusable and not projected and kernels.rebuild is not None and backend != "explicit" \
            and allow_fast and not tracing():
        return "rebuild"
    if backend == "fused" and (record or not fusable):
        why = "gate recording" if record else (
            "recurrent dropout or zoneout" if regularized else f"the {cell_class.__name__} cell")
        raise ConfigError(f"backend='fused' cannot run {why}; use backend='auto' or 'explicit'")
    if backend != "explicit" and fusable and not record:
        return "fused"
    if allow_fast and not record and not projected and kernels.fast is not None and not tracing():
        return "fast"
    return "unroll"


def scan_method(scan: str, is_cuda: bool) -> str:
    """``"auto"`` -> ``"log"`` on a GPU (Heinsen's log-space scan) and under graph capture (plain ops),
    ``"chunked"`` on a CPU (fastest there)."""
    if scan not in SCANS:
        raise ConfigError(f"scan must be one of {SCANS}; got {scan!r}")
    if scan == "auto" and torch.onnx.is_in_onnx_export():
        return "sequential"  # the TorchScript ONNX exporter has no logcumsumexp: the loop exports as plain ops
    return scan if scan != "auto" else ("log" if is_cuda or tracing() else "chunked")
