"""The recurrent core: cells (one step), the one time loop, the stack, the kernels, and layers equal to ``torch.nn``.

Reading order: ``cells.py`` / ``variants.py`` / ``minimal.py`` (one step, gates by name) ->
``unroll.py`` (the reference time loop) -> ``fastpath.py`` / ``scan.py`` (fast kernels, tested equal
to it) -> ``kernels.py`` (which path runs, decided in one place) -> ``stack.py`` (layers x
directions, lengths, packing, states) -> ``layers.py`` / ``minimal_layers.py`` -> ``registry.py``
(layers by name: ``build_recurrent("gru", 32, 64)``).
"""
from __future__ import annotations

from rnnlab.nn.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell
from rnnlab.nn.layers import GRU, LSTM, RNN
from rnnlab.nn.minimal import MinGRUCell, MinLSTMCell
from rnnlab.nn.minimal_layers import MinGRU, MinLSTM
from rnnlab.nn.registry import RECURRENT, build_recurrent
from rnnlab.nn.sequence import last_valid, lengths_to_mask, reverse_padded
from rnnlab.nn.unroll import unroll
from rnnlab.nn.variants import LayerNormLSTMCell, PeepholeLSTMCell

__all__ = [
    "RECURRENT", "build_recurrent", "RecurrentCell", "RNNCell", "LSTMCell", "GRUCell", "PeepholeLSTMCell",
    "LayerNormLSTMCell", "RNN", "LSTM", "GRU", "MinGRU", "MinLSTM", "MinGRUCell", "MinLSTMCell", "unroll",
    "lengths_to_mask", "last_valid", "reverse_padded",
]
