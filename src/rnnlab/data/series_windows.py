"""Time splits, a scaler fitted on the training rows only, and look-back/horizon windows.

A window starting at row ``i`` reads the look-back rows ``[i, i + L)`` and predicts the target rows
``[i + L, i + L + H)``. A :class:`Split` names the rows whose *targets* it owns: a window belongs
to a split when all of its ``H`` target rows lie inside ``[start, end)``. Its look-back may reach
back into the previous split (that past is known at the forecast origin), but no training window
ever has a target in the validation or test period, and every window of the test period is
evaluated — batches are never dropped (:class:`WindowBatches`).

The ETT protocol (Zhou et al. 2021, kept by DLinear, PatchTST and SegRNN) is
:func:`ett_split`: 12 / 4 / 4 months of 30 days for train / validation / test, scaler fitted on
the 12 training months.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from rnnlab.errors import ConfigError, DataError


@dataclass(frozen=True)
class Split:
    """Target rows ``[start, end)`` owned by one part of a time split."""

    name: str
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


def check_window(lookback: int, horizon: int) -> None:
    """Reject non-positive look-back or horizon with a :class:`ConfigError`."""
    for name, value in (("horizon", horizon), ("lookback", lookback)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer number of steps; got {value!r}")


def ratio_split(n: int, ratios=(0.7, 0.1, 0.2)) -> dict[str, Split]:
    """Chronological train/valid/test split of ``n`` rows by fractions of the rows (no shuffling)."""
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1) > 1e-6:
        raise ConfigError(f"ratios must be three non-negative fractions summing to 1; got {ratios}")
    train_end = int(round(n * ratios[0]))
    val_end = int(round(n * (ratios[0] + ratios[1])))
    return {"train": Split("train", 0, train_end), "valid": Split("valid", train_end, val_end),
            "test": Split("test", val_end, n)}


def tail_split(n: int, n_test: int, n_val: int = 0) -> dict[str, Split]:
    """The last ``n_test`` rows are the test period, the ``n_val`` before them validation."""
    if n_test <= 0 or n_val < 0 or n_test + n_val >= n:
        raise DataError(f"cannot hold out {n_test} test and {n_val} validation rows from a series of {n}")
    return {"train": Split("train", 0, n - n_test - n_val), "valid": Split("valid", n - n_test - n_val, n - n_test),
            "test": Split("test", n - n_test, n)}


def ett_split(n: int, steps_per_hour: int = 1) -> dict[str, Split]:
    """The ETT long-horizon protocol: first 12 / next 4 / next 4 months of 30 days.

    ``steps_per_hour`` is 1 for ETTh1/ETTh2 and 4 for the 15-minute ETTm sets. Rows beyond 20
    months are not used, as in the reference code.
    """
    month = 30 * 24 * steps_per_hour
    if n < 20 * month:
        raise DataError(f"the ETT protocol needs 20 months = {20 * month} rows; got {n}")
    return {"train": Split("train", 0, 12 * month), "valid": Split("valid", 12 * month, 16 * month),
            "test": Split("test", 16 * month, 20 * month)}


def window_starts(split: Split, lookback: int, horizon: int, stride: int = 1) -> np.ndarray:
    """Start rows ``i`` of every window whose targets ``[i+L, i+L+H)`` lie inside ``split``.

    Raises :class:`DataError` when the split is too short to hold one window.
    """
    check_window(lookback, horizon)
    first = max(split.start - lookback, 0)
    last = split.end - lookback - horizon
    if last < first:
        have = split.end - first
        raise DataError(
            f"the {split.name} part has {have} usable rows (rows {first}..{split.end - 1}), fewer than "
            f"lookback + horizon = {lookback} + {horizon} = {lookback + horizon}; use a shorter lookback "
            "or horizon, or a longer series"
        )
    starts = np.arange(first, last + 1, stride, dtype=np.int64)
    if starts[-1] != last:  # keep the last window even when the stride skips it
        starts = np.append(starts, last)
    return starts


class StandardScaler:
    """Per-column ``(x - mean) / std`` with statistics from the rows it is fitted on only.

    A constant column gets ``std = 1`` so it maps to zero instead of dividing by zero.
    """

    def __init__(self, mean: np.ndarray | None = None, std: np.ndarray | None = None):
        self.mean = None if mean is None else np.asarray(mean, np.float64)
        self.std = None if std is None else np.asarray(std, np.float64)

    def fit(self, values: np.ndarray) -> StandardScaler:
        values = np.asarray(values, np.float64)
        if len(values) == 0:
            raise DataError("cannot fit a scaler on zero rows")
        self.mean = values.mean(axis=0)
        std = values.std(axis=0)
        self.std = np.where(std > 1e-12, std, 1.0)
        return self

    def _check(self, values):
        if self.mean is None:
            raise DataError("the scaler is not fitted")
        if np.shape(values)[-1] != len(self.mean):
            raise DataError(f"scaler fitted on {len(self.mean)} columns; got {np.shape(values)[-1]}")

    def transform(self, values):
        self._check(values)
        if torch.is_tensor(values):
            return (values - torch.as_tensor(self.mean, dtype=values.dtype)) / torch.as_tensor(self.std, dtype=values.dtype)
        return ((np.asarray(values, np.float64) - self.mean) / self.std).astype(np.float32)

    def inverse(self, values):
        """Undo :meth:`transform`; a scale-only quantity (a standard deviation) uses :meth:`inverse_scale`."""
        self._check(values)
        if torch.is_tensor(values):
            return values * torch.as_tensor(self.std, dtype=values.dtype) + torch.as_tensor(self.mean, dtype=values.dtype)
        return (np.asarray(values, np.float64) * self.std + self.mean).astype(np.float32)

    def inverse_scale(self, values):
        self._check(values)
        if torch.is_tensor(values):
            return values * torch.as_tensor(self.std, dtype=values.dtype)
        return (np.asarray(values, np.float64) * self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> StandardScaler:
        return cls(data["mean"], data["std"])


class WindowBatches:
    """Batches of windows gathered by fancy indexing (no per-item Python loop); never drops any.

    Args:
        inputs: ``(N, F)`` per-step model inputs (scaled targets, past covariates, calendar).
        targets: ``(N, C)`` scaled targets.
        future: ``(N, K)`` features known in the future (calendar) — read over the horizon rows.
        starts: window start rows, from :func:`window_starts`.
        shuffle: shuffle the window order with ``seed`` (training); the split itself never mixes.

    Each batch is a dict ``x (B, L, F)``, ``y (B, H, C)``, ``future (B, H, K)``, ``start (B,)``.
    """

    def __init__(self, inputs, targets, future, starts, lookback: int, horizon: int, *,
                 batch_size: int = 64, shuffle: bool = False, seed: int = 0):
        check_window(lookback, horizon)
        self.inputs = torch.as_tensor(np.asarray(inputs, np.float32))
        self.targets = torch.as_tensor(np.asarray(targets, np.float32))
        self.future = torch.as_tensor(np.asarray(future, np.float32))
        self.starts = torch.as_tensor(np.asarray(starts, np.int64))
        if len(self.starts) and int(self.starts.max()) + lookback + horizon > len(self.inputs):
            raise DataError(f"a window runs past the end of the {len(self.inputs)} rows")
        self.lookback, self.horizon = lookback, horizon
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed

    def __len__(self) -> int:
        return math.ceil(len(self.starts) / self.batch_size)

    @property
    def n_windows(self) -> int:
        return len(self.starts)

    def __iter__(self):
        # The same seed gives the same order on every pass (the trainer's resume relies on that).
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(self.starts), generator=generator) if self.shuffle else torch.arange(len(self.starts))
        past_steps = torch.arange(self.lookback)
        future_steps = torch.arange(self.lookback, self.lookback + self.horizon)
        for k in range(0, len(order), self.batch_size):
            start = self.starts[order[k:k + self.batch_size]]
            rows_in = start[:, None] + past_steps  # (B, L)
            rows_out = start[:, None] + future_steps  # (B, H)
            yield {"x": self.inputs[rows_in], "y": self.targets[rows_out],
                   "future": self.future[rows_out], "start": start}


class ForecastData:
    """A :class:`~rnnlab.data.series.TimeSeries` scaled for a model, with its splits.

    The target and past-covariate scalers are fitted on the training rows ``[0, train.end)``
    only (or passed in, e.g. from a checkpoint). Per-step model inputs are
    ``[scaled targets | scaled past covariates | calendar]``, so ``n_inputs = C + P + K``.
    """

    def __init__(self, series, splits: dict[str, Split], lookback: int, horizon: int, *,
                 target_scaler: StandardScaler | None = None, past_scaler: StandardScaler | None = None):
        check_window(lookback, horizon)
        self.series, self.splits = series, splits
        self.lookback, self.horizon = lookback, horizon
        train_end = splits["train"].end if "train" in splits else None
        if target_scaler is None:
            target_scaler = StandardScaler().fit(series.target[:train_end])
        if past_scaler is None:
            past_scaler = StandardScaler().fit(series.past[:train_end]) if series.past.shape[1] else StandardScaler(
                np.zeros(0), np.ones(0))
        self.target_scaler, self.past_scaler = target_scaler, past_scaler
        self.targets = target_scaler.transform(series.target)  # (N, C)
        past = past_scaler.transform(series.past) if series.past.shape[1] else series.past
        self.future = series.calendar()  # (N, K)
        self.inputs = np.concatenate([self.targets, past, self.future], axis=1)  # (N, C + P + K)

    @property
    def n_targets(self) -> int:
        return self.targets.shape[1]

    @property
    def n_past(self) -> int:
        return self.series.past.shape[1]

    @property
    def n_calendar(self) -> int:
        return self.future.shape[1]

    def starts(self, split: str, stride: int = 1) -> np.ndarray:
        return window_starts(self.splits[split], self.lookback, self.horizon, stride)

    def batches(self, split: str, *, batch_size: int = 64, shuffle: bool = False, stride: int = 1,
                seed: int = 0) -> WindowBatches:
        return WindowBatches(self.inputs, self.targets, self.future, self.starts(split, stride), self.lookback,
                             self.horizon, batch_size=batch_size, shuffle=shuffle, seed=seed)
