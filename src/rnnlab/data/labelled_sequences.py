"""Labelled variable-length multivariate sequences for classification.

A :class:`SequenceSet` is a list of arrays ``(T_i, F)`` with one integer label each. Sources:

* the UEA/UCR ``.ts`` format (:func:`load_ts`), e.g. JapaneseVowels (Kudo et al. 1999: 9 speakers,
  12 LPC cepstrum coefficients, lengths 7..29, 270 training / 370 test utterances) read from the
  data files inside the ``aeon`` wheel (:func:`load_japanese_vowels`; aeon itself is never imported);
* a long-format CSV (:func:`load_sequence_csv`): one row per time step, a sequence-id column, a
  label column constant within a sequence, and numeric feature columns, rows in time order.

Batches (:func:`pad`) are ``x (B, T_max, F)`` padded with zeros, ``lengths (B,)``, ``y (B,)``.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnlab.data.columns import index_like_columns, read_csv_file
from rnnlab.errors import DataError

AEON_HINT = "pip install aeon  (or: pip install 'rnnlab[classify]')"


@dataclass
class SequenceSet:
    sequences: list  # of float32 arrays (T_i, F)
    labels: np.ndarray  # (N,) int64 in [0, n_classes)
    class_names: list[str]
    feature_names: list[str] = field(default_factory=list)  # CSV columns, in feature order
    ids: list = field(default_factory=list)  # the CSV's sequence ids, in order
    excluded: dict = field(default_factory=dict)  # columns left out of the default features, with the reason

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def n_features(self) -> int:
        return self.sequences[0].shape[1]

    def subset(self, index) -> SequenceSet:
        return SequenceSet([self.sequences[i] for i in index], self.labels[index], self.class_names,
                           self.feature_names, [self.ids[i] for i in index] if self.ids else [], self.excluded)


def load_ts(path, class_names: list[str] | None = None) -> SequenceSet:
    """Parse a ``.ts`` file: header lines start with ``#`` or ``@``; each data line holds the
    dimensions separated by ``:``, values by ``,``, the class label last."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f".ts file not found: {path}")
    sequences, labels, declared = [], [], None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):
                if line.lower().startswith("@classlabel"):
                    declared = line.split()[2:]
                continue
            *dims, label = line.split(":")
            try:
                columns = [np.array([float(v) for v in dim.split(",")], np.float32) for dim in dims]
            except ValueError:
                raise DataError(f"{path} line {number}: a value is not a number") from None
            if len({len(c) for c in columns}) != 1:
                raise DataError(f"{path} line {number}: dimensions have different lengths {[len(c) for c in columns]}")
            sequences.append(np.stack(columns, axis=1))  # (T, F)
            labels.append(label.strip())
    if not sequences:
        raise DataError(f"{path} holds no sequences")
    names = class_names or declared or sorted(set(labels))
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not among the classes {names}")
    lookup = {name: i for i, name in enumerate(names)}
    return SequenceSet(sequences, np.array([lookup[label] for label in labels], np.int64), list(names))


def aeon_data_dir() -> Path:
    """Where the installed aeon wheel keeps its bundled data sets (found without importing aeon)."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"JapaneseVowels ships in the optional 'aeon' package, which is not installed: {AEON_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def load_japanese_vowels(split: str) -> SequenceSet:
    """JapaneseVowels ``split`` = "train" (270) or "test" (370), labels "1".."9" -> 0..8."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test'; got {split!r}")
    return load_ts(aeon_data_dir() / "JapaneseVowels" / f"JapaneseVowels_{split.upper()}.ts")


def load_sequence_csv(path, *, id_col: str, label_col: str | None, features=None,
                      class_names: list[str] | None = None) -> SequenceSet:
    """Long-format CSV -> :class:`SequenceSet`; sequences in order of first appearance.

    ``features=None`` takes every column but the id and label columns, except columns that number the
    steps (:func:`rnnlab.data.columns.index_like_columns`), which are listed in ``excluded``.
    ``label_col=None`` reads unlabelled sequences (labels all 0) for prediction; ``class_names``
    fixes the label order (e.g. the one a model was trained with).
    """
    frame = read_csv_file(path, what="sequence CSV")
    needed = [id_col] + ([label_col] if label_col else [])
    missing = [c for c in needed + list(features or []) if c not in frame.columns]
    if missing:
        raise DataError(f"columns {missing} not found in {path}; it has {list(frame.columns)}")
    excluded: dict[str, str] = {}
    if features:
        features = list(features)
    else:
        candidates = [c for c in frame.columns if c not in needed]
        excluded = index_like_columns(frame, candidates, group=id_col)
        features = [c for c in candidates if c not in excluded]
        if not features:
            raise DataError(f"{path} has no feature columns besides {needed}"
                            + (f" and index-like {sorted(excluded)}; name them with --features" if excluded else ""))
    values = frame[features].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{path}: feature {features[col]!r} at row {row + 1} is missing, infinite or not a number "
                        f"({int(bad.sum())} such cells); clean the file before classifying")
    raw_labels, sequences, ids = [], [], []
    for key, group in frame.groupby(id_col, sort=False):
        sequences.append(values.loc[group.index].to_numpy(np.float32))
        ids.append(key)
        if label_col:
            labels = group[label_col].astype(str).unique()
            if len(labels) != 1:
                raise DataError(f"sequence {group[id_col].iloc[0]!r} has several labels {list(labels)}")
            raw_labels.append(labels[0])
    names = class_names or sorted(set(raw_labels)) or ["0"]
    unknown = sorted(set(raw_labels) - set(names))
    if unknown:
        raise DataError(f"labels {unknown} were not seen in training; known classes {names}")
    lookup = {name: i for i, name in enumerate(names)}
    labels = np.array([lookup[x] for x in raw_labels] if label_col else [0] * len(sequences), np.int64)
    return SequenceSet(sequences, labels, list(names), list(features), ids, excluded)


def feature_stats(data: SequenceSet) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over every time step of every sequence (fit on training data only)."""
    stacked = np.concatenate(data.sequences, axis=0)
    std = stacked.std(axis=0)
    return stacked.mean(axis=0), np.where(std > 1e-12, std, 1.0)


def pad(sequences, labels, mean=None, std=None, max_len: int | None = None) -> dict[str, torch.Tensor]:
    """Standardise and pad to ``max_len`` (default: the longest): ``x (B, T, F)``, ``lengths``, ``y``."""
    lengths = [len(s) for s in sequences]
    T = max_len or max(lengths)
    if T < max(lengths):
        raise DataError(f"max_len {T} is shorter than the longest sequence ({max(lengths)})")
    x = np.zeros((len(sequences), T, sequences[0].shape[1]), np.float32)
    for i, s in enumerate(sequences):
        x[i, :len(s)] = s if mean is None else (s - mean) / std
    return {"x": torch.from_numpy(x), "lengths": torch.tensor(lengths, dtype=torch.int64),
            "y": torch.as_tensor(np.asarray(labels), dtype=torch.int64)}
