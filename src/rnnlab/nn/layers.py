"""Recurrent layers: cells run over time, stacked and optionally bidirectional.

``rnnlab.LSTM``, ``rnnlab.GRU`` and ``rnnlab.RNN`` *are* ``torch.nn.LSTM/GRU/RNN`` subclasses: same
constructor and defaults, same parameter names (``weight_ih_l{k}[_reverse]``, ...), same numbers, so
``torch.nn`` weights load in one line and back. They add:

* ``lengths=`` for padded batches (or a ``PackedSequence`` as usual): outputs at padded steps are
  zero and the final state is each sequence's last valid step, in both directions and every layer;
* two backends: ``"fused"`` (PyTorch's kernels: oneDNN on CPU, cuDNN on GPU) and ``"explicit"``
  (the cells of :mod:`rnnlab.nn.cells`, through the fast loop of :mod:`rnnlab.nn.fastpath` or
  unrolled by :func:`rnnlab.nn.unroll.unroll`); ``backend="auto"`` takes the fused path whenever it
  computes the same thing. :mod:`rnnlab.nn.kernels` decides, in one place; :mod:`rnnlab.nn.stack`
  does layers x directions, lengths, packing and state checks for every layer class;
* ``record=True``: also return every layer's and direction's per-step gates
  (``record[layer][direction]["f"]`` is ``(B, T, H)`` when ``batch_first``, else ``(T, B, H)``);
* init options (forget-gate bias 1.0 by default, chrono, orthogonal W_hh) and typed errors.

Shapes (``torch.nn``'s): input ``(T, B, F)`` or ``(B, T, F)`` with ``batch_first``, or unbatched
``(T, F)``; ``h_0/h_n (L*D, B, H_out)``, ``c_0/c_n (L*D, B, H)``; output ``(.., D*H_out)``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.errors import ConfigError
from rnnlab.nn import init as rinit
from rnnlab.nn.cells import GRUCell, LSTMCell, RNNCell, check_state_dict
from rnnlab.nn.kernels import choose_path, kernels_for
from rnnlab.nn.regularize import RegularizedCell, check_regularizers, draw_masks
from rnnlab.nn.stack import StackedLayer
from rnnlab.nn.unroll import unroll
from rnnlab.nn.variants import LayerNormLSTMCell, PeepholeLSTMCell

LSTM_CELLS = {"lstm": LSTMCell, "peephole": PeepholeLSTMCell, "layernorm": LayerNormLSTMCell}


class _RecurrentLayer(StackedLayer):
    """What rnnlab adds to a ``torch.nn.RNNBase`` subclass. Set up by ``_setup`` after torch's init."""

    recurrent_dropout: float = 0.0  # LSTM options (explicit path only), see rnnlab.nn.regularize
    zoneout: tuple[float, float] = (0.0, 0.0)
    use_fastpath: bool = True  # explicit LSTM runs as one autograd node (rnnlab.nn.fastpath); False: unroll

    def _setup(self, cell_class: type, backend: str, cell_options: dict) -> None:
        choose_path(cell_class, backend=backend)  # rejects an unknown backend now, not at the first call
        self.cell_class, self.backend, self.cell_options = cell_class, backend, cell_options
        # A variant's extra tensors (torch's init has drawn the standard ones): same names with
        # torch's suffixes, drawn the same way, then every cell's own init rules.
        extras = []
        ref = self.weight_ih_l0
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                for name, shape in cell_class.extra_shapes(self.hidden_size).items():
                    tensor = nn.Parameter(torch.empty(shape, device=ref.device, dtype=ref.dtype))
                    self.register_parameter(name + self.param_suffix(layer, direction), tensor)
                    extras.append(tensor)
        rinit.torch_uniform_(extras, self.hidden_size)
        self._cells_ready = True
        self._apply_init_rules()
        self.bind_cells()

    # ----- parameters and cells ---------------------------------------------------------------
    def bound_cell(self, layer: int, direction: int):
        """A cell sharing this layer's tensors for ``(layer, direction)``; changes to it change the layer."""
        suffix = self.param_suffix(layer, direction)
        proj_size = getattr(self, "proj_size", 0)
        input_size = self.layer_input_size(layer)
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

    # ----- paths ------------------------------------------------------------------------------
    def path(self, record: bool = False) -> str:
        """``"fused"``, ``"fast"``, ``"rebuild"`` or ``"unroll"`` for this call (:func:`rnnlab.nn.kernels.choose_path`)."""
        return choose_path(self.cell_class, backend=self.backend, record=record,
                           regularized=bool(self.recurrent_dropout or any(self.zoneout)),
                           projected=bool(getattr(self, "proj_size", 0)), allow_fast=self.use_fastpath)

    def forward_fused(self, x, hx, lengths: Tensor | None, steps: int):
        """The whole stack in PyTorch's kernel (``x`` padded with ``lengths``, or a PackedSequence)."""
        torch_forward = super(StackedLayer, self).forward  # torch.nn.LSTM/GRU/RNN.forward
        if lengths is None:
            return torch_forward(x, hx)
        packed = pack_padded_sequence(x, lengths, batch_first=self.batch_first, enforce_sorted=False)
        output, state = torch_forward(packed, hx)
        output, _ = pad_packed_sequence(output, batch_first=self.batch_first, total_length=steps)
        return output, state

    def run_direction(self, cell, inputs: Tensor, state, lengths: Tensor | None, reverse: bool, record: bool,
                      path: str):
        """One layer and direction on an explicit path: the fast loop, or the cell unrolled step by step
        (with recurrent-dropout / zoneout masks drawn once per sequence)."""
        masks = (None, None, None)
        if self.recurrent_dropout or any(self.zoneout):
            masks = draw_masks(self.recurrent_dropout, self.zoneout, self.training, inputs.shape[0], inputs.shape[1],
                               self.hidden_size, inputs)
        if path == "rebuild":
            return kernels_for(self.cell_class).rebuild(cell, inputs, state, lengths=lengths, reverse=reverse)
        if path == "fast":
            out, state = kernels_for(self.cell_class).fast(cell, inputs, state, lengths=lengths, reverse=reverse,
                                                           drop=masks[0], zone_h=masks[1], zone_c=masks[2])
            return out, state, None
        if any(m is not None for m in masks):
            cell = RegularizedCell(cell, *masks)
        return unroll(cell, inputs, state, lengths=lengths, reverse=reverse, record=record)

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
