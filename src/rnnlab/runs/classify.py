"""Sequence-classification runs end to end: what ``rnnlab classify train`` / ``predict`` call.

Data: JapaneseVowels from the optional ``aeon`` wheel (``source="japanese-vowels"``), or a
long-format CSV (one row per step: sequence id, label, features). The recipe adapts to the data
(:mod:`rnnlab.runs.classify_recipe`): below 200 training sequences the epoch budget is chosen by
k-fold cross-validation on the training set, then the model is trained on all of it; from 200 on, a
validation set for early stopping is held out (``valid_fraction``, chosen at random with the seed).
Sequences longer than 400 steps are shortened by block means. The test set is never used for any
choice. run.json "recipe" says what was chosen and why. Run directory::

    RUN/run.json        config + "results" (test accuracy, confusion matrix, wall time)
    RUN/ckpt-*/         weights + model.json + classify.json (class names, feature scaling)
    RUN/confusion.png   test confusion matrix
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from rnnlab import metrics
from rnnlab.analysis.plots import confusion_figure, save_png
from rnnlab.checkpoint import load_checkpoint
from rnnlab.config import option
from rnnlab.data.labelled_sequences import SequenceSet, feature_stats, load_japanese_vowels, load_sequence_csv
from rnnlab.errors import DataError, RunDirError
from rnnlab.io import atomic_write_text, check_new_file
from rnnlab.models.classifier import POOLING
from rnnlab.nn import RECURRENT
from rnnlab.rundir import CLASSIFY_SPEC, discard_unstarted, prepare_run_dir, update_run_json
from rnnlab.runs.classify_recipe import (
    EPOCH_CHOICES,
    FRONTENDS,
    MIN_STEPS,
    SMALL,
    build_classifier,
    cross_validate_epochs,
    cv_epoch_range,
    downsampled,
    resolve_epoch_choice,
    resolve_stride,
)
from rnnlab.tasks.classify import ClassifyTask
from rnnlab.train import TrainConfig, Trainer, seed_everything

BUILTIN = "japanese-vowels"


@dataclass
class ClassifyRunConfig:
    """What ``rnnlab classify train`` takes (``--threads``, ``--seed``, ``--out`` come from the shared options)."""

    csv: str | None = option(None, "training CSV: one row per time step (sequence id, label, features)",
                             default_text="JapaneseVowels, needs aeon")
    test_csv: str | None = option(None, "test CSV in the same format",
                                  default_text="none: reports the validation or cross-validation accuracy")
    id: str = option("id", "sequence-id column")
    label: str = option("label", "label column (constant within a sequence)")
    features: tuple[str, ...] | None = option(None, "feature columns",
                                              default_text="all others except index/time columns, which are named")
    cell: str = option("gru", "recurrent cell: " + ", ".join(sorted(RECURRENT)))
    hidden: int = option(64, "hidden units per direction", min=1)
    layers: int = option(1, "recurrent layers", min=1)
    dropout: float = option(0.2, "dropout before the output layer", min=0.0, max=1.0, max_open=True)
    bidirectional: bool = option(False, "read each sequence both ways")
    pooling: str = option("mean", "how a sequence becomes one vector", choices=POOLING)
    frontend: str = option("conv", "convolutions (kernel 7, 64 channels, 2 layers) before the cell, or none",
                           choices=FRONTENDS)
    epochs: int = option(30, "passes over the training sequences", min=1)
    lr: float = option(3e-3, "Adam learning rate", min=0.0, min_open=True)
    batch_size: int = option(16, "sequences per batch", min=1)
    patience: int = option(8, "early stop after this many epochs without a better validation loss", min=1)
    valid_fraction: float = option(0.15, "share of training sequences held out for early stopping", min=0.0,
                                   max=1.0, min_open=True, max_open=True)
    epoch_choice: str = option("auto", "epoch budget by k-fold cross-validation on the training set, or early "
                                       "stopping on a held-out split", choices=EPOCH_CHOICES,
                               default_text=f"auto: cv below {SMALL} training sequences, else early-stop")
    folds: int = option(5, "cross-validation folds (--epoch-choice cv)", min=2)
    cv_min_steps: int = option(MIN_STEPS, "cross-validation searches at least this many optimizer steps "
                                          "(more epochs than --epochs when the set is small)", min=0)
    downsample: int | None = option(None, "average every N steps into one (1 = full length)", min=1,
                                    default_text="auto: sequences over 400 steps shortened to about 200")
    jitter: float = option(0.0, "augmentation: std of Gaussian noise added to the standardised features", min=0.0)
    scaling: float = option(0.0, "augmentation: std of a random scale factor (around 1) per sequence and channel",
                            min=0.0)

    def recipe_options(self) -> dict:
        return dict(epoch_choice=self.epoch_choice, folds=self.folds, stride=self.downsample, jitter=self.jitter,
                    scaling=self.scaling, min_steps=self.cv_min_steps)

    def model_options(self) -> dict:
        return dict(cell=self.cell, hidden_size=self.hidden, num_layers=self.layers, dropout=self.dropout,
                    bidirectional=self.bidirectional, pooling=self.pooling, frontend=self.frontend)


def load_sets(source: str = BUILTIN, *, csv=None, test_csv=None, id_col="id", label_col="label",
              features=None) -> tuple[SequenceSet, SequenceSet | None]:
    """``(train, test)`` sequences: the built-in set, or CSV files (test optional)."""
    if csv is None:
        if source != BUILTIN:
            raise DataError(f"unknown built-in data set {source!r}; expected {BUILTIN!r} or --csv")
        return load_japanese_vowels("train"), load_japanese_vowels("test")
    train = load_sequence_csv(csv, id_col=id_col, label_col=label_col, features=features)
    test = None
    if test_csv is not None:
        test = load_sequence_csv(test_csv, id_col=id_col, label_col=label_col, features=features,
                                 class_names=train.class_names)
    return train, test


def train_run(out, train: SequenceSet, test: SequenceSet | None, model_config: dict, train_config: TrainConfig,
              *, valid_fraction: float = 0.15, batch_size: int = 32, command: str = "", source: str = "",
              epoch_choice: str = "auto", folds: int = 5, stride: int | None = None, jitter: float = 0.0,
              scaling: float = 0.0, min_steps: int = MIN_STEPS, on_recipe=None) -> dict:
    """Train into ``out``; return test accuracy and confusion matrix (without a test set: the validation
    split's, or the cross-validated accuracy). ``on_recipe(recipe)`` is called once the recipe is fixed,
    before the (long) training, e.g. to print it."""
    if not 0 < valid_fraction < 1:
        raise DataError(f"valid_fraction must be in (0, 1); got {valid_fraction}")
    if len(train) < 2:
        raise DataError(f"training needs at least 2 sequences (one to train on, one to validate); got {len(train)}")
    mode, mode_why = resolve_epoch_choice(epoch_choice, len(train))
    if mode == "cv" and len(train) < folds:
        raise DataError(f"{folds}-fold cross-validation needs at least {folds} training sequences; got {len(train)} "
                        f"(lower --folds)")
    stride, stride_why = resolve_stride([len(s) for s in train.sequences], stride)
    train = downsampled(train, stride)
    test = downsampled(test, stride) if test is not None else None
    if mode == "cv":
        splits = {"train": train, "valid": train}  # "valid" only logs the training fit; nothing stops on it
    else:
        order = np.random.default_rng(train_config.seed).permutation(len(train))
        n_valid = min(max(1, int(round(valid_fraction * len(train)))), len(train) - 1)
        splits = {"train": train.subset(np.sort(order[n_valid:])), "valid": train.subset(np.sort(order[:n_valid]))}
    if test is not None:
        splits["test"] = test
    model = build_classifier(train.n_features, len(train.class_names), model_config)  # checks the options
    config = model.config
    recipe = {"epoch_choice": mode, "epoch_choice_why": mode_why, "downsample": stride, "downsample_why": stride_why,
              "normalisation": "per channel: mean and std over every step of the training sequences",
              "augment": {"jitter": jitter, "scaling": scaling}}
    run = prepare_run_dir(out, kind="classify", command=command,
                          config={"model": asdict(config), "train": asdict(train_config), "source": source,
                                  "valid_fraction": valid_fraction, "batch_size": batch_size,
                                  "features": list(train.feature_names), "excluded_columns": train.excluded,
                                  "epoch_choice": epoch_choice, "folds": folds, "jitter": jitter, "scaling": scaling},
                          recipe=recipe)
    started = time.perf_counter()
    try:  # a failure while setting up leaves no run directory behind
        if mode == "cv":
            search = cv_epoch_range(len(train), folds, batch_size, train_config.max_epochs, min_steps)
            cv = cross_validate_epochs(train, model_config, replace(train_config, max_epochs=search), folds=folds,
                                       batch_size=batch_size, jitter=jitter, scaling=scaling,
                                       progress=train_config.progress)
            recipe.update(epochs=cv["epochs"], cv=cv, epochs_why=(
                f"{cv['folds']}-fold cross-validation over {search} epochs (at least {min_steps} optimizer steps): "
                f"held-out accuracy "
                f"{cv['cv_accuracy']:.3f} after {cv['epochs']} epochs; then trained on all {len(train)} "
                f"training sequences for {cv['epochs']} epochs"))
            train_config = replace(train_config, max_epochs=cv["epochs"], patience=None, restore_best=False)
        else:
            recipe["epochs_why"] = (f"early stopping on {len(splits['valid'])} held-out sequences (patience "
                                    f"{train_config.patience}, at most {train_config.max_epochs} epochs)")
        update_run_json(run, recipe=recipe)
        if on_recipe is not None:
            on_recipe(recipe)
        seed_everything(train_config.seed)
        model = build_classifier(train.n_features, len(train.class_names), model_config)
        task = ClassifyTask(splits, *feature_stats(train if mode == "cv" else splits["train"]),
                            batch_size=batch_size, seed=train_config.seed, jitter=jitter, scaling=scaling,
                            stride=stride)
        trainer = Trainer(model, task, train_config, run_dir=run)
    except BaseException:
        discard_unstarted(run)
        raise
    summary = trainer.fit()
    wall = time.perf_counter() - started
    results = {"class_names": train.class_names, "train_wall_s": round(wall, 1), "epochs": summary["epochs"]}
    if test is None and mode == "cv":  # no held-out data besides the folds: report their estimate
        results.update(split="cross-validation", accuracy=recipe["cv"]["cv_accuracy"], n=len(train))
    else:
        split = "test" if test is not None else "valid"
        logits, labels = task.predict(model, split)
        predicted = logits.argmax(axis=1)
        matrix = metrics.confusion_matrix(labels, predicted, len(train.class_names))
        results.update(split=split, accuracy=metrics.accuracy(labels, predicted), n=int(len(labels)),
                       confusion=matrix.tolist())
    update_run_json(run, results=results, training=summary)
    if "confusion" not in results:
        return results
    save_png(confusion_figure(np.array(results["confusion"]), train.class_names,
                              title=f"{results['split']} accuracy {results['accuracy']:.3f}"),
             run / "confusion.png")
    return results


def predict_run(run_dir, data: SequenceSet, *, out_csv=None, labelled: bool = True, force: bool = False) -> dict:
    """Class predictions for every sequence of ``data``; CSV (+ accuracy and confusion PNG if labelled)."""
    ckpt = load_checkpoint(run_dir)
    if CLASSIFY_SPEC not in ckpt.files:
        raise RunDirError(f"{ckpt.directory} holds no {CLASSIFY_SPEC}; it is not a classifier run")
    spec = json.loads(ckpt.files[CLASSIFY_SPEC])
    model = ckpt.model.eval()
    if data.n_features != model.config.n_features:
        raise DataError(f"the classifier was trained on {model.config.n_features} features; the data has "
                        f"{data.n_features}")
    data = downsampled(data, spec.get("stride", 1))  # as in training
    task = ClassifyTask({"data": data}, spec["mean"], spec["std"], batch_size=256)
    logits, labels = task.predict(model, "data")
    predicted = logits.argmax(axis=1)
    names = spec["class_names"]
    out_csv = check_new_file(Path(out_csv) if out_csv else Path(run_dir) / "predictions.csv", "predictions CSV",
                             force=force)
    if labelled:
        png = check_new_file(out_csv.with_name(out_csv.stem + "_confusion.png"), "confusion plot", force=force)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({"sequence": data.ids or np.arange(len(data)), "length": [len(s) for s in data.sequences],
                          "predicted": [names[k] for k in predicted]})
    result = {"csv": out_csv, "n": len(data)}
    if labelled:
        table["label"] = [names[k] for k in labels]
        result["accuracy"] = metrics.accuracy(labels, predicted)
        matrix = metrics.confusion_matrix(labels, predicted, len(names))
        result["confusion"] = matrix
        save_png(confusion_figure(matrix, names, title=f"accuracy {result['accuracy']:.3f}"), png)
        result["png"] = png
    atomic_write_text(out_csv, table.to_csv(index=False))
    return result


def saved_spec(run_dir) -> dict:
    """What a saved classifier needs to read new data: class names, feature columns, scaling."""
    ckpt = load_checkpoint(run_dir)
    if CLASSIFY_SPEC not in ckpt.files:
        raise RunDirError(f"{ckpt.directory} holds no {CLASSIFY_SPEC}; it is not a classifier run")
    return json.loads(ckpt.files[CLASSIFY_SPEC])


def run_class_names(run_dir) -> list[str]:
    """The class names a saved classifier was trained with (label order)."""
    return saved_spec(run_dir)["class_names"]
