"""Forecast and classification metrics on NumPy arrays or tensors (computed in float64).

Forecast arrays share a shape, typically ``(windows, H, C)``; every element counts equally, as
in the ETT benchmark code (mean over windows, steps and channels).

    MSE   = mean((y - f)^2)
    MAE   = mean(|y - f|)
    sMAPE = 100 * mean(2 |y - f| / (|y| + |f|))             (M4 definition; 0/0 counts as 0)
    MASE  = MAE / mean_t |x_t - x_{t-m}|                     (scale: in-sample seasonal-naive MAE
                                                              on the training part, period m)
"""
from __future__ import annotations

import numpy as np

from rnnlab.errors import DataError


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(_numpy(y_true), np.float64)
    f = np.asarray(_numpy(y_pred), np.float64)
    if y.shape != f.shape:
        raise DataError(f"targets and predictions must have the same shape; got {y.shape} and {f.shape}")
    if y.size == 0:
        raise DataError("cannot compute a metric over zero values")
    return y, f


def _numpy(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value


def mse(y_true, y_pred) -> float:
    y, f = _pair(y_true, y_pred)
    return float(np.mean((y - f) ** 2))


def mae(y_true, y_pred) -> float:
    y, f = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y - f)))


def smape(y_true, y_pred) -> float:
    """Symmetric MAPE in percent, 0..200."""
    y, f = _pair(y_true, y_pred)
    denom = np.abs(y) + np.abs(f)
    ratio = np.divide(2 * np.abs(y - f), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100 * np.mean(ratio))


def mase_scale(history, period: int = 1) -> np.ndarray:
    """Per-channel in-sample MAE of the seasonal-naive forecast on ``history (T, C)`` or ``(T,)``."""
    history = np.asarray(_numpy(history), np.float64)
    if period < 1 or len(history) <= period:
        raise DataError(f"MASE needs more than period={period} training values; got {len(history)}")
    scale = np.mean(np.abs(history[period:] - history[:-period]), axis=0)
    if np.any(scale == 0):
        raise DataError("MASE is undefined: the training series is constant at this period")
    return scale


def mase(y_true, y_pred, history, period: int = 1) -> float:
    """MAE scaled per channel by :func:`mase_scale` of ``history``, then averaged over channels."""
    y, f = _pair(y_true, y_pred)
    scale = mase_scale(history, period)
    err = np.abs(y - f) / scale  # broadcasts over the last (channel) axis
    return float(np.mean(err))


def accuracy(labels, predicted) -> float:
    y, f = _pair(labels, predicted)
    return float(np.mean(y == f))


def confusion_matrix(labels, predicted, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` counts; row = true class, column = predicted class."""
    y, f = _pair(labels, predicted)
    y, f = y.astype(np.int64).ravel(), f.astype(np.int64).ravel()
    if y.min() < 0 or f.min() < 0 or max(y.max(), f.max()) >= n_classes:
        raise DataError(f"class indices must lie in [0, {n_classes}); got {min(y.min(), f.min())}..{max(y.max(), f.max())}")
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (y, f), 1)
    return matrix


def forecast_metrics(y_true, y_pred, history=None, period: int = 1) -> dict[str, float]:
    """MSE, MAE, sMAPE, and MASE when a training ``history`` is given."""
    out = {"mse": mse(y_true, y_pred), "mae": mae(y_true, y_pred), "smape": smape(y_true, y_pred)}
    if history is not None:
        out["mase"] = mase(y_true, y_pred, history, period)
    return out
