"""Recurrent layers by name: ``build_recurrent("gru", 32, 64)`` for models that take any cell.

:data:`RECURRENT` maps a name to a layer factory with the ``torch.nn`` signature; it is complete when
this module is imported (no other module adds to it at import time). To add a cell: write the cell
(one step) in ``nn/cells.py`` or ``nn/variants.py``, declare its kernels in :mod:`rnnlab.nn.kernels`
if it has fast ones, and add a line here.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.nn.layers import GRU, LSTM, RNN
from rnnlab.nn.minimal_layers import MinGRU, MinLSTM

__all__ = ["RECURRENT", "build_recurrent"]

RECURRENT: dict[str, Callable[..., nn.Module]] = {
    "lstm": partial(LSTM, cell="lstm"),
    "peephole": partial(LSTM, cell="peephole"),
    "layernorm": partial(LSTM, cell="layernorm"),
    "gru": GRU,
    "rnn": partial(RNN, nonlinearity="tanh"),
    "rnn_relu": partial(RNN, nonlinearity="relu"),
    "mingru": MinGRU,
    "minlstm": MinLSTM,
}


def build_recurrent(kind: str, input_size: int, hidden_size: int, *, num_layers: int = 1, dropout: float = 0.0,
                    bidirectional: bool = False, batch_first: bool = True, **options) -> nn.Module:
    """Build a recurrent layer by registry name (batch-first by default, as models use it).

    Every layer returned has ``forward(x, hx=None, *, lengths=None, record=False) -> (output, h_n)``.
    ``options`` go to the layer (e.g. ``forget_bias``, ``chrono_tmax``, ``backend``).
    """
    factory = RECURRENT.get(kind)
    if factory is None:
        raise ConfigError(f"unknown recurrent kind {kind!r}; expected one of {sorted(RECURRENT)}")
    return factory(input_size, hidden_size, num_layers=num_layers, dropout=dropout, bidirectional=bidirectional,
                   batch_first=batch_first, **options)
