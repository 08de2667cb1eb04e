"""Plots for rnnlab: arrays in, a matplotlib Figure out (Agg backend, no display needed).

Save with :func:`save_png` (atomic, closes the figure). Every function takes plain numbers or
numpy arrays and knows nothing about models or tasks: learning curves and metric against length
(the lab), gradient flow, forecasts with intervals, confusion matrices.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import io as _io

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rnnlab.io import atomic_write_bytes


def steps_to_solve(lengths, steps: dict, *, budget: int, xlabel: str = "gap / sequence length",
                   title: str | None = None) -> Figure:
    """Sample complexity: training steps until solved against length, log-log, one line per model.

    Args:
        lengths: (L,) the x values.
        steps: model name -> (L, S) array of the step at which each seed solved the task; inf = not solved
            within the run's budget (drawn as an open marker at ``budget``), NaN = not run (not drawn).
        budget: the step budget of the runs.
    The line joins the median over seeds where every seed solved; a model that never solves draws only markers.
    """
    x = np.asarray(lengths, dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for index, (name, runs) in enumerate(steps.items()):
        runs = np.asarray(runs, dtype=float).reshape(len(x), -1)  # (L, S)
        color = f"C{index % 10}"
        ran = ~np.isnan(runs)
        all_solved = ran.any(axis=1) & np.all(np.isfinite(runs) | ~ran, axis=1)
        median = [np.median(row[np.isfinite(row)]) for row in runs[all_solved]]
        ax.plot(x[all_solved], median, marker="o", color=color, label=name)
        for column in runs.T:
            ax.scatter(x, np.where(np.isfinite(column), column, np.nan), color=color, s=10, alpha=0.5)
        unsolved = np.isinf(runs).sum(axis=1)  # seeds that ran without a solve at each length
        jitter = 1 + 0.04 * (index - len(steps) / 2)  # keep models' "not solved" markers apart
        ax.scatter(x[unsolved > 0] * jitter, np.full(int((unsolved > 0).sum()), float(budget)), facecolors="none",
                   edgecolors=color, s=28 + 14 * unsolved[unsolved > 0], linewidths=1.2)
    ax.axhline(budget, color="gray", linestyle=":", linewidth=1, label=f"budget ({budget:,} steps): open = not solved")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in x])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training steps until solved")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def metric_by_length(lengths, values: dict, *, ylabel: str, xlabel: str = "gap / sequence length",
                     chance: float | None = None, title: str | None = None, logy: bool = False) -> Figure:
    """One line per model: the mean over seeds against length, with the seed spread.

    Args:
        lengths: (L,) the x values.
        values: model name -> (L, S) array, one column per seed; NaN marks a run that is missing.
        chance: draws a dashed line at the chance (or baseline) level.
    The band spans the smallest to the largest seed; each seed is also a dot.
    """
    x = np.asarray(lengths, dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, runs in values.items():
        runs = np.asarray(runs, dtype=float).reshape(len(x), -1)  # (L, S)
        has = ~np.all(np.isnan(runs), axis=1)
        if not has.any():
            continue
        mean = np.nanmean(runs[has], axis=1)
        line, = ax.plot(x[has], mean, marker="o", label=name)
        if runs.shape[1] > 1:
            ax.fill_between(x[has], np.nanmin(runs[has], axis=1), np.nanmax(runs[has], axis=1),
                            color=line.get_color(), alpha=0.15, linewidth=0)
        for column in runs.T:
            ax.scatter(x, column, color=line.get_color(), s=9, alpha=0.5)
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle="--", linewidth=1, label="chance / baseline")
    ax.set_xscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in x])
    ax.minorticks_off()
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gradient_flow(curves: dict, *, title: str | None = None, ylabel: str = "mean ||dL/dh_t||") -> Figure:
    """Gradient norm against distance T - t on a log scale, one line per curve.

    Args:
        curves: name -> (T,) norms indexed by step t (the last entry is the loss step, distance 0).
    Zeros (underflow) are left out, since a log axis cannot show them.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, norms in curves.items():
        y = np.asarray(norms, dtype=float)[::-1]  # index = distance
        d = np.arange(len(y))
        keep = np.isfinite(y) & (y > 0)
        ax.plot(d[keep], y[keep], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("distance from the loss, T - t (steps)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def learning_curves(curves: dict, *, ylabel: str, chance: float | None = None, title: str | None = None,
                    logy: bool = False, styles: dict | None = None) -> Figure:
    """Metric against training step, one line per run: name -> ((N,) steps, (N,) values).

    ``styles`` (optional): name -> matplotlib line keywords (e.g. ``{"color": "C0", "linestyle": "--"}``).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, (steps, values) in curves.items():
        ax.plot(np.asarray(steps, dtype=float), np.asarray(values, dtype=float), label=name,
                **(styles or {}).get(name, {}))
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle="--", linewidth=1, label="chance / baseline")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


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
    """Write ``fig`` as a PNG atomically (a killed write never leaves half an image) and close it."""


    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
