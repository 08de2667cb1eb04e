"""The explicit LSTM's time loop compiled: forward and backward over the whole sequence in C++.

At batch 1 the Python loop of :mod:`rnnlab.nn.fastpath` spends its time dispatching ~20 small ATen
calls per step, not computing. ``csrc/lstm_loop.cpp`` runs the same equations
(:class:`rnnlab.nn.cells.LSTMCell`, :class:`rnnlab.nn.variants.PeepholeLSTMCell`; gate order i, f, g, o,
``weight_hh (4H, H)``, ``weight_peephole (3, H)`` rows p_i, p_f, p_o) with per step one call of the BLAS
PyTorch is linked with (``sgemm_``/``dgemm_``) and the gate math as one vectorised C++ loop::

    z = x_proj_t + h_{t-1} W_hh^T                                  (B, 4H), x_proj from one product over all t
    i = sigmoid(z_i [+ p_i c_{t-1}]),  f = sigmoid(z_f [+ p_f c_{t-1}]),  g = tanh(z_g)
    c_t = f c_{t-1} + i g,   o = sigmoid(z_o [+ p_o c_t]),   h_t = o tanh(c_t)

It saves the activations ``(T, B, 4H)``, ``h_0..h_T``, ``c_0..c_T`` ``(T+1, B, H)`` and ``tanh(c_t)``
``(T, B, H)``; the backward walks back once, per step the point-wise derivatives and one
``dh_{t-1} = dz_t W_hh``, then ``dW_hh = dZ^T H_prev`` in one product over time. ``exp`` (in sigmoid and
``tanh(x) = 1 - 2 / (1 + exp(2x))``) is a polynomial the compiler can vectorise, within about one ulp
(``tanh`` near 0: one ulp of 1); float64 results equal the reference loop to 1e-10. Lengths, the reverse
direction (each sequence flipped within its length) and initial states behave as in
:class:`rnnlab.nn.fastpath._LSTMLoop`; recurrent dropout and zoneout are not compiled (that loop runs).

The extension is built on first use with :func:`torch.utils.cpp_extension.load` (a C++ compiler and
ninja needed; about a minute, said on stderr) into
``$XDG_CACHE_HOME/rnnlab/extensions/torch<version>-py<version>-<hash of source and flags>`` (``~/.cache`` by
default), once per process; cpp_extension's lock file makes concurrent processes wait for one build. Without a
compiler or ninja, when the build or the import fails (e.g. a PyTorch without those BLAS symbols), or
with ``RNNLAB_COMPILED=0``, :mod:`rnnlab.nn.kernels` runs the Python loop; :func:`status` says which.
:func:`rnnlab.nn.kernels.fast_lstm` decides when this loop runs (CPU, float32/float64, no regularizers).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnlab.nn.sequence import lengths_to_mask, reverse_padded

__all__ = ["available", "status", "run_lstm", "record_lstm"]

SOURCE = Path(__file__).parent / "csrc" / "lstm_loop.cpp"
DTYPES = (torch.float32, torch.float64)
# -fno-trapping-math (as PyTorch itself is built): lets the compiler vectorise the gate loops' clamps.
CFLAGS = ["-O3", "-fno-trapping-math"]

_lock = threading.Lock()
_built: dict[str, object] = {}  # "module" or "error" once the first build was tried in this process


def _build_dir() -> Path:
    """One directory per PyTorch, Python, source and flags: a change builds anew, never over an old build."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    python = f"py{sys.version_info[0]}{sys.version_info[1]}"
    return cache / "rnnlab" / "extensions" / f"torch{torch.__version__}-{python}-{digest}"


def _disabled() -> bool:
    return os.environ.get("RNNLAB_COMPILED", "1").strip().lower() in ("0", "false", "no", "off")


def _extension():
    """The loaded extension, or ``None`` (the reason in ``_built["error"]``). Builds at most once per process."""
    if _built:
        return _built.get("module")
    with _lock:
        if _built:
            return _built.get("module")
        try:
            from torch.utils import cpp_extension

            compiler = os.environ.get("CXX", "c++")  # what cpp_extension calls
            if shutil.which(compiler) is None:
                raise RuntimeError(f"no C++ compiler ({compiler!r} not found)")
            cpp_extension.verify_ninja_availability()
            build_dir = _build_dir()
            build_dir.mkdir(parents=True, exist_ok=True)
            name = "rnnlab_lstm_loop_" + build_dir.name.rsplit("-", 1)[-1]
            if not (build_dir / f"{name}.so").exists():
                print(f"rnnlab: compiling the LSTM time loop once (about a minute) into {build_dir}", file=sys.stderr)
            _built["module"] = cpp_extension.load(name=name, sources=[str(SOURCE)], build_directory=str(build_dir),
                                                  extra_cflags=CFLAGS, verbose=False)
            _built["dir"] = build_dir
        except Exception as error:  # no compiler, no ninja, a failed build or import: the Python loop runs instead
            lines = str(error).strip().splitlines()  # a failed build's message ends with the compiler's last word
            _built["error"] = f"{type(error).__name__}: {lines[-1] if lines else ''}"
    return _built.get("module")


def available() -> bool:
    """Whether the compiled loop can run (``RNNLAB_COMPILED`` not ``0``; built or buildable now)."""
    return not _disabled() and _extension() is not None


def status() -> str:
    """One line: ``"compiled (built in <dir>)"`` or ``"not available: <reason>"`` (the Python loop runs)."""
    if _disabled():
        return "not available: disabled by RNNLAB_COMPILED=0 (the Python loop of rnnlab.nn.fastpath runs)"
    if _extension() is None:
        return f"not available: {_built['error']} (the Python loop of rnnlab.nn.fastpath runs)"
    return f"compiled (built in {_built['dir']})"


class _CompiledLSTMLoop(torch.autograd.Function):
    """``(x_proj (T, B, 4H), h0, c0 (B, H), weight_hh (4H, H), peephole (3, H) | None, lengths (B,) | None)``
    -> ``(out (T, B, H), h_n, c_n)``; outputs are zero past each length, ``h_n, c_n`` at the last valid step."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, c0: Tensor, weight_hh: Tensor, peephole: Tensor | None,
                lengths: Tensor | None):
        out, h_n, c_n, gates, hs, cs, tau = _extension().forward(xp, h0, c0, weight_hh, peephole, lengths)
        ctx.save_for_backward(weight_hh, peephole)
        ctx.buffers = (gates, hs, cs, tau, lengths)  # made here, never seen by the caller
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out: Tensor, g_hn: Tensor, g_cn: Tensor):
        weight_hh, peephole = ctx.saved_tensors
        gates, hs, cs, tau, lengths = ctx.buffers
        dz, dh, dc, d_weight, d_peep = _extension().backward(g_out, g_hn, g_cn, gates, hs, cs, tau, weight_hh,
                                                              peephole, lengths)
        return dz, dh, dc, d_weight, d_peep, None


def run_lstm(cell, inputs: Tensor, state=None, *, lengths: Tensor | None = None, reverse: bool = False):
    """:func:`rnnlab.nn.fastpath.run_lstm` without regularizers, in the compiled loop: a plain or peephole
    LSTM cell over ``inputs (T, B, F)`` -> ``(outputs (T, B, H), (h_n, c_n))``; CPU, float32 or float64."""
    batch = inputs.shape[1]
    h0, c0 = cell.init_state(batch, inputs.device, inputs.dtype) if state is None else state
    x_proj = cell.input_projection(inputs)  # (T, B, 4H): all input products at once
    if reverse:  # reverse each sequence within its length, run forwards, reverse back
        x_proj = _flip(x_proj, lengths)
    lengths_cpu = None if lengths is None else lengths.to("cpu", torch.int64)
    out, h_n, c_n = _CompiledLSTMLoop.apply(x_proj, h0, c0, cell.weight_hh, getattr(cell, "weight_peephole", None),
                                            lengths_cpu)
    return (_flip(out, lengths) if reverse else out), (h_n, c_n)


@torch.no_grad()
def record_lstm(cell, inputs: Tensor, state=None, *, lengths: Tensor | None = None, reverse: bool = False):
    """Gate recording without gradients (contract of :func:`rnnlab.nn.rebuild.record_fused`): the compiled
    forward keeps every step's activations i, f, g, o ``(T, B, 4H)`` and ``c_t`` for its backward anyway, so
    recording costs one forward, not a forward and a rebuild. ``inputs (T, B, F)`` -> ``(outputs (T, B, H),
    (h_n, c_n), {"i", "f", "g", "o", "c", "h": (T, B, H)})``, zero past each length like the reference loop."""
    batch = inputs.shape[1]
    h0, c0 = cell.init_state(batch, inputs.device, inputs.dtype) if state is None else state
    x_proj = cell.input_projection(inputs)  # (T, B, 4H)
    if reverse:
        x_proj = _flip(x_proj, lengths)
    lengths_cpu = None if lengths is None else lengths.to("cpu", torch.int64)
    out, h_n, c_n, activations, _, cs, _ = _extension().forward(x_proj, h0, c0, cell.weight_hh,
                                                                getattr(cell, "weight_peephole", None), lengths_cpu)
    hidden = out.shape[-1]
    gates = {name: activations[..., k * hidden:(k + 1) * hidden] for k, name in enumerate("ifgo")}
    gates["c"], gates["h"] = cs[1:], out
    if lengths is not None:  # the loop leaves activations past a length as they were; the reference has zeros
        valid = lengths_to_mask(lengths_cpu, out.shape[0]).t().unsqueeze(-1)  # (T, B, 1)
        gates = {k: v.masked_fill(~valid, 0.0) for k, v in gates.items()}
    if reverse:
        gates = {k: _flip(v, lengths) for k, v in gates.items()}
    return gates["h"], (h_n, c_n), gates


def _flip(v: Tensor, lengths: Tensor | None) -> Tensor:
    if lengths is None:
        return v.flip(0)
    return reverse_padded(v.transpose(0, 1), lengths).transpose(0, 1).contiguous()
