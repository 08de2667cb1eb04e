"""Many-to-one sequence classifier over variable-length multivariate sequences.

``x (B, T, F)`` padded, ``lengths (B,)`` -> logits ``(B, n_classes)``::

    o, h_n = RNN(x, lengths)             o: (B, T, dirs * D), zero at padding; h_n at the last valid step
    "last": z = [h_fwd(T_b) | h_bwd(1)]  the forward state after the last valid step and, if
                                         bidirectional, the backward state after reading back to t = 1
    "mean": z = sum_{t <= T_b} o_t / T_b
    "max":  z = max_{t <= T_b} o_t       (padding masked with -inf)
    logits = W dropout(z) + b

Padding never reaches ``z``: results do not depend on how far a batch is padded, nor on what the
padding holds. :class:`ClassifyTask` trains it with cross-entropy through :class:`rnnlab.train.Trainer`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab import metrics
from rnnlab.data.labelled_sequences import SequenceSet, pad
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


class ClassifyTask:
    """Cross-entropy training on a :class:`SequenceSet`, for :class:`rnnlab.train.Trainer`.

    Features are standardised with statistics of the training sequences only. Batches are padded
    to their own longest sequence; evaluation covers every sequence of a split.
    """

    item_name = "seq"

    def __init__(self, splits: dict[str, SequenceSet], mean, std, *, batch_size: int = 32, seed: int = 0):
        self.splits, self.mean, self.std = splits, np.asarray(mean), np.asarray(std)
        self.batch_size, self.seed = batch_size, seed

    def batches(self, split: str, order=None):
        data = self.splits[split]
        order = np.arange(len(data)) if order is None else order
        for k in range(0, len(order), self.batch_size):
            index = order[k:k + self.batch_size]
            yield pad([data.sequences[i] for i in index], data.labels[index], self.mean, self.std)

    def train_batches(self, epoch: int):
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.splits["train"]))
        return self.batches("train", order)

    def num_batches(self, epoch: int) -> int:
        return -(-len(self.splits["train"]) // self.batch_size)

    def loss(self, model, batch, state):
        return F.cross_entropy(model(batch["x"], batch["lengths"]), batch["y"]), None, len(batch["y"])

    def predict(self, model, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(N, n_classes)`` and labels ``(N,)`` for every sequence of ``split``."""
        was_training = model.training
        model.eval()
        logits, labels = [], []
        with torch.no_grad():
            for batch in self.batches(split):
                logits.append(model(batch["x"], batch["lengths"]))
                labels.append(batch["y"])
        model.train(was_training)
        return torch.cat(logits).numpy(), torch.cat(labels).numpy()

    def evaluate(self, model, split: str) -> dict[str, float]:
        logits, labels = self.predict(model, split)
        loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
        return {"loss": loss, "accuracy": metrics.accuracy(labels, logits.argmax(axis=1))}

    def checkpoint_files(self) -> dict[str, str]:
        spec = {"class_names": self.splits["train"].class_names, "mean": self.mean.tolist(), "std": self.std.tolist()}
        return {"classify.json": json.dumps(spec, indent=1)}
