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
:func:`rnnlab.nn.unroll.unroll` like any other cell. The layers (:mod:`rnnlab.nn.minimal_layers`:
:class:`MinGRU`, :class:`MinLSTM`) keep the contract of the other rnnlab layers — ``forward(x, hx=None, *, lengths=None, record=False)
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

from rnnlab.errors import ConfigError
from rnnlab.nn.cells import RecurrentCell


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
