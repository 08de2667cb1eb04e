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

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnlab.analysis.plots import forecast_figure, save_png
from rnnlab.config import option
from rnnlab.data.builtin_series import SEASONAL_PERIOD, load_builtin
from rnnlab.data.series import load_series
from rnnlab.data.series_windows import ForecastData, ratio_split
from rnnlab.errors import ConfigError
from rnnlab.io import atomic_write_text, check_new_file
from rnnlab.models.baselines import FittedBaselines
from rnnlab.models.forecaster import DECODERS, NORMS, OUTPUTS, Forecaster, ForecasterConfig
from rnnlab.nn import RECURRENT
from rnnlab.rundir import discard_unstarted, prepare_run_dir, read_run, update_run_json
from rnnlab.runs.model_choice import CANDIDATES, TOLERANCE, candidate_forecasts, select_model
from rnnlab.tasks.forecast import ForecastTask, SavedForecaster, evaluate_split, original_scale_metrics
from rnnlab.train import TrainConfig, Trainer, seed_everything

# Seasonal period of a grid step (pandas offset name -> steps per season; sub-daily steps: one day) and the horizon of one
# "natural" forecast: a day of hours, a week of days, a year of months/quarters/weeks (yearly: 4 years).
PERIODS = {"min": 1440, "h": 24, "b": 5, "d": 7, "w": 52, "m": 12, "ms": 12, "me": 12, "q": 4, "qs": 4, "qe": 4,
           "y": 1, "ys": 1, "ye": 1, "a": 1, "as": 1}
YEARLY_HORIZON = 4


@dataclass
class ForecastRunConfig:
    """What ``rnnlab forecast train`` takes (``--threads``, ``--seed``, ``--out`` come from the shared options)."""

    csv: str | None = option(None, "CSV with a header and a time column", default_text="built-in weekly CO2 series")
    target: tuple[str, ...] | None = option(None, "target column(s)",
                                            default_text="all columns but time, covariates and index-like ones")
    time_col: str | None = option(None, "timestamp column", default_text="date/time/timestamp/datetime/ds")
    past: tuple[str, ...] = option((), "past-covariate columns (inputs only, never forecast)")
    calendar: bool = option(True, "calendar features from the timestamps")
    fill: str = option("raise", "missing or non-numeric cells: stop and say where, or fill them",
                       choices=("raise", "interpolate", "ffill", "zero"))
    reindex: bool = option(False, "insert timestamps missing from the regular grid")
    horizon: int | None = option(None, "steps to forecast", min=1, default_text="one seasonal period of the index")
    lookback: int | None = option(None, "steps the model reads", min=1, default_text="three seasonal periods")
    cell: str = option("gru", "recurrent cell: " + ", ".join(sorted(RECURRENT)))
    hidden: int = option(64, "hidden units", min=1)
    layers: int = option(1, "recurrent layers", min=1)
    dropout: float = option(0.0, "dropout between layers and before the head", min=0.0, max=1.0, max_open=True)
    decoder: str = option("direct", "all horizon steps at once, or one by one", choices=DECODERS)
    segment: int = option(0, "SegRNN segment length (0 = step by step)", min=0)
    norm: str = option("revin", "per-window normalisation", choices=NORMS)
    output: str = option("point", "point forecasts or distributions", choices=OUTPUTS)
    loss: str = option("mse", "loss of point forecasts", choices=("mse", "mae"))
    quantiles: tuple[float, ...] = option((0.1, 0.5, 0.9), "quantile levels (output quantile)", min=0.0, max=1.0,
                                          min_open=True, max_open=True)
    level: float | None = option(None, "prediction-interval level", min=0.0, max=1.0, min_open=True, max_open=True,
                                 default_text="0.8, or the quantiles' span")
    period: int | None = option(None, "seasonal period for seasonal naive and MASE", min=1,
                                default_text="inferred from the index")
    epochs: int = option(20, "passes over the training windows", min=1)
    lr: float = option(3e-3, "Adam learning rate", min=0.0, min_open=True)
    batch_size: int = option(64, "windows per batch", min=1)
    patience: int = option(5, "early stop after this many epochs without a better validation loss", min=1)
    select: bool = option(True, "forecast with the candidate (recurrent, naive, seasonal naive, linear, ensemble) "
                                "of lowest validation MASE; --no-select always uses the recurrent model")
    ensemble: bool = option(True, "include the mean of the recurrent model and the best baseline as a candidate")

    def interval_level(self) -> float:
        if self.level is not None:
            return self.level
        return round(self.quantiles[-1] - self.quantiles[0], 10) if self.output == "quantile" else 0.8


def seasonal_period(step) -> int:
    """Steps per season of a grid step (``<Hour>`` -> 24, ``<MonthBegin>`` -> 12, ...); 1 when unknown."""
    name = getattr(step, "rule_code", None) or getattr(step, "freqstr", "") or ""
    key = "".join(ch for ch in str(name).split("-")[0].lower() if ch.isalpha())
    multiple = getattr(step, "n", 1) or 1
    period = PERIODS.get(key, 1)
    return max(1, period // multiple) if period % multiple == 0 else 1


def infer_window(series, ratios=(0.7, 0.1, 0.2), *, period: int | None = None, horizon: int | None = None,
                 lookback: int | None = None) -> dict:
    """Horizon = one season, look-back = three seasons (given values are kept), shrunk to fit the splits.

    Returns ``{"period", "horizon", "lookback", "why"}``; ``why`` says what was inferred.
    """
    n = len(series)
    splits = ratio_split(n, ratios)
    shortest_eval = min(splits["valid"].end - splits["valid"].start, splits["test"].end - splits["test"].start)
    why = []
    if period is None:
        period = seasonal_period(series.step)
        why.append(f"period {period} from the {series.step.freqstr if hasattr(series.step, 'freqstr') else series.step} "
                   f"index")
    if horizon is None:
        horizon = period if period > 1 else YEARLY_HORIZON
        horizon = max(1, min(horizon, shortest_eval))
        why.append(f"horizon {horizon}")
    if lookback is None:
        train_rows = splits["train"].end - splits["train"].start
        lookback = max(1, min(3 * max(period, horizon), train_rows - horizon))
        why.append(f"lookback {lookback}")
    return {"period": period, "horizon": horizon, "lookback": lookback, "why": ", ".join(why)}


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
              time_col=None, fill="raise", select: bool = True, ensemble: bool = True,
              tolerance: float = TOLERANCE) -> dict:
    """Train into ``out``, choose the forecast to use on validation (:mod:`rnnlab.runs.model_choice`),
    and return ``(results, choice)``: the test metrics (scaled MSE/MAE, original-scale MASE/sMAPE) of
    every candidate, and the choice (chosen, reason, validation scores).

    ``select=False`` always uses the recurrent model (the candidates are still scored and stored).
    The choice lands in run.json under "choice"; the test rows are "model" (the recurrent model),
    the baselines and "ensemble".
    """
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
    baselines = FittedBaselines.fit(data, period)  # closed form, cheap; saved with every checkpoint
    run = prepare_run_dir(out, kind="forecast", command=command,
                          config={"model": asdict(config), "train": asdict(train_config), "source": source,
                                  "ratios": list(ratios), "batch_size": batch_size, "seasonal_period": period,
                                  "level": level})
    try:  # a failure while setting up leaves no run directory behind
        seed_everything(train_config.seed)
        model = Forecaster(config)
        task = ForecastTask(data, batch_size=batch_size, seed=train_config.seed, level=level, time_col=time_col,
                            fill=fill, source=source, baselines=baselines)
        trainer = Trainer(model, task, train_config, run_dir=run)
    except BaseException:
        discard_unstarted(run)
        raise
    summary = trainer.fit()
    choice = select_model(model, data, baselines, period, ensemble=ensemble, tolerance=tolerance)
    if not select:
        choice.update(chosen="recurrent", reason="--no-select: the recurrent model is used whatever the scores")
    test = evaluate_split(model, data, "test", level=level)
    results = {"model": {**test["metrics"], **original_scale_metrics(data, test["y"], test["point"], period)}}
    target, forecasts = candidate_forecasts(None, data, "test", baselines)
    if choice["ensemble_with"] is not None:
        forecasts["ensemble"] = (test["point"] + forecasts[choice["ensemble_with"]]) / 2
    for name, forecast in forecasts.items():
        scaled = {"mse": float(((forecast - target) ** 2).mean()), "mae": float((forecast - target).abs().mean())}
        results[name] = {**scaled, **original_scale_metrics(data, target, forecast, period)}
    choice["test_row"] = "model" if choice["chosen"] == "recurrent" else choice["chosen"]
    update_run_json(run, results=results, training=summary, choice=choice)
    _plot_last_window(run / "test_forecast.png", data, test, level)
    return results, choice


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


def predict_run(run_dir, csv=None, *, out_csv=None, level: float | None = None, fill: str | None = None,
                force: bool = False, use: str | None = None):
    """Forecast after the end of ``csv`` (or the built-in series); write CSV + PNG; return the table, paths
    and the candidate used.

    ``use=None`` forecasts with the candidate the run chose on validation (run.json "choice"; the
    recurrent model for runs without one); baselines and the ensemble give point forecasts only.
    ``level=None``: 0.8 for Gaussian models, the outermost quantiles' span for quantile models.
    """
    if level is not None and not (math.isfinite(level) and 0 < level < 1):
        raise ConfigError(f"--level must be a probability strictly between 0 and 1; got {level}")
    out_csv = check_new_file(Path(out_csv) if out_csv else Path(run_dir) / "forecast.csv", "forecast CSV", force=force)
    png = check_new_file(out_csv.with_suffix(".png"), "forecast plot", force=force)
    saved = SavedForecaster(run_dir)
    c = saved.model.config
    if level is None:
        level = round(c.quantiles[-1] - c.quantiles[0], 10) if c.output == "quantile" else 0.8
    series = saved.load(csv, fill=fill)
    choice = read_run(run_dir, kind="forecast").get("choice") or {}
    use = use or choice.get("chosen", "recurrent")
    if use not in CANDIDATES:
        raise ConfigError(f"--use must be one of {', '.join(CANDIDATES)}; got {use!r}")
    table = saved.forecast(series, level=level, use=use, ensemble_with=choice.get("ensemble_with"))
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_csv, table.to_csv(index=False))
    names = series.target_names
    keep = min(len(series), 3 * saved.spec["lookback"])
    has_interval = f"{names[0]}_lower" in table
    fig = forecast_figure(series.index[-keep:], series.target[-keep:], table["time"], table[names].to_numpy(),
                          lower=table[[f"{n}_lower" for n in names]].to_numpy() if has_interval else None,
                          upper=table[[f"{n}_upper" for n in names]].to_numpy() if has_interval else None,
                          names=names, level=level if has_interval else None, title="forecast")
    save_png(fig, png)
    return table, out_csv, png, use


def format_results(results: dict) -> str:
    """A small text table of test metrics, one row per model."""
    columns = ["mse", "mae", "mase", "smape", "coverage"]
    lines = [f"{'model':<16}" + "".join(f"{c:>10}" for c in columns)]
    for name, row in results.items():
        lines.append(f"{name:<16}" + "".join(f"{row[c]:>10.4f}" if c in row and np.isfinite(row[c]) else f"{'-':>10}"
                                            for c in columns))
    return "\n".join(lines)
