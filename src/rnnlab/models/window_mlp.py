"""The fixed-window MLP: the baseline the classic argument for recurrence starts from.

At step t the model sees only the last W inputs, concatenated (Bengio et al. 2003's neural
probabilistic language model has this form):

    z_t = [e(x_{t-W+1}); ...; e(x_t)]            (W * E,)  e = embedding, or identity for float inputs
    y_t = V tanh(A z_t + a) + c                  (output_size,)

Positions before the start of the sequence are zero vectors, so y_t for t < W - 1 sees a shorter
context (a language model generating from a short prompt relies on this). Whatever lies more than
W - 1 steps back cannot influence y_t: no gradient, no information. That is the point.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.errors import ConfigError, InputShapeError
from rnnlab.nn.sequence import check_lengths


class WindowMLP(nn.Module):
    """Fixed-window MLP over token ids or float features, applied at every step.

    Args:
        input_size: features per step (the embedding size when ``num_embeddings`` is given).
        hidden_size: width of the tanh hidden layer.
        output_size: outputs per step.
        window: W, how many of the most recent steps each output sees (default 10).
        num_embeddings: vocabulary size; when given, inputs are (B, T) token ids embedded to
            ``input_size``; otherwise inputs are (B, T, input_size) floats.

    Shapes: forward((B, T) or (B, T, F)) -> (B, T, output_size).
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, window: int = 10,
                 num_embeddings: int | None = None) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("output_size", output_size), ("window", window)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"WindowMLP {name} must be a positive integer, got {value!r}")
        if num_embeddings is not None and (not isinstance(num_embeddings, int) or num_embeddings < 1):
            raise ConfigError(f"WindowMLP num_embeddings must be a positive integer or None, got {num_embeddings!r}")
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.window, self.num_embeddings = window, num_embeddings
        self.embedding = nn.Embedding(num_embeddings, input_size) if num_embeddings is not None else None
        self.hidden = nn.Linear(window * input_size, hidden_size)
        self.output = nn.Linear(hidden_size, output_size)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """Embed (token ids) or check (floats): -> (B, T, input_size)."""
        if self.embedding is not None:
            if inputs.dim() != 2 or inputs.dtype not in (torch.long, torch.int32, torch.int64):
                raise InputShapeError(f"WindowMLP with num_embeddings expects (B, T) integer token ids, "
                                      f"got shape {tuple(inputs.shape)} dtype {inputs.dtype}")
            return self.embedding(inputs)
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size or not inputs.is_floating_point():
            raise InputShapeError(f"WindowMLP expects (B, T, {self.input_size}) float inputs, "
                                  f"got shape {tuple(inputs.shape)} dtype {inputs.dtype}")
        return inputs

    def windows(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T[, F]) -> (B, T, W * input_size): row t is [x_{t-W+1}; ...; x_t], zeros before the start."""
        x = self.features(inputs)  # (B, T, E)
        batch, steps, size = x.shape
        x = F.pad(x, (0, 0, self.window - 1, 0))  # (B, T + W - 1, E): zeros before step 0
        x = x.unfold(1, self.window, 1)  # (B, T, E, W): window ending at each t
        return x.transpose(2, 3).reshape(batch, steps, self.window * size)  # oldest step first

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids or (B, T, F) floats -> (B, T, output_size).

        ``lengths`` (B,) is accepted so the model swaps with recurrent ones; it is checked but needs
        no action: the model is causal, so a valid step never sees the right padding.
        """
        if lengths is not None:

            check_lengths(lengths, inputs.shape[0], inputs.shape[1])
        return self.output(torch.tanh(self.hidden(self.windows(inputs))))

    def extra_repr(self) -> str:
        return f"window={self.window}, num_embeddings={self.num_embeddings}"
