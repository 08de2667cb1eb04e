"""A cell-agnostic sequence model: (embedding) -> recurrent layer -> linear head, at every step.

    e_t = E[x_t]  (token ids)   or   e_t = x_t  (float features)      (B, T, input_size)
    h_1..h_T = layer(e_1..e_T)      any cell registered in rnnlab.nn.RECURRENT      (B, T, H)
    y_t = W_out h_t + b_out                                                   (B, T, output_size)

It has the same call signature as :class:`rnnlab.models.window_mlp.WindowMLP` (plus ``lengths``), so
the long-term dependency lab can swap the two; a task reads the answer at the last valid step or at
every step. ``embed``, ``layer`` and ``head`` are public so gradient analysis can step the layer
itself (see :mod:`rnnlab.analysis.gradients`).
"""
from __future__ import annotations

import torch
from torch import nn

from rnnlab.errors import ConfigError, InputShapeError
from rnnlab.nn import build_recurrent  # the registry decides which cells exist


class SequenceModel(nn.Module):
    """Embedding (optional) -> ``rnnlab.nn.build_recurrent(cell, ...)`` -> per-step linear head.

    Args:
        cell: a name in ``rnnlab.nn.RECURRENT`` ("lstm", "gru", "rnn", ...).
        input_size: features per step (embedding size when ``num_embeddings`` is given).
        hidden_size: recurrent width H.
        output_size: outputs per step.
        num_embeddings: vocabulary size for (B, T) token-id inputs; None for (B, T, input_size) floats.
        num_layers: stacked recurrent layers.
        **options: passed to the layer (``forget_bias``, ``chrono_tmax``, ``backend``, ...).

    Shapes: forward((B, T) or (B, T, F), lengths (B,) or None) -> (B, T, output_size); padded steps
    hold the head applied to the layer's zero output.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int, *,
                 num_embeddings: int | None = None, num_layers: int = 1, **options) -> None:
        super().__init__()

        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("output_size", output_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SequenceModel {name} must be a positive integer, got {value!r}")
        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.output_size, self.num_embeddings = output_size, num_embeddings
        self.embedding = nn.Embedding(num_embeddings, input_size) if num_embeddings is not None else None
        self.layer = build_recurrent(cell, input_size, hidden_size, num_layers=num_layers, batch_first=True, **options)
        self.head = nn.Linear(hidden_size, output_size)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, input_size) embeddings; (B, T, F) floats are checked and passed on."""
        if self.embedding is not None:
            if inputs.dim() != 2 or inputs.is_floating_point():
                raise InputShapeError(f"SequenceModel with num_embeddings expects (B, T) integer token ids, "
                                      f"got shape {tuple(inputs.shape)} dtype {inputs.dtype}")
            return self.embedding(inputs)
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size or not inputs.is_floating_point():
            raise InputShapeError(f"SequenceModel expects (B, T, {self.input_size}) float inputs, "
                                  f"got shape {tuple(inputs.shape)} dtype {inputs.dtype}")
        return inputs

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        output = self.layer(self.embed(inputs), lengths=lengths)[0]  # (B, T, H)
        return self.head(output)  # (B, T, output_size)
