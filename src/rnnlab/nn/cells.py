"""Recurrent cells: one time step each, gates written out by name.

A cell splits its step into two halves so that a layer can run the expensive, time-independent half
once for the whole sequence (one matrix product, DESIGN habit 1 and PyTorch's own trick):

* ``input_projection(x)``: ``(..., F) -> (..., G*H)``, ``x W_ih^T`` plus the biases that can be
  folded in. Works on one step ``(B, F)`` or a whole sequence ``(T, B, F)``.
* ``recurrence(x_proj, state, record)``: one step from the projected input and the previous state,
  returning ``(h, new_state, gates)``; ``gates`` is a dict of the step's activations (or ``None``).

``forward(x, state=None, *, record=False)`` chains the two and returns the new state exactly as
``torch.nn.RNNCell/LSTMCell/GRUCell`` do (``h`` or ``(h, c)``), or ``(state, gates)`` when recording.
Parameter names, shapes and gate order are PyTorch's, so ``load_state_dict`` from ``torch.nn`` cells
works as is. A cell can also be *bound* to tensors owned by someone else (a layer), through the
``parameters=`` argument: then it creates nothing and shares those tensors.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import ConfigError, InputShapeError, StateDictError, StateError
from rnnlab.nn import init as rinit


class RecurrentCell(nn.Module):
    """Base class: parameter bookkeeping, zero state, input checks and ``forward``.

    Subclasses set ``num_gates`` and ``gate_names`` and implement ``input_projection`` and
    ``recurrence``; variants add tensors through ``extra_shapes``.
    """

    num_gates: int = 1
    gate_names: tuple[str, ...] = ("h",)
    has_cell_state: bool = False

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, proj_size: int = 0,
                 recurrent_init: str = "uniform", parameters: dict[str, Tensor] | None = None,
                 device=None, dtype=None) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")
        if not isinstance(proj_size, int) or proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ConfigError(f"proj_size must be an integer in [0, hidden_size={hidden_size}); got {proj_size!r}")
        self.input_size, self.hidden_size, self.bias, self.proj_size = input_size, hidden_size, bias, proj_size
        if recurrent_init not in rinit.RECURRENT_INITS:
            raise ConfigError(f"recurrent_init must be one of {rinit.RECURRENT_INITS}; got {recurrent_init!r}")
        self.recurrent_init = recurrent_init
        shapes = self.parameter_shapes()
        if parameters is None:
            for name, shape in shapes.items():
                self.register_parameter(name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
            self.reset_parameters()
        else:
            for name, shape in shapes.items():
                given = parameters.get(name)
                if given is None or tuple(given.shape) != shape:
                    got = None if given is None else tuple(given.shape)
                    raise StateDictError(f"cannot bind {type(self).__name__}: {name} must have shape {shape}; got {got}")
                # A Parameter is shared with the layer; a plain tensor (torch.func.functional_call,
                # DropConnect's dropped W_hh) is bound as an attribute for this call only.
                if isinstance(given, nn.Parameter):
                    self.register_parameter(name, given)
                else:
                    setattr(self, name, given)

    # ----- parameters -------------------------------------------------------------------------
    @property
    def output_size(self) -> int:
        """Size of h: ``proj_size`` when projecting, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return type(self).shapes_for(self.input_size, self.hidden_size, self.bias, self.proj_size)

    @classmethod
    def shapes_for(cls, input_size: int, hidden_size: int, bias: bool = True, proj_size: int = 0
                   ) -> dict[str, tuple[int, ...]]:
        """PyTorch's names and shapes, in PyTorch's registration order, then the variant's extras."""
        gates = cls.num_gates * hidden_size
        shapes = {"weight_ih": (gates, input_size), "weight_hh": (gates, proj_size or hidden_size)}
        if bias:
            shapes.update(bias_ih=(gates,), bias_hh=(gates,))
        if proj_size:
            shapes["weight_hr"] = (proj_size, hidden_size)
        shapes.update(cls.extra_shapes(hidden_size))
        return shapes

    @classmethod
    def extra_shapes(cls, hidden_size: int) -> dict[str, tuple[int, ...]]:
        """Tensors a variant adds beyond PyTorch's (none for the standard cells)."""
        return {}

    def reset_parameters(self) -> None:
        """PyTorch's uniform init for every tensor (same RNG order), then this cell's own rules."""
        rinit.torch_uniform_(list(self.parameters()), self.hidden_size)
        self.apply_init_rules()

    def apply_init_rules(self) -> None:
        """Rules on top of the uniform draw: orthogonal W_hh (and, in subclasses, gate biases)."""
        if self.recurrent_init == "orthogonal":
            rinit.orthogonal_recurrent_(self.weight_hh, self.num_gates)

    # ----- state ------------------------------------------------------------------------------
    def init_state(self, batch_size: int, device=None, dtype=None):
        """Zero state for ``batch_size`` sequences: ``h`` ``(B, H_out)`` (and ``c`` ``(B, H)`` for LSTMs)."""
        device = device if device is not None else self.weight_ih.device
        dtype = dtype if dtype is not None else self.weight_ih.dtype
        h = torch.zeros(batch_size, self.output_size, device=device, dtype=dtype)
        if self.has_cell_state:
            return h, torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return h

    def check_state(self, state, batch_size: int, dtype: torch.dtype) -> None:
        """Raise :class:`StateError` unless ``state`` has this cell's structure, shapes and dtype."""
        expected = [(batch_size, self.output_size)] + ([(batch_size, self.hidden_size)] if self.has_cell_state else [])
        parts = state if isinstance(state, (tuple, list)) else (state,)
        kind = "a tuple (h, c)" if self.has_cell_state else "a tensor h"
        if len(parts) != len(expected) or not all(isinstance(p, Tensor) for p in parts):
            raise StateError(f"{type(self).__name__} state must be {kind}; got {type(state).__name__} of {len(parts)}")
        for name, part, shape in zip(("h", "c"), parts, expected):
            if tuple(part.shape) != shape or part.dtype != dtype:
                raise StateError(f"state {name} must have shape {shape} and dtype {dtype}; "
                                 f"got {tuple(part.shape)} and {part.dtype}")

    # ----- one step ---------------------------------------------------------------------------
    def forward(self, x: Tensor, state=None, *, record: bool = False):
        """One step: ``x (B, F)``, state as from ``init_state`` -> new state (and gates when recording)."""
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.input_size:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputShapeError(f"{type(self).__name__} expects input of shape (batch, {self.input_size}); got {got}")
        if x.dtype != self.weight_ih.dtype:
            raise InputShapeError(f"input dtype must match the parameters ({self.weight_ih.dtype}); got {x.dtype}")
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        else:
            self.check_state(state, x.shape[0], x.dtype)
        _, new_state, gates = self.recurrence(self.input_projection(x), state, record)
        return (new_state, gates) if record else new_state

    def input_projection(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def recurrence(self, x_proj: Tensor, state, record: bool = False):  # pragma: no cover - abstract
        raise NotImplementedError

    # ----- strict loading ---------------------------------------------------------------------
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        check_state_dict(self, state_dict, strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def check_state_dict(module: nn.Module, state_dict, strict: bool) -> None:
    """Raise :class:`StateDictError` naming the first missing, unexpected or differently sized tensor."""
    own = module.state_dict()
    for name, tensor in state_dict.items():
        if name in own and tuple(own[name].shape) != tuple(tensor.shape):
            raise StateDictError(f"{name}: this {type(module).__name__} expects shape {tuple(own[name].shape)}; "
                                 f"the state_dict has {tuple(tensor.shape)} (was it saved from a differently sized module?)")
    if strict:
        missing = [n for n in own if n not in state_dict]
        unexpected = [n for n in state_dict if n not in own]
        if missing or unexpected:
            raise StateDictError(f"state_dict does not fit this {type(module).__name__}: "
                                 f"missing {missing[:4]}, unexpected {unexpected[:4]}")


class RNNCell(RecurrentCell):
    """Elman cell: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act = tanh or relu.

    Shapes: ``x (B, F)``, ``h (B, H)``; ``weight_ih (H, F)``, ``weight_hh (H, H)``.
    """

    gate_names = ("h",)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 **kwargs: Any) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, **kwargs)

    def input_projection(self, x: Tensor) -> Tensor:
        # Both biases are constant over time: fold them into the one big product.
        bias = self.bias_ih + self.bias_hh if self.bias else None
        return F.linear(x, self.weight_ih, bias)  # (..., H)

    def recurrence(self, x_proj: Tensor, state: Tensor, record: bool = False):
        pre = torch.addmm(x_proj, state, self.weight_hh.t())  # (B, H)
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, h, ({"h": h} if record else None)


class LSTMCell(RecurrentCell):
    """Long short-term memory cell (Hochreiter & Schmidhuber 1997, with forget gate, Gers et al. 2000).

    With ``z = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh`` split into four ``(B, H)`` blocks::

        i = sigmoid(z_i)        input gate: how much of the candidate to write
        f = sigmoid(z_f)        forget gate: how much of the old memory to keep
        g = tanh(z_g)           candidate memory
        o = sigmoid(z_o)        output gate: how much memory to show
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)     (then h_t = W_hr h_t when proj_size > 0)

    Shapes: ``x (B, F)``, ``h (B, P or H)``, ``c (B, H)``; ``weight_ih (4H, F)``, ``weight_hh (4H, P or H)``.
    ``forget_bias`` (default 1.0) sets the effective b_f; ``chrono_tmax`` uses chrono init instead;
    ``forget_bias=None`` with ``recurrent_init="uniform"`` is exactly PyTorch's init (with
    ``bias=False`` there is no bias and ``forget_bias`` has nothing to set).
    """

    num_gates = 4
    gate_names = ("i", "f", "g", "o", "c", "h")
    has_cell_state = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, forget_bias: float | None = 1.0,
                 chrono_tmax: float | None = None, **kwargs: Any) -> None:
        if chrono_tmax is not None:
            forget_bias = None  # chrono sets b_f itself
        rinit.check_init_options(forget_bias=forget_bias, chrono_tmax=chrono_tmax,
                                 recurrent_init=kwargs.get("recurrent_init", "uniform"), bias=bias, is_lstm=True)
        self.forget_bias, self.chrono_tmax = forget_bias, chrono_tmax
        super().__init__(input_size, hidden_size, bias, **kwargs)

    def apply_init_rules(self) -> None:
        super().apply_init_rules()
        if self.chrono_tmax is not None:
            rinit.chrono_(self.bias_ih, self.bias_hh, self.chrono_tmax, self.hidden_size)
        elif self.forget_bias is not None and self.bias:  # bias=False: no bias to set
            rinit.forget_bias_(self.bias_ih, self.bias_hh, self.forget_bias, self.hidden_size)

    def input_projection(self, x: Tensor) -> Tensor:
        bias = self.bias_ih + self.bias_hh if self.bias else None
        return F.linear(x, self.weight_ih, bias)  # (..., 4H)

    def gate_activations(self, x_proj: Tensor, h_prev: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``i, f, g, o`` (each ``(B, H)``) from the projected input and ``h_{t-1}`` alone."""
        z_i, z_f, z_g, z_o = torch.addmm(x_proj, h_prev, self.weight_hh.t()).chunk(4, dim=1)  # each (B, H)
        return torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)

    def recurrence(self, x_proj: Tensor, state, record: bool = False):
        h_prev, c_prev = state
        i, f, g, o = self.gate_activations(x_proj, h_prev)
        c = f * c_prev + i * g
        h = o * torch.tanh(c)
        if self.proj_size:
            h = F.linear(h, self.weight_hr)  # (B, P)
        gates = {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h} if record else None
        return h, (h, c), gates


class GRUCell(RecurrentCell):
    """Gated recurrent unit (Cho et al. 2014), PyTorch's form with ``b_hn`` inside the reset product::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)        reset gate
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)        update gate
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))     candidate
        h_t = (1 - z) * n + z * h_{t-1}

    Shapes: ``x (B, F)``, ``h (B, H)``; ``weight_ih (3H, F)``, ``weight_hh (3H, H)``; gate order r, z, n.
    """

    num_gates = 3
    gate_names = ("r", "z", "n", "h")

    def input_projection(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih if self.bias else None)  # (..., 3H)

    def recurrence(self, x_proj: Tensor, state: Tensor, record: bool = False):
        h_proj = F.linear(state, self.weight_hh, self.bias_hh if self.bias else None)  # (B, 3H)
        x_r, x_z, x_n = x_proj.chunk(3, dim=1)
        h_r, h_z, h_n = h_proj.chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * state
        return h, h, ({"r": r, "z": z, "n": n, "h": h} if record else None)
