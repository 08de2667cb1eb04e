"""minGRU / minLSTM layers (Feng et al. 2024): stacked, optionally bidirectional, solved by a parallel scan.

The cells and their equations are in :mod:`rnnlab.nn.minimal`; the layer x direction loop, lengths,
packing and state checks in :mod:`rnnlab.nn.stack`. Each layer and direction is one scan over time:
``scan="chunked"`` (linear space, hand-written backward; fastest on CPU), ``"log"`` (Heinsen's
log-space scan, as in the paper) or ``"sequential"`` (the cell unrolled step by step, the reference);
``"auto"`` takes ``"log"`` on a GPU and ``"chunked"`` elsewhere (:func:`rnnlab.nn.kernels.scan_method`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.errors import ConfigError
from rnnlab.nn import init as rinit
from rnnlab.nn.cells import check_state_dict
from rnnlab.nn.kernels import SCANS, choose_path, scan_method
from rnnlab.nn.minimal import MinGRUCell, MinLSTMCell, _MinimalCell
from rnnlab.nn.minimal_scan import gated_scan
from rnnlab.nn.scan import log_scan
from rnnlab.nn.sequence import lengths_to_mask, reverse_padded
from rnnlab.nn.stack import StackedLayer
from rnnlab.nn.unroll import unroll


class _MinimalLayer(StackedLayer, torch.nn.Module):
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
                for name, shape in self.cell_class.shapes_for(self.layer_input_size(layer), hidden_size, bias).items():
                    tensor = torch.nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
                    self.register_parameter(name + self.param_suffix(layer, direction), tensor)
        self.reset_parameters()
        self.bind_cells()

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
        suffix = self.param_suffix(layer, direction)
        names = self.cell_class.shapes_for(self.layer_input_size(layer), self.hidden_size, self.bias)
        return self.cell_class(self.layer_input_size(layer), self.hidden_size, self.bias,
                               parameters={name: getattr(self, name + suffix) for name in names})

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        check_state_dict(self, state_dict, strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def path(self, record: bool = False) -> str:
        """``"scan"``, or ``"unroll"`` for ``scan="sequential"``: never a fused ``torch.nn`` kernel here."""
        return choose_path(self.cell_class, scan=self.scan)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, bidirectional={self.bidirectional}, "
                f"scan={self.scan!r}")

    # ----- forward ----------------------------------------------------------------------------
    def run_direction(self, cell: _MinimalCell, x: Tensor, h0: Tensor | None, lengths: Tensor | None,
                      reverse: bool, record: bool, path: str):
        """One layer and direction over ``x (T, B, F)`` -> ``(out (T, B, H), h_n (B, H), gates)``."""
        method = scan_method(self.scan, x.is_cuda)
        if path == "unroll" or method == "sequential":
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


class MinGRU(_MinimalLayer):
    """minGRU layers (see the module docstring); ``MinGRU(input_size, hidden_size, num_layers=1, ...)``."""

    cell_class = MinGRUCell


class MinLSTM(_MinimalLayer):
    """minLSTM layers (see the module docstring); the state is ``h`` alone, ``h_n (L*D, B, H)``."""

    cell_class = MinLSTMCell
