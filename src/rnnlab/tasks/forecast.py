"""Forecasting as a task for :class:`rnnlab.train.Trainer`, evaluation on every window, and a
saved forecaster that predicts from a new CSV.

The task follows the trainer's protocol (``train_batches``, ``loss``, ``evaluate``,
``checkpoint_files``). Evaluation walks *all* windows of a split in time order — no batch is
dropped — and reports, in the scaled units the benchmarks use::

    loss  the model's own training loss (MSE / MAE / Gaussian NLL / pinball)
    mse, mae on the point forecast
    coverage  share of targets inside the prediction interval (probabilistic models)

:func:`original_scale_metrics` adds MASE and sMAPE on the original scale (rolling-origin
backtest: one fitted model, forecast origins every ``stride`` steps through the test period).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from rnnlab import metrics
from rnnlab.checkpoint import load_checkpoint
from rnnlab.data.builtin_series import builtin_frame
from rnnlab.data.series import TimeSeries, load_series
from rnnlab.data.series_windows import ForecastData, Split, StandardScaler
from rnnlab.errors import ConfigError, DataError, RunDirError
from rnnlab.models import forecaster as _forecaster  # noqa: F401  (registers "forecaster" for loading)
from rnnlab.models.baselines import FittedBaselines
from rnnlab.rundir import FORECAST_SPEC

SPEC_FILE = FORECAST_SPEC


class ForecastTask:
    """Windows of a :class:`ForecastData` served to the trainer."""

    item_name = "win"

    def __init__(self, data: ForecastData, *, batch_size: int = 64, seed: int = 0, eval_batch_size: int = 512,
                 level: float = 0.8, time_col: str | None = None, fill: str = "raise", source: str | None = None,
                 baselines: FittedBaselines | None = None):
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.eval_batch_size, self.level = eval_batch_size, level
        self.time_col, self.fill, self.source = time_col, fill, source
        self.baselines = baselines  # saved beside the weights, so predict can use a baseline the run chose

    def train_batches(self, epoch: int):
        # A fresh, deterministic order per epoch (seed, epoch), as the trainer's resume requires.
        return self.data.batches("train", batch_size=self.batch_size, shuffle=True, seed=self.seed * 100_003 + epoch)

    def num_batches(self, epoch: int) -> int:
        return -(-len(self.data.starts("train")) // self.batch_size)

    def loss(self, model, batch, state):
        params = model(batch["x"], batch["future"])
        return model.loss(params, batch["y"]), None, len(batch["x"])

    def evaluate(self, model, split: str) -> dict[str, float]:
        return evaluate_split(model, self.data, split, batch_size=self.eval_batch_size, level=self.level)["metrics"]

    def checkpoint_files(self) -> dict[str, str]:
        spec = spec_of(self.data, time_col=self.time_col, fill=self.fill, source=self.source)
        if self.baselines is not None:
            spec["baselines"] = self.baselines.to_dict()
        return {SPEC_FILE: json.dumps(spec, indent=1)}


def predict_batches(model, batches, level: float = 0.8) -> dict[str, torch.Tensor]:
    """Run ``model`` over every batch: ``params (N,H,C,Q)``, ``point``, ``y``, optional ``lower``/``upper``."""
    was_training = model.training
    model.eval()
    parts: dict[str, list] = {"params": [], "y": [], "start": []}
    with torch.no_grad():
        for batch in batches:
            parts["params"].append(model(batch["x"], batch["future"]))
            parts["y"].append(batch["y"])
            parts["start"].append(batch["start"])
    model.train(was_training)
    out = {k: torch.cat(v) for k, v in parts.items()}
    out["point"] = model.point(out["params"])
    bounds = model.interval(out["params"], level)
    if bounds is not None:
        out["lower"], out["upper"] = bounds
    return out


def evaluate_split(model, data: ForecastData, split: str, *, batch_size: int = 512, level: float = 0.8,
                   stride: int = 1) -> dict:
    """Predictions and scaled-unit metrics over all windows of ``split`` (see module docstring)."""
    out = predict_batches(model, data.batches(split, batch_size=batch_size, stride=stride), level)
    found = {"loss": float(model.loss(out["params"], out["y"])), "mse": metrics.mse(out["y"], out["point"]),
             "mae": metrics.mae(out["y"], out["point"]), "windows": len(out["y"])}
    if "lower" in out:
        inside = (out["y"] >= out["lower"]) & (out["y"] <= out["upper"])
        found["coverage"] = float(inside.double().mean())
    out["metrics"] = found
    return out


def original_scale_metrics(data: ForecastData, y_scaled, forecast_scaled, period: int = 1) -> dict[str, float]:
    """MASE (scale from the training rows at ``period``) and sMAPE on the original units."""
    y = data.target_scaler.inverse(np.asarray(y_scaled))
    f = data.target_scaler.inverse(np.asarray(forecast_scaled))
    history = data.series.target[: data.splits["train"].end]
    return {"mase": robust_mase(y, f, history, period), "smape": metrics.smape(y, f),
            "mae_original": metrics.mae(y, f)}


def robust_mase(y, f, history, period: int = 1) -> float:
    """MASE at ``period``; where the training rows repeat exactly at that period (a zero scale) the
    one-step scale is used instead, and NaN where that is zero too (a constant series)."""
    for lag in dict.fromkeys((period, 1)):
        try:
            return metrics.mase(y, f, history, lag)
        except DataError:
            continue
    return float("nan")


# ---------------------------------------------------------------------------- saved forecasters
def _csv_header(path) -> list[str]:
    try:
        return list(pd.read_csv(path, nrows=0).columns)
    except FileNotFoundError:
        raise DataError(f"CSV file not found: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"cannot parse {path} as CSV: {error}") from None


def spec_of(data: ForecastData, *, time_col=None, fill="raise", source=None) -> dict:
    """What predicting on a new CSV needs besides the weights: columns, scalers, grid, options."""
    s = data.series
    return {"targets": s.target_names, "past_covariates": s.past_names, "calendar": s.use_calendar,
            "time_col": time_col, "fill": fill, "source": source, "step": s.step.freqstr, "lookback": data.lookback,
            "horizon": data.horizon, "target_scaler": data.target_scaler.to_dict(),
            "past_scaler": data.past_scaler.to_dict(), "train_end": data.splits["train"].end}


class SavedForecaster:
    """A trained forecaster loaded from a run directory, with its data spec."""

    def __init__(self, run_dir, which: str = "best"):
        ckpt = load_checkpoint(run_dir, which=which)
        if SPEC_FILE not in ckpt.files:
            raise RunDirError(f"{ckpt.directory} holds no {SPEC_FILE}; it is not a forecaster run")
        self.model, self.spec = ckpt.model, json.loads(ckpt.files[SPEC_FILE])
        self.model.eval()

    def load(self, source=None, fill: str | None = None) -> TimeSeries:
        """Load a CSV/DataFrame holding the columns the model was trained on (extra columns are ignored).

        ``source=None`` reloads the built-in series the model was trained on, if it was.
        """
        spec = self.spec
        if source is None:
            if not str(spec.get("source") or "").startswith("builtin:"):
                raise DataError("this forecaster was trained on a CSV file; pass the data to forecast from (--csv)")
            source = builtin_frame(spec["source"].split(":", 1)[1])
        columns = list(source.columns) if isinstance(source, pd.DataFrame) else _csv_header(source)
        needed = spec["targets"] + spec["past_covariates"]
        missing = [name for name in needed if name not in columns]
        if missing:
            raise DataError(f"the data lacks columns {missing} that this forecaster was trained on (targets "
                            f"{spec['targets']}, past covariates {spec['past_covariates']}); it has {columns}")
        series = load_series(source, targets=spec["targets"], past_covariates=spec["past_covariates"],
                             time_col=spec["time_col"], calendar=spec["calendar"], fill=fill or spec["fill"])
        if series.step.freqstr != spec["step"]:
            raise DataError(f"the forecaster was trained on a series with step {spec['step']}; this one steps "
                            f"{series.step.freqstr}")
        if len(series) < spec["lookback"]:
            raise DataError(f"the model reads a look-back of {spec['lookback']} steps; the data has {len(series)} rows")
        return series

    def data(self, series: TimeSeries) -> ForecastData:
        """Scale ``series`` with the training scalers (never refitted on new data)."""
        spec, n = self.spec, len(series)
        return ForecastData(series, {"all": Split("all", 0, n)}, spec["lookback"], spec["horizon"],
                            target_scaler=StandardScaler.from_dict(spec["target_scaler"]),
                            past_scaler=StandardScaler.from_dict(spec["past_scaler"]))

    @property
    def baselines(self) -> FittedBaselines | None:
        """The run's fitted baselines (``None`` for runs saved before they were stored)."""
        spec = self.spec.get("baselines")
        return FittedBaselines.from_dict(spec) if spec else None

    def forecast(self, series: TimeSeries, level: float = 0.8, *, use: str = "recurrent",
                 ensemble_with: str | None = None) -> pd.DataFrame:
        """Forecast the ``horizon`` steps after the end of ``series``; original units, one row per step.

        ``use`` is the candidate the run chose (:mod:`rnnlab.runs.model_choice`): "recurrent" (with its
        interval, if probabilistic), a baseline ("naive", "seasonal_naive", "linear"; point only), or
        "ensemble" = (recurrent + ``ensemble_with``) / 2 in scaled units (point only).
        """
        data, L = self.data(series), self.spec["lookback"]
        x = torch.as_tensor(data.inputs[-L:]).unsqueeze(0)  # (1, L, F)
        index = series.future_index(self.spec["horizon"])
        future = torch.as_tensor(series.calendar(index)).unsqueeze(0)  # (1, H, K)
        with torch.no_grad():
            params = self.model(x, future)
        scaler = data.target_scaler
        table = {"time": index}
        scaled = self.model.point(params)  # (1, H, C)
        bounds = self.model.interval(params, level) if use == "recurrent" else None
        if use != "recurrent":
            baselines = self.baselines
            if baselines is None:
                raise RunDirError(f"this run stores no baselines, so it cannot forecast with {use!r}")
            name = ensemble_with if use == "ensemble" else use
            if name is None:
                raise ConfigError("an ensemble forecast needs the baseline it averages with")
            base = baselines.forecast(name, x[..., :len(series.target_names)].double()).to(scaled.dtype)
            scaled = (scaled + base) / 2 if use == "ensemble" else base
        point = scaler.inverse(scaled[0].numpy())
        for j, name in enumerate(series.target_names):
            table[name] = point[:, j]
            if bounds is not None:
                table[f"{name}_lower"] = scaler.inverse(bounds[0][0].numpy())[:, j]
                table[f"{name}_upper"] = scaler.inverse(bounds[1][0].numpy())[:, j]
        return pd.DataFrame(table)
