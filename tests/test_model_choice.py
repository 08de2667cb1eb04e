"""The validation-based choice between the recurrent forecaster, the baselines and their ensemble.

Each candidate must win on data built for it: a noiseless season (seasonal naive), a random walk
(naive), a noisy trend (linear), a chaotic map no linear rule forecasts (recurrent), two forecasts with
independent errors (their mean). The chosen baseline must forecast from a saved run exactly as by hand.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from rnnlab.data.series import load_series
from rnnlab.data.series_windows import ForecastData, ratio_split
from rnnlab.errors import ConfigError
from rnnlab.models.baselines import FittedBaselines, LinearBaseline
from rnnlab.models.forecaster import Forecaster, ForecasterConfig
from rnnlab.runs.model_choice import choose, score, select_model
from rnnlab.tasks.forecast import ForecastTask
from rnnlab.train import TrainConfig, Trainer, seed_everything

torch.set_num_threads(1)


def make_data(values, freq="MS", lookback=36, horizon=12):
    frame = pd.DataFrame({"date": pd.date_range("1700-01-01", periods=len(values), freq=freq), "y": values})
    series = load_series(frame, targets="y", calendar=False)
    return frame, ForecastData(series, ratio_split(len(values)), lookback, horizon)


def untrained(data):
    seed_everything(0)
    return Forecaster(ForecasterConfig(1, data.lookback, data.horizon, hidden_size=8))


def test_choose_prefers_the_simplest_within_tolerance():
    scores = {"naive": {"mase": 1.0}, "linear": {"mase": 0.50}, "recurrent": {"mase": 0.495},
              "ensemble": {"mase": 0.40}}
    assert choose(scores)[0] == "ensemble"  # 20% better than anything else
    scores["ensemble"]["mase"] = 0.492
    chosen, reason = choose(scores)  # 0.50 <= 0.492 * 1.02: linear is close enough and simpler
    assert chosen == "linear" and "within 2% of the best (ensemble 0.492)" in reason
    assert choose(scores, tolerance=0.0)[0] == "ensemble"
    assert choose({"naive": {"mase": float("nan")}, "linear": {"mase": 2.0}})[0] == "linear"
    with pytest.raises(ConfigError, match="no candidate has a finite"):
        choose({"naive": {"mase": float("inf")}})


def test_pure_season_chooses_seasonal_naive():
    pattern = np.random.default_rng(0).normal(size=12) * 5 + 20
    _, data = make_data(np.tile(pattern, 20))  # repeats exactly: MASE falls back to the one-step scale
    choice = select_model(untrained(data), data, FittedBaselines.fit(data, 12), 12)
    assert choice["chosen"] == "seasonal_naive" and choice["validation"]["seasonal_naive"]["mase"] < 1e-6
    assert set(choice["validation"]) == {"naive", "seasonal_naive", "linear", "recurrent", "ensemble"}


def test_random_walk_chooses_naive():
    walk = np.cumsum(np.random.default_rng(1).normal(size=2000)) + 100
    _, data = make_data(walk, freq="D", lookback=20, horizon=5)
    choice = select_model(untrained(data), data, FittedBaselines.fit(data, 1), 1)
    assert choice["chosen"] == "naive", choice["reason"]


def test_noisy_trend_chooses_linear():
    t = np.arange(300.0)
    _, data = make_data(0.5 * t + np.random.default_rng(2).normal(size=300), freq="YS", lookback=12, horizon=4)
    choice = select_model(untrained(data), data, FittedBaselines.fit(data, 1), 1)
    assert choice["chosen"] == "linear", choice["reason"]
    assert choice["validation"]["linear"]["mase"] < 0.7 * choice["validation"]["naive"]["mase"]


def test_chaotic_map_chooses_the_recurrent_model():
    x = np.empty(800)
    x[0] = 0.3
    for t in range(1, len(x)):  # the logistic map: x_{t+1} = 3.9 x_t (1 - x_t), no linear rule forecasts it
        x[t] = 3.9 * x[t - 1] * (1 - x[t - 1])
    _, data = make_data(x, freq="D", lookback=4, horizon=1)
    seed_everything(0)
    model = Forecaster(ForecasterConfig(1, 4, 1, hidden_size=32, norm="none"))
    Trainer(model, ForecastTask(data, batch_size=32), TrainConfig(lr=1e-2, max_epochs=10, progress=False)).fit()
    choice = select_model(model, data, FittedBaselines.fit(data, 7), 7)
    assert choice["chosen"] == "recurrent", choice["reason"]
    assert "seasonal_naive" not in choice["validation"]  # period 7 > look-back 4: not a candidate


def test_independent_errors_choose_the_ensemble():
    rng = np.random.default_rng(3)
    _, data = make_data(np.sin(np.arange(400) / 3) + rng.normal(size=400), freq="D", lookback=14, horizon=7)
    target = torch.randn(50, 7, 1)
    forecasts = {"linear": target + torch.randn(50, 7, 1), "recurrent": target + torch.randn(50, 7, 1)}
    forecasts["ensemble"] = (forecasts["linear"] + forecasts["recurrent"]) / 2  # error variance halves
    scores = score(data, target, forecasts, 7)
    assert choose(scores)[0] == "ensemble"
    # MASE by hand: MAE on the original scale over the in-sample MAE of the 7-step seasonal difference
    std = data.target_scaler.std[0]
    history = data.series.target[: data.splits["train"].end, 0].astype(np.float64)
    expected = float((forecasts["ensemble"] - target).abs().double().mean()) * std / np.abs(
        history[7:] - history[:-7]).mean()
    assert scores["ensemble"]["mase"] == pytest.approx(expected, rel=1e-5)


def test_linear_baseline_round_trips_through_json():
    _, data = make_data(np.sin(np.arange(300) / 4) + np.arange(300) / 50, freq="D", lookback=14, horizon=7)
    fitted = FittedBaselines.fit(data, 7)
    again = FittedBaselines.from_dict(json.loads(json.dumps(fitted.to_dict())))
    x = torch.randn(5, 14, 1, dtype=torch.float64)
    for name in ("naive", "seasonal_naive", "linear"):
        torch.testing.assert_close(fitted.forecast(name, x), again.forecast(name, x), rtol=0, atol=1e-12)
    spec = fitted.linear.to_dict()
    spec["weight"] = spec["weight"][:-1]
    with pytest.raises(Exception, match=r"must have weights \(15, 7\)"):
        LinearBaseline.from_dict(spec)


def test_saved_run_forecasts_with_the_chosen_baseline(tmp_path):
    from rnnlab.runs.forecast import predict_run, train_run

    pattern = np.random.default_rng(4).normal(size=12) * 5 + 20
    frame, data = make_data(np.tile(pattern, 16))
    csv = tmp_path / "season.csv"
    frame.to_csv(csv, index=False)
    model = dict(lookback=36, horizon=12, hidden_size=8)
    results, choice = train_run(tmp_path / "run", data.series, str(csv), model,
                                TrainConfig(max_epochs=1, progress=False), period=12, time_col="date")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert choice["chosen"] == info["choice"]["chosen"] == "seasonal_naive"
    assert results["seasonal_naive"]["mase"] < 1e-6 and set(results) >= {"model", "linear", "ensemble"}
    table, _, _, used = predict_run(tmp_path / "run", csv)
    assert used == "seasonal_naive" and list(table.columns) == ["time", "y"]  # a baseline has no interval
    np.testing.assert_allclose(table["y"].to_numpy(), pattern[np.arange(len(frame), len(frame) + 12) % 12],
                               rtol=1e-5)
    table, _, _, used = predict_run(tmp_path / "run", csv, use="recurrent", out_csv=tmp_path / "r.csv")
    assert used == "recurrent" and not np.allclose(table["y"].to_numpy(), pattern, rtol=1e-2)
    from rnnlab.analysis.report import build_report

    html = build_report(tmp_path / "run").read_text()
    assert "Forecast choice" in html and "seasonal_naive (chosen)" in html and "Forecast used: seasonal_naive" in html
