"""Forecast and classification figures (matplotlib Agg): arrays in, figure out.

:func:`forecast_figure` draws, per target, the recent history, the forecast, an optional
prediction interval band and optional actual values over the horizon.
:func:`confusion_figure` draws a confusion matrix with counts.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def forecast_figure(history_time, history, forecast_time, forecast, *, lower=None, upper=None, actual=None,
                    names=None, level: float | None = None, title: str = ""):
    """``history (N, C)``, ``forecast / lower / upper / actual (H, C)`` -> a figure with one panel per target."""
    history = np.asarray(history, float).reshape(len(history_time), -1)
    forecast = np.asarray(forecast, float).reshape(len(forecast_time), -1)
    channels = forecast.shape[1]
    names = names or [f"target {j}" for j in range(channels)]
    fig, axes = plt.subplots(channels, 1, figsize=(9, 2.6 * channels + 0.6), squeeze=False, sharex=True)
    for j, ax in enumerate(axes[:, 0]):
        ax.plot(history_time, history[:, j], color="0.3", lw=1.0, label="history")
        if actual is not None:
            ax.plot(forecast_time, np.asarray(actual, float).reshape(len(forecast_time), -1)[:, j], color="0.3",
                    lw=1.0, ls="--", label="actual")
        if lower is not None and upper is not None:
            lo = np.asarray(lower, float).reshape(len(forecast_time), -1)[:, j]
            hi = np.asarray(upper, float).reshape(len(forecast_time), -1)[:, j]
            band = f"{level:.0%} interval" if level else "interval"
            ax.fill_between(forecast_time, lo, hi, color="tab:blue", alpha=0.25, lw=0, label=band)
        ax.plot(forecast_time, forecast[:, j], color="tab:blue", lw=1.6, label="forecast")
        ax.axvline(forecast_time[0], color="0.6", lw=0.8, ls=":")
        ax.set_ylabel(names[j])
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=4)
    if title:
        axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def confusion_figure(matrix, class_names, title: str = ""):
    """Confusion matrix ``(K, K)`` (rows true, columns predicted) with the count in each cell."""
    matrix = np.asarray(matrix)
    size = 1.0 + 0.45 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                color="white" if count > threshold else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def save_png(fig, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
