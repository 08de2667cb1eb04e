"""How ``rnnlab classify train`` adapts to the size and length of the user's data, and says why.

**Epoch budget.** Early stopping needs a validation split large enough for its loss to mean
something. With 50 training sequences a 15% split holds 7: one lucky or unlucky epoch stops training
at chance accuracy. So below ``SMALL`` (200) training sequences the budget is chosen by stratified
k-fold cross-validation on the training set instead (every sequence is held out once)::

    acc_e = (1/N) sum_f #correct(model_f after e epochs, fold f)     e = 1..E (N training sequences)
    e*    = argmax_e acc_e   (ties: the lower mean held-out loss, then the earlier epoch)

and the final model is trained on all training sequences for exactly e* epochs (no validation split,
no early stopping). E is ``--epochs``, raised so that a fold model takes at least ``MIN_STEPS`` (300)
optimizer steps: small sets give few steps an epoch. From ``SMALL`` sequences on, a held-out split of >= 30 sequences is a usable
early-stopping signal and costs k times less, so that is used. The test set is never looked at.

**Length.** :func:`rnnlab.data.augment.auto_stride`: sequences longer than 400 steps are shortened
by block means to about 200.

**Normalisation.** Per channel: mean and standard deviation over every step of every training
sequence (:func:`rnnlab.data.labelled_sequences.feature_stats`), so channels of different units weigh
the same and no per-sequence information (its level, its scale) is thrown away.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from rnnlab.data.augment import auto_stride, downsample
from rnnlab.data.labelled_sequences import SequenceSet, feature_stats
from rnnlab.errors import DataError
from rnnlab.models.classifier import ClassifierConfig, SequenceClassifier
from rnnlab.models.conv_classifier import ConvClassifierConfig, ConvSequenceClassifier
from rnnlab.tasks.classify import ClassifyTask
from rnnlab.train import TrainConfig, Trainer, seed_everything

SMALL = 200
MIN_STEPS = 300
EPOCH_CHOICES = ("auto", "cv", "early-stop")
FRONTENDS = ("conv", "none")


def build_classifier(n_features: int, n_classes: int, model_config: dict):
    """The classifier ``model_config`` asks for: ``frontend="conv"`` puts
    :class:`~rnnlab.models.conv_classifier.ConvSequenceClassifier`'s convolutions before the cell."""
    options = dict(model_config)
    frontend = options.pop("frontend", "none")
    if frontend not in FRONTENDS:
        raise DataError(f"frontend must be one of {FRONTENDS}; got {frontend!r}")
    if frontend == "conv":
        return ConvSequenceClassifier(ConvClassifierConfig(n_features=n_features, n_classes=n_classes, **options))
    return SequenceClassifier(ClassifierConfig(n_features=n_features, n_classes=n_classes, **options))


def stratified_folds(labels: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """``k`` disjoint sorted index arrays covering ``range(len(labels))``; each class is shuffled and
    dealt round-robin, so every fold holds about ``1/k`` of each class."""
    labels = np.asarray(labels)
    if not 2 <= k <= len(labels):
        raise DataError(f"{k}-fold cross-validation needs at least {k} training sequences and k >= 2; "
                        f"got {len(labels)} sequences")
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        for j, index in enumerate(members):
            folds[(offset + j) % k].append(int(index))
        offset += len(members)  # the next class starts where this one ended: fold sizes stay within 1
    return [np.sort(np.array(f, np.int64)) for f in folds]


def resolve_epoch_choice(choice: str, n_train: int) -> tuple[str, str]:
    """``("cv" | "early-stop", why)`` for ``--epoch-choice`` ``choice`` and ``n_train`` sequences."""
    if choice not in EPOCH_CHOICES:
        raise DataError(f"epoch choice must be one of {EPOCH_CHOICES}; got {choice!r}")
    if choice != "auto":
        return choice, f"--epoch-choice {choice}"
    if n_train < SMALL:
        return "cv", (f"{n_train} training sequences < {SMALL}: a validation split would be too small to stop on, "
                      f"so the epoch budget is chosen by cross-validation")
    return "early-stop", f"{n_train} training sequences >= {SMALL}: early stopping on a held-out split"


def cv_epoch_range(n_train: int, folds: int, batch_size: int, epochs: int, min_steps: int = 300) -> int:
    """Epochs the cross-validation searches: ``epochs``, or more so that a fold model takes at least
    ``min_steps`` optimizer steps (50 sequences in batches of 16 give 3 steps an epoch: 30 epochs would be
    90 steps, too few to fit anything)."""
    per_epoch = math.ceil(n_train * (folds - 1) / folds / batch_size)
    return max(epochs, math.ceil(min_steps / per_epoch))


def resolve_stride(lengths, stride: int | None) -> tuple[int, str]:
    """The downsampling stride: given, or :func:`auto_stride`."""
    if stride is not None:
        return stride, f"--downsample {stride}" + ("" if stride > 1 else " (full length)")
    return auto_stride(lengths)


def downsampled(data: SequenceSet, stride: int) -> SequenceSet:
    """``data`` with every sequence shortened by block means of ``stride`` steps."""
    if stride == 1:
        return data
    return replace(data, sequences=[downsample(s, stride) for s in data.sequences])


def cross_validate_epochs(train: SequenceSet, model_config: dict, train_config: TrainConfig, *, folds: int = 5,
                          batch_size: int = 16, jitter: float = 0.0, scaling: float = 0.0,
                          progress: bool = True) -> dict:
    """Mean held-out accuracy and loss after each of ``train_config.max_epochs`` epochs over stratified
    folds, and the chosen budget (module docstring). Returns ``{"folds", "accuracy": [E], "loss": [E],
    "epochs", "cv_accuracy"}``."""
    epochs = train_config.max_epochs
    fold_config = replace(train_config, patience=None, restore_best=False, progress=False, max_steps=None,
                          eval_every=None)
    correct, loss = np.zeros(epochs), np.zeros(epochs)
    parts = stratified_folds(train.labels, min(folds, len(train)), seed=train_config.seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(parts), unit="fold", desc="cross-validation", leave=False, dynamic_ncols=True)
    for held in parts:
        kept = np.setdiff1d(np.arange(len(train)), held)
        splits = {"train": train.subset(kept), "valid": train.subset(held)}
        seed_everything(train_config.seed)
        model = build_classifier(train.n_features, len(train.class_names), model_config)
        task = ClassifyTask(splits, *feature_stats(splits["train"]), batch_size=batch_size, seed=train_config.seed,
                            jitter=jitter, scaling=scaling)
        Trainer(model, task, fold_config).fit()
        history = [h for h in task.history if h["split"] == "valid"]
        # pooled over every held-out sequence: counts (exact, so ties between epochs are real ties)
        correct += np.round(np.array([h["accuracy"] for h in history]) * len(held))
        loss += len(held) / len(train) * np.array([h["loss"] for h in history])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    accuracy = correct / len(train)
    best = int(np.lexsort((np.arange(epochs), loss, -accuracy))[0])  # accuracy, then loss, then earlier
    return {"folds": len(parts), "accuracy": accuracy.round(6).tolist(), "loss": loss.round(6).tolist(),
            "epochs": best + 1, "cv_accuracy": float(accuracy[best])}
