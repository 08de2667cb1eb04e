"""Many-to-one sequence classifier over variable-length multivariate sequences.

``x (B, T, F)`` padded, ``lengths (B,)`` -> logits ``(B, n_classes)``::

    o, h_n = RNN(x, lengths)             o: (B, T, dirs * D), zero at padding; h_n at the last valid step
    "last": z = [h_fwd(T_b) | h_bwd(1)]  the forward state after the last valid step and, if
                                         bidirectional, the backward state after reading back to t = 1
    "mean": z = sum_{t <= T_b} o_t / T_b
    "max":  z = max_{t <= T_b} o_t       (padding masked with -inf)
    logits = W dropout(z) + b

Padding never reaches ``z``: results do not depend on how far a batch is padded, nor on what the
padding holds. :class:`rnnlab.tasks.classify.ClassifyTask` trains it with cross-entropy through :class:`rnnlab.train.Trainer`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnlab.errors import ConfigError, InputShapeError
from rnnlab.models.registry import register_model
from rnnlab.nn import build_recurrent
from rnnlab.nn.sequence import check_lengths, lengths_to_mask

POOLING = ("last", "mean", "max")


@dataclass
class ClassifierConfig:
    n_features: int
    n_classes: int
    cell: str = "gru"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    bidirectional: bool = False
    pooling: str = "last"

    def __post_init__(self):
        for name in ("n_features", "n_classes", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")
        if self.n_classes < 2:
            raise ConfigError(f"a classifier needs at least 2 classes; got {self.n_classes}")
        if self.pooling not in POOLING:
            raise ConfigError(f"pooling must be one of {POOLING}; got {self.pooling!r}")


@register_model("sequence_classifier")
class SequenceClassifier(nn.Module):
    """See the module docstring."""

    Config = ClassifierConfig

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = c = config
        self.rnn = build_recurrent(c.cell, c.n_features, c.hidden_size, num_layers=c.num_layers,
                                   dropout=c.dropout if c.num_layers > 1 else 0.0, bidirectional=c.bidirectional)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size * (2 if c.bidirectional else 1), c.n_classes)

    @classmethod
    def from_config(cls, config: ClassifierConfig) -> SequenceClassifier:
        return cls(config)

    def features(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The pooled representation ``z (B, dirs * D)``."""
        c = self.config
        if x.dim() != 3 or x.shape[2] != c.n_features:
            raise InputShapeError(f"expected x of shape (B, T, {c.n_features}); got {tuple(x.shape)}")
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        output, state = self.rnn(x, lengths=lengths)  # (B, T, dirs D)
        if c.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, D)
            dirs = 2 if c.bidirectional else 1
            return torch.cat(list(h_n[-dirs:]), dim=-1)
        mask = lengths_to_mask(lengths, x.shape[1]).to(x.device).unsqueeze(-1)  # (B, T, 1)
        if c.pooling == "mean":
            return (output * mask).sum(dim=1) / lengths.to(output).unsqueeze(-1)
        return output.masked_fill(~mask, float("-inf")).max(dim=1).values

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.head(self.drop(self.features(x, lengths)))
