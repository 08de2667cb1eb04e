"""Forecasting runs end to end: what ``rnnlab forecast train`` / ``predict`` call.

:func:`train_run` loads the series (a CSV or the built-in CO2 series), splits it by time, trains
a :class:`~rnnlab.models.forecaster.Forecaster` with the shared trainer into a run directory, then
evaluates on every test window beside the naive, seasonal-naive and linear baselines::

    RUN/run.json            config + "results" (test metrics of the model and each baseline)
    RUN/metrics.csv         training log (trainer)
    RUN/ckpt-*/             weights (safetensors) + model.json + forecast.json (columns, scalers)
    RUN/test_forecast.png   the last test window: history, forecast, interval, actual values

:func:`predict_run` forecasts the ``horizon`` steps after the end of a CSV with a saved run.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from rnnlab.analysis.plots import forecast_figure, save_png
from rnnlab.data.builtin_series import SEASONAL_PERIOD, load_builtin
from rnnlab.data.series import load_series
from rnnlab.data.series_windows import ForecastData, ratio_split
from rnnlab.errors import ConfigError, RunDirError
from rnnlab.models.baselines import evaluate_baselines
from rnnlab.models.forecaster import Forecaster, ForecasterConfig
from rnnlab.rundir import prepare_run_dir, update_run_json
from rnnlab.tasks.forecast import ForecastTask, SavedForecaster, evaluate_split, original_scale_metrics
from rnnlab.train import TrainConfig, Trainer, seed_everything


def load_source(csv=None, *, targets=None, time_col=None, past_covariates=(), calendar=True, fill="raise",
                reindex=False, builtin: str = "co2"):
    """``(series, source label)``: the CSV if given, else the built-in series."""
    if csv is None:
        return load_builtin(builtin, calendar=calendar), f"builtin:{builtin}"
    series = load_series(csv, targets=targets, time_col=time_col, past_covariates=past_covariates,
                         calendar=calendar, fill=fill, reindex=reindex)
    return series, str(csv)


def train_run(out, series, source: str, model_config: dict, train_config: TrainConfig, *, ratios=(0.7, 0.1, 0.2),
              batch_size: int = 64, period: int | None = None, level: float = 0.8, command: str = "",
              time_col=None, fill="raise") -> dict:
    """Train into ``out`` and return the test results (scaled MSE/MAE, original-scale MASE/sMAPE)."""
    lookback, horizon = model_config["lookback"], model_config["horizon"]
    data = ForecastData(series, ratio_split(len(series), ratios), lookback, horizon)
    for split in data.splits:  # fail before creating the run directory if a split cannot hold a window
        data.starts(split)
    config = ForecasterConfig(n_targets=data.n_targets, n_past=data.n_past, n_calendar=data.n_calendar,
                              **model_config)
    if config.output == "quantile" and abs(config.quantiles[-1] - config.quantiles[0] - level) > 1e-6:
        raise ConfigError(f"the quantiles {config.quantiles} give a {config.quantiles[-1] - config.quantiles[0]:.0%} "
                          f"interval; got level {level}")
    if period is None:
        period = SEASONAL_PERIOD.get(source.split(":", 1)[-1], 1) if source.startswith("builtin:") else 1
    run = prepare_run_dir(out, kind="forecast", command=command,
                          config={"model": asdict(config), "train": asdict(train_config), "source": source,
                                  "ratios": list(ratios), "batch_size": batch_size, "seasonal_period": period,
                                  "level": level})
    seed_everything(train_config.seed)
    model = Forecaster(config)
    task = ForecastTask(data, batch_size=batch_size, seed=train_config.seed, level=level, time_col=time_col,
                        fill=fill, source=source)
    summary = Trainer(model, task, train_config, run_dir=run).fit()
    test = evaluate_split(model, data, "test", level=level)
    results = {"model": {**test["metrics"], **original_scale_metrics(data, test["y"], test["point"], period)}}
    base = evaluate_baselines(data, "test", period=period if period <= lookback and period > 1 else None)
    for name, forecast in base.items():
        if name != "target":
            scaled = {"mse": float(((forecast - base["target"]) ** 2).mean()),
                      "mae": float((forecast - base["target"]).abs().mean())}
            results[name] = {**scaled, **original_scale_metrics(data, base["target"], forecast, period)}
    update_run_json(run, results=results, training=summary)
    _plot_last_window(run / "test_forecast.png", data, test, level)
    return results


def _plot_last_window(path, data: ForecastData, test: dict, level: float) -> None:
    s, scaler = data.series, data.target_scaler
    start = int(test["start"][-1])
    L, H = data.lookback, data.horizon
    history = slice(max(start - 2 * L, 0), start + L)
    future = slice(start + L, start + L + H)
    lower = scaler.inverse(test["lower"][-1].numpy()) if "lower" in test else None
    upper = scaler.inverse(test["upper"][-1].numpy()) if "upper" in test else None
    fig = forecast_figure(s.index[history], s.target[history], s.index[future],
                          scaler.inverse(test["point"][-1].numpy()), lower=lower, upper=upper,
                          actual=s.target[future], names=s.target_names, level=level,
                          title="last test window")
    save_png(fig, path)


def predict_run(run_dir, csv=None, *, out_csv=None, level: float | None = None, fill: str | None = None):
    """Forecast after the end of ``csv`` (or the built-in series); write CSV + PNG; return the table and paths.

    ``level=None``: 0.8 for Gaussian models, the outermost quantiles' span for quantile models.
    """
    saved = SavedForecaster(run_dir)
    c = saved.model.config
    if level is None:
        level = round(c.quantiles[-1] - c.quantiles[0], 10) if c.output == "quantile" else 0.8
    series = saved.load(csv, fill=fill)
    table = saved.forecast(series, level=level)
    out_csv = Path(out_csv) if out_csv else Path(run_dir) / "forecast.csv"
    png = out_csv.with_suffix(".png")
    for path in (out_csv, png):
        if path.exists():
            raise RunDirError(f"{path} already exists; pass --out PATH.csv for a new file (nothing was overwritten)")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    names = series.target_names
    keep = min(len(series), 3 * saved.spec["lookback"])
    has_interval = f"{names[0]}_lower" in table
    fig = forecast_figure(series.index[-keep:], series.target[-keep:], table["time"], table[names].to_numpy(),
                          lower=table[[f"{n}_lower" for n in names]].to_numpy() if has_interval else None,
                          upper=table[[f"{n}_upper" for n in names]].to_numpy() if has_interval else None,
                          names=names, level=level if has_interval else None, title="forecast")
    save_png(fig, png)
    return table, out_csv, png


def format_results(results: dict) -> str:
    """A small text table of test metrics, one row per model."""
    columns = ["mse", "mae", "mase", "smape", "coverage"]
    lines = [f"{'model':<16}" + "".join(f"{c:>10}" for c in columns)]
    for name, row in results.items():
        lines.append(f"{name:<16}" + "".join(f"{row[c]:>10.4f}" if c in row and np.isfinite(row[c]) else f"{'-':>10}"
                                            for c in columns))
    return "\n".join(lines)
