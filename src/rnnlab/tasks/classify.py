"""Sequence classification as a trainer task: cross-entropy over padded variable-length batches,
optionally augmented (:func:`rnnlab.data.augment.augment`: jitter, scaling) in training only."""
from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab import metrics
from rnnlab.data.augment import augment
from rnnlab.data.labelled_sequences import SequenceSet, pad
from rnnlab.rundir import CLASSIFY_SPEC


class ClassifyTask:
    """Cross-entropy training on a :class:`SequenceSet`, for :class:`rnnlab.train.Trainer`.

    Features are standardised with statistics of the training sequences only. Batches are padded
    to their own longest sequence; evaluation covers every sequence of a split.
    """

    item_name = "seq"

    def __init__(self, splits: dict[str, SequenceSet], mean, std, *, batch_size: int = 32, seed: int = 0,
                 jitter: float = 0.0, scaling: float = 0.0, stride: int = 1):
        self.splits, self.mean, self.std = splits, np.asarray(mean), np.asarray(std)
        self.batch_size, self.seed = batch_size, seed
        self.jitter, self.scaling = jitter, scaling
        self.stride = stride  # the downsampling the sequences went through (saved so predict does the same)
        self.history: list[dict] = []  # every evaluation, in order (the cross-validation reads it)

    def batches(self, split: str, order=None):
        data = self.splits[split]
        order = np.arange(len(data)) if order is None else order
        for k in range(0, len(order), self.batch_size):
            index = order[k:k + self.batch_size]
            yield pad([data.sequences[i] for i in index], data.labels[index], self.mean, self.std)

    def train_batches(self, epoch: int):
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.splits["train"]))
        if not (self.jitter or self.scaling):
            return self.batches("train", order)
        rng = np.random.default_rng((self.seed, epoch, 1))  # its own stream: same order with or without
        return (augment(batch, rng, jitter=self.jitter, scaling=self.scaling) for batch in self.batches("train", order))

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
        found = {"loss": loss, "accuracy": metrics.accuracy(labels, logits.argmax(axis=1))}
        self.history.append({"split": split, **found})
        return found

    def checkpoint_files(self) -> dict[str, str]:
        train = self.splits["train"]
        spec = {"class_names": train.class_names, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "features": list(train.feature_names), "stride": self.stride}
        return {CLASSIFY_SPEC: json.dumps(spec, indent=1)}
