"""Which forecast a run should use: the recurrent model, a baseline, or both averaged, chosen on validation.

A recurrent forecaster trained on a short or simple series can lose to its own baselines; a run must
not leave the user to find that out on the test set. After training, every candidate forecasts every
validation window (the test period is never looked at):

    naive            f[h] = x[L-1]
    seasonal_naive   f[h] = x[L - m + (h mod m)]                 (when 1 < m <= L)
    linear           ridge map R^L -> R^H fitted on the training windows
    recurrent        the trained model (best validation loss)
    ensemble         (recurrent + b*) / 2, b* = the baseline with the lowest validation MASE

and is scored by MASE on the original scale (errors divided by the in-sample MAE of the
seasonal-naive forecast on the training rows; 1.0 = as good as that in sample). The candidate with
the lowest validation MASE is chosen, except that a simpler candidate (in the order above) within
``tolerance`` (2%) of the best is preferred: the validation period of a short series holds only a few
windows, so small differences are noise, and the simpler model is the one that generalises then.

Caveat: validation also picked the recurrent model's best epoch and the linear map's ridge penalty, so
its scores are slightly optimistic for both; the test scores in run.json are the honest ones.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rnnlab.data.series_windows import ForecastData
from rnnlab.errors import ConfigError
from rnnlab.models.baselines import FittedBaselines
from rnnlab.tasks.forecast import evaluate_split, original_scale_metrics

CANDIDATES = ("naive", "seasonal_naive", "linear", "recurrent", "ensemble")  # simplest first
TOLERANCE = 0.02


def candidate_forecasts(model, data: ForecastData, split: str, baselines: FittedBaselines, *,
                        ensemble_with: str | None = None, batch_size: int = 512) -> tuple[Tensor, dict[str, Tensor]]:
    """``(target (N, H, C), {candidate: forecast (N, H, C)})`` on every window of ``split``, scaled units.

    ``model=None`` leaves out the recurrent model and the ensemble (baselines only).
    """
    C = data.n_targets
    targets, forecasts = [], {name: [] for name in baselines.names}
    for batch in data.batches(split, batch_size=batch_size):
        targets.append(batch["y"])
        x = batch["x"][..., :C].double()
        for name in baselines.names:
            forecasts[name].append(baselines.forecast(name, x).float())
    out = {name: torch.cat(parts) for name, parts in forecasts.items()}
    if model is not None:
        out["recurrent"] = evaluate_split(model, data, split, batch_size=batch_size)["point"]
        if ensemble_with is not None:
            out["ensemble"] = (out["recurrent"] + out[ensemble_with]) / 2
    return torch.cat(targets), out


def score(data: ForecastData, target: Tensor, forecasts: dict[str, Tensor], period: int) -> dict[str, dict]:
    """MASE and sMAPE on the original scale of each candidate (:func:`original_scale_metrics`)."""
    return {name: {key: value for key, value in original_scale_metrics(data, target, forecast, period).items()
                   if key in ("mase", "smape")}
            for name, forecast in forecasts.items()}


def choose(scores: dict[str, dict], tolerance: float = TOLERANCE) -> tuple[str, str]:
    """``(chosen, reason)``: the simplest candidate within ``tolerance`` of the lowest MASE."""
    if tolerance < 0:
        raise ConfigError(f"tolerance must be >= 0; got {tolerance}")
    usable = {name: row["mase"] for name, row in scores.items() if np.isfinite(row.get("mase", np.nan))}
    if not usable:
        raise ConfigError(f"no candidate has a finite validation MASE: {scores}")
    best = min(usable, key=usable.get)
    order = [name for name in CANDIDATES if name in usable] + sorted(set(usable) - set(CANDIDATES))
    chosen = next(name for name in order if usable[name] <= usable[best] * (1 + tolerance))
    others = ", ".join(f"{name} {usable[name]:.3f}" for name in order if name != chosen)
    if chosen == best:
        reason = f"lowest validation MASE {usable[chosen]:.3f} (others: {others})"
    else:
        reason = (f"validation MASE {usable[chosen]:.3f}, within {tolerance:.0%} of the best ({best} "
                  f"{usable[best]:.3f}), and simpler (others: {others})")
    return chosen, reason


def select_model(model, data: ForecastData, baselines: FittedBaselines, period: int, *, ensemble: bool = True,
                 tolerance: float = TOLERANCE) -> dict:
    """Score every candidate on the validation windows and choose; the dict run.json stores as "choice".

    ``{"chosen", "reason", "validation": {candidate: {"mase", "smape"}}, "ensemble_with", "windows",
    "tolerance"}``.
    """
    target, forecasts = candidate_forecasts(model, data, "valid", baselines)
    scores = score(data, target, forecasts, period)
    ensemble_with = None
    if ensemble and model is not None:
        ensemble_with = min(baselines.names, key=lambda name: scores[name]["mase"])
        forecasts["ensemble"] = (forecasts["recurrent"] + forecasts[ensemble_with]) / 2
        scores["ensemble"] = score(data, target, {"ensemble": forecasts["ensemble"]}, period)["ensemble"]
    chosen, reason = choose(scores, tolerance)
    return {"chosen": chosen, "reason": reason, "validation": scores, "ensemble_with": ensemble_with,
            "windows": int(len(target)), "tolerance": tolerance}


def describe(choice: dict) -> str:
    """One line for the terminal: what is used and why."""
    name = choice["chosen"]
    if name == "ensemble":
        name = f"ensemble (recurrent + {choice['ensemble_with']}) / 2"
    return f"chosen: {name} — {choice['reason']}, on {choice['windows']} validation windows"
