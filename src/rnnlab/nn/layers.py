"""Recurrent layers: cells run over time, stacked and optionally bidirectional.

``rnnlab.LSTM``, ``rnnlab.GRU`` and ``rnnlab.RNN`` *are* ``torch.nn.LSTM/GRU/RNN`` subclasses: same
constructor and defaults, same parameter names (``weight_ih_l{k}[_reverse]``, ...), same numbers, so
``torch.nn`` weights load in one line and back. They add:

* ``lengths=`` for padded batches (or a ``PackedSequence`` as usual): outputs at padded steps are
  zero and the final state is each sequence's last valid step, in both directions and every layer;
* two execution paths: ``"fused"`` (PyTorch's kernels: oneDNN on CPU, cuDNN on GPU) and
  ``"explicit"`` (the cells of :mod:`rnnlab.nn.cells` unrolled by :func:`rnnlab.nn.unroll.unroll`).
  ``backend="auto"`` takes the fused path whenever it can compute the same thing, and the explicit
  one when it must (gate recording, variant cells);
* ``record=True``: also return every layer's and direction's per-step gates
  (``record[layer][direction]["f"]`` is ``(B, T, H)`` when ``batch_first``, else ``(T, B, H)``);
* init options (forget-gate bias 1.0 by default, chrono, orthogonal W_hh) and typed errors.

Shapes (``torch.nn``'s): input ``(T, B, F)`` or ``(B, T, F)`` with ``batch_first``, or unbatched
``(T, F)``; ``h_0/h_n (L*D, B, H_out)``, ``c_0/c_n (L*D, B, H)``; output ``(.., D*H_out)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnlab.errors import ConfigError, InputShapeError, StateError
from rnnlab.nn import fastpath
from rnnlab.nn import init as rinit
from rnnlab.nn.cells import GRUCell, LSTMCell, RNNCell, check_state_dict
from rnnlab.nn.regularize import RegularizedCell, check_regularizers, draw_masks
from rnnlab.nn.sequence import check_input, check_lengths
from rnnlab.nn.unroll import unroll
from rnnlab.nn.variants import LayerNormLSTMCell, PeepholeLSTMCell

BACKENDS = ("auto", "fused", "explicit")
FUSED_CELLS = (LSTMCell, GRUCell, RNNCell)  # exactly these classes match a torch kernel
LSTM_CELLS = {"lstm": LSTMCell, "peephole": PeepholeLSTMCell, "layernorm": LayerNormLSTMCell}


class _RecurrentLayer:
    """What rnnlab adds to a ``torch.nn.RNNBase`` subclass. Set up by ``_setup`` after torch's init."""

    recurrent_dropout: float = 0.0  # LSTM options (explicit path only), see rnnlab.nn.regularize
    zoneout: tuple[float, float] = (0.0, 0.0)
    use_fastpath: bool = True  # explicit LSTM runs as one autograd node (rnnlab.nn.fastpath); False: unroll

    def _setup(self, cell_class: type, backend: str, cell_options: dict) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}; got {backend!r}")
        self.cell_class, self.backend, self.cell_options = cell_class, backend, cell_options
        # A variant's extra tensors (torch's init has drawn the standard ones): same names with
        # torch's suffixes, drawn the same way, then every cell's own init rules.
        extras = []
        ref = self.weight_ih_l0
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                for name, shape in cell_class.extra_shapes(self.hidden_size).items():
                    tensor = nn.Parameter(torch.empty(shape, device=ref.device, dtype=ref.dtype))
                    self.register_parameter(name + self._suffix(layer, direction), tensor)
                    extras.append(tensor)
        rinit.torch_uniform_(extras, self.hidden_size)
        self._cells_ready = True
        self._apply_init_rules()

    # ----- parameters and cells ---------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def bound_cell(self, layer: int, direction: int):
        """A cell sharing this layer's tensors for ``(layer, direction)``; changes to it change the layer."""
        suffix = self._suffix(layer, direction)
        proj_size = getattr(self, "proj_size", 0)
        input_size = self.input_size if layer == 0 else self.num_directions * (proj_size or self.hidden_size)
        names = self.cell_class.shapes_for(input_size, self.hidden_size, self.bias, proj_size)
        parameters = {name: getattr(self, name + suffix) for name in names}
        return self.cell_class(input_size, self.hidden_size, self.bias, parameters=parameters, **self._cell_kwargs())

    def _cell_kwargs(self) -> dict:
        kwargs = dict(self.cell_options)
        if getattr(self, "proj_size", 0):
            kwargs["proj_size"] = self.proj_size
        return kwargs

    def reset_parameters(self) -> None:
        """PyTorch's uniform init over every tensor (same RNG order as ``torch.nn``), then the cell's rules."""
        rinit.torch_uniform_(list(self.parameters()), self.hidden_size)
        if getattr(self, "_cells_ready", False):
            self._apply_init_rules()

    def _apply_init_rules(self) -> None:
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                self.bound_cell(layer, direction).apply_init_rules()

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        check_state_dict(self, state_dict, strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ----- states -----------------------------------------------------------------------------
    def init_state(self, batch_size: int, device=None, dtype=None):
        """Zero initial state in ``torch.nn``'s shapes: ``h (L*D, B, H_out)`` (and ``c (L*D, B, H)``)."""
        ref = self.weight_ih_l0
        device, dtype = device or ref.device, dtype or ref.dtype
        layers = self.num_layers * self.num_directions
        h = torch.zeros(layers, batch_size, self.proj_size or self.hidden_size, device=device, dtype=dtype)
        if self.cell_class.has_cell_state:
            return h, torch.zeros(layers, batch_size, self.hidden_size, device=device, dtype=dtype)
        return h

    def _check_hx(self, hx, batch_size: int, dtype: torch.dtype, unbatched: bool):
        if hx is None:
            return None
        layers = self.num_layers * self.num_directions
        shapes = [(layers, batch_size, self.proj_size or self.hidden_size)]
        if self.cell_class.has_cell_state:
            shapes.append((layers, batch_size, self.hidden_size))
        parts = hx if isinstance(hx, (tuple, list)) else (hx,)
        kind = "a tuple (h_0, c_0)" if len(shapes) == 2 else "a tensor h_0"
        if len(parts) != len(shapes) or not all(isinstance(p, Tensor) for p in parts):
            raise StateError(f"initial state must be {kind}; got {type(hx).__name__} with {len(parts)} part(s)")
        if unbatched:
            parts = tuple(p.unsqueeze(1) if p.dim() == 2 else p for p in parts)
        for name, part, shape in zip(("h_0", "c_0"), parts, shapes):
            if tuple(part.shape) != shape:
                raise StateError(f"{name} must have shape {shape} (num_layers*directions, batch, size); got {tuple(part.shape)}")
            if part.dtype != dtype:
                raise StateError(f"{name} must have the input's dtype {dtype}; got {part.dtype}")
        return tuple(parts) if len(parts) == 2 else parts[0]

    # ----- forward ----------------------------------------------------------------------------
    def _resolve_backend(self, record: bool) -> str:
        regularized = bool(self.recurrent_dropout or any(self.zoneout))
        fusable = self.cell_class in FUSED_CELLS and not regularized
        if self.backend == "fused" and (record or not fusable):
            why = "gate recording" if record else (
                "recurrent dropout or zoneout" if regularized else f"the {self.cell_class.__name__} cell")
            raise ConfigError(f"backend='fused' cannot run {why}; use backend='auto' or 'explicit'")
        return "fused" if self.backend != "explicit" and fusable and not record else "explicit"

    def _check_input(self, x) -> tuple[Tensor, bool]:
        return check_input(x, self.input_size, self.weight_ih_l0.dtype, self.batch_first)

    def forward(self, input, hx=None, *, lengths=None, record: bool = False):
        backend = self._resolve_backend(record)
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ConfigError("give either a PackedSequence or lengths=, not both")
            return self._forward_packed(input, hx, backend, record)
        x, unbatched = self._check_input(input)
        batch, steps = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        if lengths is not None:
            lengths = check_lengths(lengths, batch, steps)
        hx = self._check_hx(hx, batch, x.dtype, unbatched)
        if backend == "fused":
            output, state, recorded = *self._forward_fused(x, hx, lengths, steps), None
        else:
            output, state, recorded = self._forward_explicit(x, hx, lengths, record)
        if unbatched:
            output = output.squeeze(0 if self.batch_first else 1)
            state = tuple(s.squeeze(1) for s in state) if isinstance(state, tuple) else state.squeeze(1)
        return (output, state, recorded) if record else (output, state)

    def _forward_fused(self, x: Tensor, hx, lengths: Tensor | None, steps: int):
        if lengths is None:
            return super().forward(x, hx)
        packed = pack_padded_sequence(x, lengths, batch_first=self.batch_first, enforce_sorted=False)
        output, state = super().forward(packed, hx)
        output, _ = pad_packed_sequence(output, batch_first=self.batch_first, total_length=steps)
        return output, state

    def _forward_explicit(self, x: Tensor, hx, lengths: Tensor | None, record: bool):
        layer_input = x.transpose(0, 1) if self.batch_first else x  # (T, B, F)
        finals, records = [], []
        for layer in range(self.num_layers):
            outputs, layer_records = [], []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                state = None if hx is None else (
                    tuple(part[index] for part in hx) if isinstance(hx, tuple) else hx[index])
                out, state, gates = self._run_direction(self.bound_cell(layer, direction), layer_input, state,
                                                        lengths, direction == 1, record)
                outputs.append(out)
                finals.append(state)
                if record:
                    layer_records.append({k: v.transpose(0, 1) if self.batch_first else v for k, v in gates.items()})
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)  # (T, B, D*H_out)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
            records.append(layer_records)
        output = layer_input.transpose(0, 1) if self.batch_first else layer_input
        if isinstance(finals[0], tuple):
            state = tuple(torch.stack(parts) for parts in zip(*finals))  # (h_n, c_n)
        else:
            state = torch.stack(finals)  # (L*D, B, H)
        return output, state, (records if record else None)

    def _run_direction(self, cell, inputs: Tensor, state, lengths: Tensor | None, reverse: bool, record: bool):
        """One layer and direction on the explicit path: the fast LSTM loop when it can compute the
        same thing (no recording), else the cell unrolled step by step."""
        masks = (None, None, None)
        if self.recurrent_dropout or any(self.zoneout):
            masks = draw_masks(self.recurrent_dropout, self.zoneout, self.training, inputs.shape[0], inputs.shape[1],
                               self.hidden_size, inputs)
        if self.use_fastpath and not record and fastpath.fast_supported(cell):
            out, state = fastpath.run_lstm(cell, inputs, state, lengths=lengths, reverse=reverse, drop=masks[0],
                                           zone_h=masks[1], zone_c=masks[2])
            return out, state, None
        if any(m is not None for m in masks):
            cell = RegularizedCell(cell, *masks)
        return unroll(cell, inputs, state, lengths=lengths, reverse=reverse, record=record)

    def _forward_packed(self, packed: PackedSequence, hx, backend: str, record: bool):
        batch = int(packed.batch_sizes[0])
        hx = self._check_hx(hx, batch, packed.data.dtype, unbatched=False)
        if packed.data.dim() != 2 or packed.data.shape[-1] != self.input_size:
            raise InputShapeError(f"packed input must have {self.input_size} features; got {tuple(packed.data.shape)}")
        if backend == "fused":
            output, state = super().forward(packed, hx)
            return output, state
        padded, lengths = pad_packed_sequence(packed, batch_first=self.batch_first)  # original batch order
        output, state, recorded = self._forward_explicit(padded, hx, lengths, record)
        output = _repack_like(output, lengths, packed, self.batch_first)
        return (output, state, recorded) if record else (output, state)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, cell={self.cell_class.__name__}, backend={self.backend!r}"

    @classmethod
    def from_torch(cls, module: nn.RNNBase, **options):
        """Build the rnnlab twin of a ``torch.nn`` recurrent module and copy its weights."""
        kwargs = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                      dropout=module.dropout, bidirectional=module.bidirectional)
        if isinstance(module, nn.LSTM):
            kwargs["proj_size"] = module.proj_size
        if isinstance(module, nn.RNN):
            kwargs["nonlinearity"] = module.nonlinearity
        ref = module.weight_ih_l0
        twin = cls(module.input_size, module.hidden_size, **kwargs, **options, device=ref.device, dtype=ref.dtype)
        twin.load_state_dict(module.state_dict())
        return twin


def _repack_like(output: Tensor, lengths: Tensor, like: PackedSequence, batch_first: bool) -> PackedSequence:
    """Pack a padded output with exactly the batch order of the ``PackedSequence`` that came in."""
    if like.sorted_indices is not None:
        order = like.sorted_indices.to(output.device)
        output = output.index_select(0 if batch_first else 1, order)
        lengths = lengths.index_select(0, like.sorted_indices.cpu())
    data = pack_padded_sequence(output, lengths, batch_first=batch_first, enforce_sorted=True).data
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)


class LSTM(_RecurrentLayer, nn.LSTM):
    """Drop-in ``torch.nn.LSTM`` with lengths, gate recording, variants and init options.

    Args beyond ``torch.nn.LSTM``'s (keyword-only):
        cell: ``"lstm"`` (default), ``"peephole"`` or ``"layernorm"`` (variants run explicitly).
        backend: ``"auto"`` (default), ``"fused"`` or ``"explicit"``.
        forget_bias: effective forget-gate bias, default 1.0; ``None`` keeps PyTorch's uniform draw.
        chrono_tmax: chrono initialisation for dependencies up to this many steps (overrides forget_bias).
        recurrent_init: ``"uniform"`` (PyTorch's) or ``"orthogonal"`` (each gate block of W_hh).
        recurrent_dropout: variational dropout on ``h`` entering ``W_hh`` (one mask per sequence).
        zoneout: probability (or ``(p_cell, p_hidden)``) that a unit keeps its previous value
            (Krueger et al. 2017); eval mode mixes deterministically. Both run on the explicit path.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, *, cell: str | type = "lstm", backend: str = "auto",
                 forget_bias: float | None = 1.0, chrono_tmax: float | None = None,
                 recurrent_init: str = "uniform", recurrent_dropout: float = 0.0,
                 zoneout: float | tuple[float, float] = 0.0, device=None, dtype=None) -> None:
        cell_class = LSTM_CELLS.get(cell) if isinstance(cell, str) else cell
        if not (isinstance(cell_class, type) and issubclass(cell_class, LSTMCell)):
            raise ConfigError(f"cell must be one of {sorted(LSTM_CELLS)} or an LSTMCell subclass; got {cell!r}")
        if chrono_tmax is not None:
            forget_bias = None
        rinit.check_init_options(forget_bias=forget_bias, chrono_tmax=chrono_tmax, recurrent_init=recurrent_init,
                                 bias=bias, is_lstm=True)
        nn.LSTM.__init__(self, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)
        self.recurrent_dropout, self.zoneout = check_regularizers(recurrent_dropout, zoneout)
        self._setup(cell_class, backend, dict(forget_bias=forget_bias, chrono_tmax=chrono_tmax,
                                              recurrent_init=recurrent_init))


class GRU(_RecurrentLayer, nn.GRU):
    """Drop-in ``torch.nn.GRU`` with lengths, gate recording (r, z, n, h) and init options."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 backend: str = "auto", recurrent_init: str = "uniform", device=None, dtype=None) -> None:
        rinit.check_init_options(forget_bias=None, chrono_tmax=None, recurrent_init=recurrent_init, bias=bias,
                                 is_lstm=False)
        nn.GRU.__init__(self, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                        device=device, dtype=dtype)
        self._setup(GRUCell, backend, dict(recurrent_init=recurrent_init))


class RNN(_RecurrentLayer, nn.RNN):
    """Drop-in ``torch.nn.RNN`` (Elman, tanh or relu) with lengths, recording and init options."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, backend: str = "auto", recurrent_init: str = "uniform", device=None, dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        rinit.check_init_options(forget_bias=None, chrono_tmax=None, recurrent_init=recurrent_init, bias=bias,
                                 is_lstm=False)
        nn.RNN.__init__(self, input_size, hidden_size, num_layers, nonlinearity=nonlinearity, bias=bias,
                        batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                        device=device, dtype=dtype)
        self._setup(RNNCell, backend, dict(recurrent_init=recurrent_init, nonlinearity=nonlinearity))
