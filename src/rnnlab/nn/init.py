"""Initialisation rules for recurrent parameters, applied in place to one cell's tensors.

All functions take the stacked gate tensors in PyTorch's layout (gates stacked along dim 0 in the
cell's gate order) and touch only what they claim to.

* ``torch_uniform_``: PyTorch's default, U(-1/sqrt(H), 1/sqrt(H)) for every tensor, in the order
  given, so the same seed gives the same numbers as ``torch.nn``.
* ``forget_bias_``: b_f = value (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1.0). PyTorch
  keeps two biases whose sum acts; the value goes into ``bias_ih`` and the ``bias_hh`` part is zeroed,
  so the effective forget bias is exactly ``value``.
* ``chrono_``: Tallec & Ollivier 2018: b_f = log(u), u ~ U(1, T_max - 1), b_i = -b_f, so the
  forget gate's characteristic memory times spread over [1, T_max].
* ``orthogonal_recurrent_``: each gate's H x H block of W_hh orthogonal (Saxe et al. 2014).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnlab.errors import ConfigError

LSTM_GATE = {"i": 0, "f": 1, "g": 2, "o": 3}


def torch_uniform_(tensors, hidden_size: int) -> None:
    """PyTorch's default init for RNN modules: every tensor ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    with torch.no_grad():
        for tensor in tensors:
            tensor.uniform_(-bound, bound)


def _gate_slice(bias: Tensor, gate: str, hidden_size: int) -> Tensor:
    start = LSTM_GATE[gate] * hidden_size
    return bias[start : start + hidden_size]


def forget_bias_(bias_ih: Tensor, bias_hh: Tensor, value: float, hidden_size: int) -> None:
    """Set the LSTM's effective forget-gate bias (``bias_ih + bias_hh``) to ``value``."""
    with torch.no_grad():
        _gate_slice(bias_ih, "f", hidden_size).fill_(float(value))
        _gate_slice(bias_hh, "f", hidden_size).zero_()


def chrono_(bias_ih: Tensor, bias_hh: Tensor, t_max: float, hidden_size: int) -> None:
    """Chrono init: b_f = log(U(1, T_max - 1)), b_i = -b_f (effective biases; ``bias_hh`` parts zeroed)."""
    if not t_max or t_max <= 2:
        raise ConfigError(f"chrono_tmax must be a number greater than 2 (the longest dependency in steps); got {t_max!r}")
    with torch.no_grad():
        u = torch.empty(hidden_size, dtype=bias_ih.dtype, device=bias_ih.device).uniform_(1.0, float(t_max) - 1.0)
        b_f = torch.log(u)
        _gate_slice(bias_ih, "f", hidden_size).copy_(b_f)
        _gate_slice(bias_ih, "i", hidden_size).copy_(-b_f)
        _gate_slice(bias_hh, "f", hidden_size).zero_()
        _gate_slice(bias_hh, "i", hidden_size).zero_()


def orthogonal_recurrent_(weight_hh: Tensor, num_gates: int) -> None:
    """Make each gate's block of ``weight_hh`` (``(G*H, H_in)``) an orthogonal matrix."""
    with torch.no_grad():
        for block in weight_hh.chunk(num_gates, dim=0):
            torch.nn.init.orthogonal_(block)


RECURRENT_INITS = ("uniform", "orthogonal")


def check_init_options(*, forget_bias, chrono_tmax, recurrent_init: str, bias: bool, is_lstm: bool) -> None:
    """Reject init options that cannot apply, naming what was given."""
    if recurrent_init not in RECURRENT_INITS:
        raise ConfigError(f"recurrent_init must be one of {RECURRENT_INITS}; got {recurrent_init!r}")
    if not is_lstm and (forget_bias is not None or chrono_tmax is not None):
        raise ConfigError("forget_bias and chrono_tmax apply to LSTM cells only")
    if not bias and chrono_tmax is not None:
        raise ConfigError(f"chrono_tmax={chrono_tmax!r} needs bias=True (there is no bias to set)")
    if chrono_tmax is not None and (not isinstance(chrono_tmax, (int, float)) or chrono_tmax <= 2):
        raise ConfigError(f"chrono_tmax must be a number greater than 2; got {chrono_tmax!r}")
