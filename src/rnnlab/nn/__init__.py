"""The recurrent core: cells (one step), the one time loop, and layers equal to ``torch.nn``.

``RECURRENT`` is a small registry from a name to a layer factory, so models can take any cell by
name (``build_recurrent("gru", 32, 64)``) without string dispatch in their own code.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.nn.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell
from rnnlab.nn.layers import GRU, LSTM, RNN
from rnnlab.nn.sequence import last_valid, lengths_to_mask, reverse_padded
from rnnlab.nn.unroll import unroll
from rnnlab.nn.variants import LayerNormLSTMCell, PeepholeLSTMCell

RECURRENT: dict[str, Callable[..., nn.Module]] = {
    "lstm": partial(LSTM, cell="lstm"),
    "peephole": partial(LSTM, cell="peephole"),
    "layernorm": partial(LSTM, cell="layernorm"),
    "gru": GRU,
    "rnn": partial(RNN, nonlinearity="tanh"),
    "rnn_relu": partial(RNN, nonlinearity="relu"),
}


def build_recurrent(kind: str, input_size: int, hidden_size: int, *, num_layers: int = 1, dropout: float = 0.0,
                    bidirectional: bool = False, batch_first: bool = True, **options) -> nn.Module:
    """Build a recurrent layer by registry name (batch-first by default, as models use it).

    Every layer returned has ``forward(x, hx=None, *, lengths=None) -> (output, h_n)``.
    ``options`` go to the layer (e.g. ``forget_bias``, ``chrono_tmax``, ``backend``).
    """
    factory = RECURRENT.get(kind)
    if factory is None:
        raise ConfigError(f"unknown recurrent kind {kind!r}; expected one of {sorted(RECURRENT)}")
    return factory(input_size, hidden_size, num_layers=num_layers, dropout=dropout, bidirectional=bidirectional,
                   batch_first=batch_first, **options)


__all__ = [
    "RECURRENT", "build_recurrent", "RecurrentCell", "RNNCell", "LSTMCell", "GRUCell", "PeepholeLSTMCell",
    "LayerNormLSTMCell", "RNN", "LSTM", "GRU", "MinGRU", "MinLSTM", "MinGRUCell", "MinLSTMCell", "unroll", "lengths_to_mask", "last_valid", "reverse_padded",
]
from rnnlab.nn.minimal import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell  # noqa: E402,F401  registers "mingru", "minlstm"
