"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): recurrences that train in parallel.

Their gates read only the input ``x_t``, never ``h_{t-1}``, so the state obeys a linear recurrence
``h_t = a_t * h_{t-1} + b_t`` that :mod:`rnnlab.nn.scan` solves for a whole sequence at once.
With ``g(x) = x + 1/2`` for ``x >= 0`` and ``sigmoid(x)`` otherwise (positive, so the log-space
scan applies; the paper's choice)::

    minGRU:   z_t = sigmoid(W_z x_t + b_z),  n_t = g(W_n x_t + b_n)
              h_t = (1 - z_t) * h_{t-1} + z_t * n_t
    minLSTM:  f_t = sigmoid(W_f x_t + b_f),  i_t = sigmoid(W_i x_t + b_i),  g_t = g(W_g x_t + b_g)
              f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)      (normalised: f' + i' = 1)
              h_t = f'_t * h_{t-1} + i'_t * g_t

The cells (:class:`MinGRUCell`, :class:`MinLSTMCell`) are :class:`rnnlab.nn.cells.RecurrentCell`s:
one step at a time with a constant-size state ``h (B, H)`` — inference — and usable by
:func:`rnnlab.nn.unroll.unroll` like any other cell. The layers (:class:`MinGRU`, :class:`MinLSTM`)
keep the contract of the other rnnlab layers — ``forward(x, hx=None, *, lengths=None, record=False)
-> (output, h_n)``, ``h_n (L*D, B, H)`` — and solve each layer with a parallel scan:
``scan="chunked"`` (linear space, hand-written backward; fastest on CPU), ``"log"`` (Heinsen's
log-space scan, as in the paper) or ``"sequential"`` (the cell unrolled step by step, the reference).
``"auto"`` takes ``"log"`` on a GPU and ``"chunked"`` elsewhere.

Weights: one ``weight_ih (G*H, F)`` and ``bias_ih (G*H,)`` per layer and direction, rows in gate
order (minGRU ``z, n``; minLSTM ``f, i, g``), named ``weight_ih_l{k}[_reverse]`` as in ``torch.nn``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from rnnlab.errors import ConfigError, StateError
from rnnlab.nn import init as rinit
from rnnlab.nn.cells import RecurrentCell, check_state_dict
from rnnlab.nn.layers import _repack_like
from rnnlab.nn.minimal_scan import gated_scan
from rnnlab.nn.scan import log_scan
from rnnlab.nn.sequence import (
    check_input,
    check_lengths,
    lengths_to_mask,
    reverse_padded,
)
from rnnlab.nn.unroll import unroll


def g_positive(x: Tensor) -> Tensor:
    """The paper's ``g``: ``x + 1/2`` for ``x >= 0``, ``sigmoid(x)`` below; continuous, always ``> 0``."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g_positive(x: Tensor) -> Tensor:
    """``log g(x)`` computed without forming tiny values: ``log(x + 1/2)`` or ``-softplus(-x)``."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


class _MinimalCell(RecurrentCell):
    """Shared part: only input weights, no recurrent matrix; the step is ``h = a * h_prev + b``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, parameters=None,
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, parameters=parameters, device=device, dtype=dtype)

    @classmethod
    def shapes_for(cls, input_size: int, hidden_size: int, bias: bool = True, proj_size: int = 0
                   ) -> dict[str, tuple[int, ...]]:
        if proj_size:
            raise ConfigError(f"{cls.__name__} has no projection; got proj_size={proj_size}")
        shapes = {"weight_ih": (cls.num_gates * hidden_size, input_size)}
        if bias:
            shapes["bias_ih"] = (cls.num_gates * hidden_size,)
        return shapes

    def apply_init_rules(self) -> None:
        """No rule beyond PyTorch's uniform draw (there is no recurrent matrix to orthogonalise)."""

    def input_projection(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih if self.bias else None)  # (..., G*H)

    def coefficients(self, x_proj: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        """``x_proj (..., G*H)`` -> ``a, b (..., H)`` with ``h_t = a_t * h_{t-1} + b_t``."""
        raise NotImplementedError

    def log_coefficients(self, x_proj: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        """``x_proj (..., G*H)`` -> ``log a, log b (..., H)``, computed in log space."""
        raise NotImplementedError

    def gates(self, x_proj: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        """The named activations of ``x_proj (..., G*H)``, each ``(..., H)`` (without ``h``)."""
        raise NotImplementedError

    def recurrence(self, x_proj: Tensor, state: Tensor, record: bool = False):
        a, b = self.coefficients(x_proj)  # (B, H) each
        h = torch.addcmul(b, a, state)
        gates = {**self.gates(x_proj), "h": h} if record else None
        return h, h, gates


class MinGRUCell(_MinimalCell):
    """minGRU step: ``h_t = (1 - z_t) * h_{t-1} + z_t * g(W_n x_t + b_n)``, ``z_t = sigmoid(W_z x_t + b_z)``.

    Shapes: ``x (B, F)``, ``h (B, H)``; ``weight_ih (2H, F)`` rows ``[z; n]``, ``bias_ih (2H,)``.
    Recorded gates: ``z`` (update), ``n`` (candidate ``g(.)``), ``h``.
    """

    num_gates = 2
    gate_names = ("z", "n", "h")
    scan_kind = "gru"

    def coefficients(self, x_proj):
        k_z, k_n = x_proj.chunk(2, dim=-1)
        return torch.sigmoid(-k_z), torch.sigmoid(k_z) * g_positive(k_n)  # 1 - z without cancellation

    def log_coefficients(self, x_proj):
        k_z, k_n = x_proj.chunk(2, dim=-1)
        return -F.softplus(k_z), -F.softplus(-k_z) + log_g_positive(k_n)

    def gates(self, x_proj):
        k_z, k_n = x_proj.chunk(2, dim=-1)
        return {"z": torch.sigmoid(k_z), "n": g_positive(k_n)}


class MinLSTMCell(_MinimalCell):
    """minLSTM step: ``h_t = f'_t * h_{t-1} + i'_t * g(W_g x_t + b_g)`` with normalised gates.

    ``f' = f / (f + i) = sigmoid(-d)`` and ``i' = sigmoid(d)`` where ``d = log i - log f =
    softplus(-k_f) - softplus(-k_i)``, computed that way so neither gate underflows.
    Shapes: ``x (B, F)``, ``h (B, H)``; ``weight_ih (3H, F)`` rows ``[f; i; g]``, ``bias_ih (3H,)``.
    Recorded gates: ``f`` and ``i`` (normalised), ``g`` (candidate), ``h``. The state is ``h`` alone.
    """

    num_gates = 3
    gate_names = ("f", "i", "g", "h")
    scan_kind = "lstm"

    @staticmethod
    def _log_ratio(k_f: Tensor, k_i: Tensor) -> Tensor:
        return F.softplus(-k_f) - F.softplus(-k_i)  # log i - log f

    def coefficients(self, x_proj):
        k_f, k_i, k_g = x_proj.chunk(3, dim=-1)
        d = self._log_ratio(k_f, k_i)
        return torch.sigmoid(-d), torch.sigmoid(d) * g_positive(k_g)

    def log_coefficients(self, x_proj):
        k_f, k_i, k_g = x_proj.chunk(3, dim=-1)
        d = self._log_ratio(k_f, k_i)
        return -F.softplus(d), -F.softplus(-d) + log_g_positive(k_g)

    def gates(self, x_proj):
        k_f, k_i, k_g = x_proj.chunk(3, dim=-1)
        d = self._log_ratio(k_f, k_i)
        return {"f": torch.sigmoid(-d), "i": torch.sigmoid(d), "g": g_positive(k_g)}


SCANS = ("auto", "chunked", "log", "sequential")


class _MinimalLayer(torch.nn.Module):
    """Stacked, optionally bidirectional minGRU/minLSTM solved by a parallel scan over time.

    Shapes (``torch.nn``'s): input ``(T, B, F)``, ``(B, T, F)`` with ``batch_first`` or unbatched
    ``(T, F)``; ``hx``/``h_n`` ``(L*D, B, H)``; output ``(.., D*H)``. ``lengths (B,)``: outputs at
    padded steps are zero, ``h_n`` is each sequence's last valid step, and the reverse direction starts
    at each sequence's own last step. ``dropout`` acts between layers in training, as in ``torch.nn``.
    """

    cell_class: type[_MinimalCell]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 scan: str = "auto", forget_bias: float | None = None, device=None, dtype=None,
                 **unknown) -> None:
        super().__init__()
        if unknown:  # e.g. forget_bias or backend meant for an LSTM: reject rather than ignore
            raise ConfigError(f"{type(self).__name__} does not take option(s) {sorted(unknown)}; its options are "
                              f"num_layers, bias, batch_first, dropout, bidirectional and scan={SCANS}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be a probability in [0, 1); got {dropout!r}")
        if scan not in SCANS:
            raise ConfigError(f"scan must be one of {SCANS}; got {scan!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        if forget_bias is not None and (not bias or not isinstance(forget_bias, (int, float))):
            raise ConfigError(f"forget_bias needs bias=True and a number; got forget_bias={forget_bias!r}, bias={bias}")
        self.bidirectional, self.scan, self.forget_bias = bidirectional, scan, forget_bias
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                for name, shape in self.cell_class.shapes_for(self._layer_input(layer), hidden_size, bias).items():
                    tensor = torch.nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
                    self.register_parameter(name + self._suffix(layer, direction), tensor)
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _layer_input(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.hidden_size

    def reset_parameters(self) -> None:
        """PyTorch's recurrent-layer init: every tensor ~ U(-1/sqrt(H), 1/sqrt(H)); then ``forget_bias``.

        With the paper's init the keep coefficient ``a_t`` starts near 1/2, so a signal fades as
        ``2^-gap`` and nothing reaches back 50 steps. ``forget_bias=b`` sets the gate biases so that
        ``a_t`` starts near ``sigmoid(b)`` (the role of the LSTM's forget-gate bias): minGRU
        ``b_z = -b``; minLSTM ``b_f = b``, ``b_i = -b`` (then ``f' = sigmoid(b)`` exactly at ``x = 0``).
        """
        rinit.torch_uniform_(list(self.parameters()), self.hidden_size)
        if getattr(self, "forget_bias", None) is None:
            return
        h = self.hidden_size
        with torch.no_grad():
            for name, tensor in self.named_parameters():
                if name.startswith("bias_ih"):
                    if self.cell_class is MinGRUCell:
                        tensor[:h].fill_(-self.forget_bias)
                    else:
                        tensor[:h].fill_(self.forget_bias)
                        tensor[h: 2 * h].fill_(-self.forget_bias)

    def bound_cell(self, layer: int, direction: int) -> _MinimalCell:
        """The cell of ``(layer, direction)``, sharing this layer's tensors (for stepping or ``unroll``)."""
        suffix = self._suffix(layer, direction)
        names = self.cell_class.shapes_for(self._layer_input(layer), self.hidden_size, self.bias)
        return self.cell_class(self._layer_input(layer), self.hidden_size, self.bias,
                               parameters={name: getattr(self, name + suffix) for name in names})

    def init_state(self, batch_size: int, device=None, dtype=None) -> Tensor:
        """Zero state ``(L*D, B, H)``."""
        ref = self.weight_ih_l0
        return torch.zeros(self.num_layers * self.num_directions, batch_size, self.hidden_size,
                           device=device or ref.device, dtype=dtype or ref.dtype)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        check_state_dict(self, state_dict, strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _resolve_backend(self, record: bool) -> str:
        """Which path runs (the core layers' question): never a fused ``torch.nn`` kernel here."""
        return "scan"

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, bidirectional={self.bidirectional}, "
                f"scan={self.scan!r}")

    # ----- forward ----------------------------------------------------------------------------
    def forward(self, input, hx: Tensor | None = None, *, lengths=None, record: bool = False):
        """``(output, h_n)``, or ``(output, h_n, record)`` with ``record[layer][direction][name]``."""
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ConfigError("give either a PackedSequence or lengths=, not both")
            padded, lengths = pad_packed_sequence(input, batch_first=self.batch_first)
            result = self.forward(padded, hx, lengths=lengths, record=record)
            return (_repack_like(result[0], lengths, input, self.batch_first),) + tuple(result[1:])
        x, unbatched = self._check_input(input)
        x = x.transpose(0, 1) if self.batch_first else x  # (T, B, F)
        steps, batch = x.shape[0], x.shape[1]
        if lengths is not None:
            lengths = check_lengths(lengths, batch, steps)
            if int(lengths.min()) == steps:
                lengths = None  # nothing padded: the plain path is the same computation
        hx = self._check_hx(hx, batch, x.dtype, unbatched)
        method = self.scan if self.scan != "auto" else ("log" if x.is_cuda else "chunked")
        finals, records = [], []
        for layer in range(self.num_layers):
            outputs, layer_records = [], []
            for direction in range(self.num_directions):
                h0 = None if hx is None else hx[layer * self.num_directions + direction]
                out, final, gates = self._run(self.bound_cell(layer, direction), x, h0, lengths,
                                              direction == 1, method, record)
                outputs.append(out)
                finals.append(final)
                if record:
                    layer_records.append({k: v.transpose(0, 1) if self.batch_first else v for k, v in gates.items()})
            x = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)  # (T, B, D*H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
            records.append(layer_records)
        output = x.transpose(0, 1) if self.batch_first else x
        h_n = torch.stack(finals)  # (L*D, B, H)
        if unbatched:
            output, h_n = output.squeeze(0 if self.batch_first else 1), h_n.squeeze(1)
        return (output, h_n, records) if record else (output, h_n)

    @staticmethod
    def _run(cell: _MinimalCell, x: Tensor, h0: Tensor | None, lengths: Tensor | None, reverse: bool,
             method: str, record: bool):
        """One layer and direction over ``x (T, B, F)`` -> ``(out (T, B, H), h_n (B, H), gates)``."""
        if method == "sequential":
            return unroll(cell, x, h0, lengths=lengths, reverse=reverse, record=record)
        proj = cell.input_projection(x)  # (T, B, G*H): the only matrix product
        if reverse:  # scan each sequence backwards from its own last step
            proj = proj.flip(0) if lengths is None else reverse_padded(proj.transpose(0, 1), lengths).transpose(0, 1)
        if method == "log":
            h = log_scan(*cell.log_coefficients(proj), h0)
        else:  # gates and chunked scan in one node with a hand-written backward
            h = gated_scan(proj, h0, cell.scan_kind)  # (T, B, H)
        gates = {**cell.gates(proj), "h": h} if record else None
        if lengths is None:
            final = h[-1]
        else:
            final = h[lengths.to(h.device) - 1, torch.arange(h.shape[1], device=h.device)]  # (B, H)
            valid = lengths_to_mask(lengths.to(h.device), h.shape[0]).t().unsqueeze(-1)  # (T, B, 1)
            h = h.masked_fill(~valid, 0.0)
            if record:
                gates = {k: v.masked_fill(~valid, 0.0) for k, v in gates.items()}
        if reverse:
            back = (lambda v: v.flip(0)) if lengths is None else (
                lambda v: reverse_padded(v.transpose(0, 1), lengths).transpose(0, 1))
            h = back(h)
            gates = {k: back(v) for k, v in gates.items()} if record else None
        if record:
            gates["h"] = h
        return h, final, gates

    def _check_input(self, x) -> tuple[Tensor, bool]:
        return check_input(x, self.input_size, self.weight_ih_l0.dtype, self.batch_first)

    def _check_hx(self, hx, batch: int, dtype: torch.dtype, unbatched: bool) -> Tensor | None:
        if hx is None:
            return None
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if not isinstance(hx, Tensor):
            raise StateError(f"{type(self).__name__} state is one tensor h_0 {shape} (no cell state); "
                             f"got {type(hx).__name__}")
        if unbatched and hx.dim() == 2:
            hx = hx.unsqueeze(1)
        if tuple(hx.shape) != shape or hx.dtype != dtype:
            raise StateError(f"h_0 must have shape {shape} (num_layers*directions, batch, hidden) and dtype {dtype}; "
                             f"got {tuple(hx.shape)} and {hx.dtype}")
        return hx


class MinGRU(_MinimalLayer):
    """minGRU layers (see the module docstring); ``MinGRU(input_size, hidden_size, num_layers=1, ...)``."""

    cell_class = MinGRUCell


class MinLSTM(_MinimalLayer):
    """minLSTM layers (see the module docstring); the state is ``h`` alone, ``h_n (L*D, B, H)``."""

    cell_class = MinLSTMCell


def _register() -> None:
    """Add ``"mingru"`` and ``"minlstm"`` to :data:`rnnlab.nn.RECURRENT` (so ``build_recurrent`` knows them)."""
    from rnnlab.nn import (
        RECURRENT,  # imported here: the package imports this module after defining it
    )

    RECURRENT.setdefault("mingru", MinGRU)
    RECURRENT.setdefault("minlstm", MinLSTM)


_register()
