"""The recurrent forecaster: learns a sine, calibrated quantiles/Gaussian intervals, RevIN, save/load."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from rnnlab.data.series import load_series
from rnnlab.data.series_windows import ForecastData, ratio_split
from rnnlab.errors import ConfigError, DataError, InputShapeError
from rnnlab.models.forecaster import Forecaster, ForecasterConfig
from rnnlab.tasks.forecast import ForecastTask, SavedForecaster, evaluate_split
from rnnlab.train import TrainConfig, Trainer, seed_everything


def sine_data(n=600, L=48, H=12, noise=0.0, seed=0, calendar=False):
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    y = np.sin(2 * np.pi * t / 24) + noise * rng.standard_normal(n)
    df = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=n, freq="h"), "y": y})
    return df, ForecastData(load_series(df, targets="y", calendar=calendar), ratio_split(n), L, H)


def fit(model, data, epochs, lr=1e-2, run_dir=None, batch_size=32):
    task = ForecastTask(data, batch_size=batch_size)
    Trainer(model, task, TrainConfig(lr=lr, max_epochs=epochs, progress=False), run_dir=run_dir).fit()
    return model


@pytest.mark.parametrize("decoder,segment,cell", [("direct", 0, "gru"), ("autoregressive", 0, "lstm"),
                                                  ("direct", 12, "gru")])
def test_learns_noiseless_sine(decoder, segment, cell):
    seed_everything(0)
    _, data = sine_data()
    model = Forecaster(ForecasterConfig(1, 48, 12, cell=cell, hidden_size=32, decoder=decoder, segment=segment,
                                        norm="none"))
    before = evaluate_split(model, data, "test")["metrics"]["mse"]
    fit(model, data, epochs=8)
    after = evaluate_split(model, data, "test")["metrics"]
    assert after["windows"] == 120 - 12 + 1
    assert after["mse"] < 5e-3 < before  # the scaled sine has variance 1


def quantile_interval_check(output, tolerance=0.07):
    seed_everything(1)
    _, data = sine_data(n=3000, L=24, H=4, noise=0.5, seed=1)
    model = Forecaster(ForecasterConfig(1, 24, 4, hidden_size=16, output=output, quantiles=(0.1, 0.5, 0.9),
                                        norm="none"))
    fit(model, data, epochs=6, lr=1e-2, batch_size=64)
    out = evaluate_split(model, data, "test", level=0.8)
    return out, tolerance


def test_quantiles_ordered_and_calibrated_on_gaussian_noise():
    out, tol = quantile_interval_check("quantile")
    params = out["params"]
    assert (params[..., 1:] >= params[..., :-1]).all()
    # y = sin + 0.5 * N(0, 1): the 10% / 90% quantiles must cover about 80% of test targets
    assert abs(out["metrics"]["coverage"] - 0.8) < tol
    below_median = (out["y"] < params[..., 1]).double().mean()
    assert abs(float(below_median) - 0.5) < tol


def test_gaussian_interval_coverage():
    out, tol = quantile_interval_check("gaussian")
    assert abs(out["metrics"]["coverage"] - 0.8) < tol
    # the noise std in scaled units: 0.5 / std(sin + 0.5 eps) = 0.5 / sqrt(0.5 + 0.25)
    assert float(out["params"][..., 1].mean()) == pytest.approx(0.5 / math.sqrt(0.75), rel=0.15)


def test_quantiles_never_cross_even_untrained():
    torch.manual_seed(0)
    model = Forecaster(ForecasterConfig(2, 10, 3, output="quantile", quantiles=(0.05, 0.25, 0.5, 0.75, 0.95)))
    params = model(torch.randn(16, 10, 2) * 5)
    assert (params.diff(dim=-1) > 0).all()
    lower, upper = model.interval(params, level=0.9)
    assert (lower < upper).all()
    with pytest.raises(ConfigError, match="give a 90% interval"):
        model.interval(params, level=0.8)


def test_losses_match_references():
    torch.manual_seed(0)
    y = torch.randn(4, 3, 2)
    gauss = Forecaster(ForecasterConfig(2, 5, 3, output="gaussian"))
    mean, sigma = torch.randn(4, 3, 2), torch.rand(4, 3, 2) + 0.1
    expected = torch.nn.GaussianNLLLoss(full=True)(mean, y, sigma ** 2)
    torch.testing.assert_close(gauss.loss(torch.stack([mean, sigma], -1), y), expected)
    quant = Forecaster(ForecasterConfig(2, 5, 3, output="quantile", quantiles=(0.2, 0.7)))
    q = torch.randn(4, 3, 2, 2)
    by_hand = 0
    for k, tau in enumerate((0.2, 0.7)):
        e = y - q[..., k]
        by_hand = by_hand + torch.where(e >= 0, tau * e, (tau - 1) * e).mean() / 2
    torch.testing.assert_close(quant.loss(q, y), by_hand)


@pytest.mark.parametrize("segment", [0, 5])
def test_revin_is_equivariant_to_shift_and_scale(segment):
    # Instance normalisation: forecasting a*x + b gives a*f(x) + b (a > 0), for any weights.
    torch.manual_seed(0)
    model = Forecaster(ForecasterConfig(3, 20, 7, segment=segment, norm="revin", output="gaussian")).eval()
    x = torch.randn(5, 20, 3)
    base = model(x)
    moved = model(3.0 * x + 10.0)
    torch.testing.assert_close(moved[..., 0], 3.0 * base[..., 0] + 10.0, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(moved[..., 1], 3.0 * base[..., 1], rtol=1e-4, atol=1e-4)


def test_bad_configs_and_inputs():
    with pytest.raises(ConfigError, match="horizon must be a positive"):
        ForecasterConfig(1, 10, 0)
    with pytest.raises(ConfigError, match="multiple of segment"):
        ForecasterConfig(1, 10, 5, segment=4)
    with pytest.raises(ConfigError, match="no covariates"):
        ForecasterConfig(1, 12, 5, segment=4, n_calendar=2)
    with pytest.raises(ConfigError, match="output must be one of"):
        ForecasterConfig(1, 10, 5, output="poisson")
    with pytest.raises(ConfigError, match="unknown recurrent kind"):
        Forecaster(ForecasterConfig(1, 10, 5, cell="transformer"))
    model = Forecaster(ForecasterConfig(2, 10, 4, n_calendar=3))
    with pytest.raises(InputShapeError, match=r"\(B, lookback=10, inputs=5\)"):
        model(torch.randn(2, 9, 5), torch.randn(2, 4, 3))
    with pytest.raises(InputShapeError, match="future calendar"):
        model(torch.randn(2, 10, 5))


def test_calendar_and_covariates_flow_through():
    seed_everything(0)
    _, data = sine_data(n=400, L=24, H=6, calendar=True)
    model = Forecaster(ForecasterConfig(1, 24, 6, n_calendar=data.n_calendar, hidden_size=16, output="gaussian"))
    assert data.n_calendar == 6
    out = evaluate_split(model, data, "valid")
    assert out["point"].shape == (len(data.starts("valid")), 6, 1)


def test_save_load_and_predict_from_csv(tmp_path):
    seed_everything(0)
    df, data = sine_data(n=300, L=24, H=6, calendar=True)
    model = Forecaster(ForecasterConfig(1, 24, 6, n_calendar=data.n_calendar, hidden_size=16, output="quantile"))
    fit(model, data, epochs=2, run_dir=tmp_path / "run")
    saved = SavedForecaster(tmp_path / "run")
    series = saved.load(df)
    table = saved.forecast(series, level=0.8)
    assert list(table.columns) == ["time", "y", "y_lower", "y_upper"] and len(table) == 6
    assert table["time"].iloc[0] == df["date"].iloc[-1] + pd.Timedelta(hours=1)
    # the same forecast by hand from the in-memory model, undoing the training scaler
    x = torch.as_tensor(data.inputs[-24:]).unsqueeze(0)
    future = torch.as_tensor(series.calendar(series.future_index(6))).unsqueeze(0)
    with torch.no_grad():
        expected = data.target_scaler.inverse(model.eval().point(model(x, future))[0].numpy())[:, 0]
    np.testing.assert_allclose(table["y"].to_numpy(), expected, rtol=1e-5, atol=1e-5)
    assert (table["y_lower"] <= table["y"]).all() and (table["y"] <= table["y_upper"]).all()
    with pytest.raises(DataError, match=r"lacks columns \['y'\]"):
        saved.load(df.rename(columns={"y": "load"}))
    with pytest.raises(DataError, match="look-back of 24"):
        saved.load(df.iloc[:10])


def cli(capsys, *argv):
    from rnnlab.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_train_predict_and_bad_inputs(tmp_path, capsys):
    df, _ = sine_data(n=240)
    df["load"] = np.arange(240) % 7
    csv = tmp_path / "s.csv"
    df.to_csv(csv, index=False)
    run = tmp_path / "run"
    code, out, _ = cli(capsys, "forecast", "train", "--csv", str(csv), "--target", "y", "--past", "load",
                       "--horizon", "6", "--lookback", "24", "--epochs", "1", "--output", "gaussian",
                       "--hidden", "8", "--no-progress", "--out", str(run))
    # no --period: inferred from the hourly index (24), so seasonal naive is among the baselines
    assert code == 0 and "inferred: period 24" in out and "seasonal_naive" in out
    info = __import__("json").loads((run / "run.json").read_text())
    assert set(info["results"]) == {"model", "naive", "seasonal_naive", "linear", "ensemble"}
    assert info["kind"] == "forecast" and f"chosen: {info['choice']['chosen']}" in out
    assert (run / "test_forecast.png").stat().st_size > 1000
    code, out, _ = cli(capsys, "forecast", "predict", str(run), "--csv", str(csv), "--out", str(tmp_path / "c.csv"))
    assert code == 0 and f"forecast with: {info['choice']['chosen']} (the run's choice" in out
    code, out, _ = cli(capsys, "forecast", "predict", str(run), "--csv", str(csv), "--use", "recurrent")
    table = pd.read_csv(run / "forecast.csv")
    assert code == 0 and list(table.columns) == ["time", "y", "y_lower", "y_upper"] and len(table) == 6
    assert (run / "forecast.png").exists()
    df.drop(columns="load").to_csv(tmp_path / "other.csv", index=False)
    train = ["train", "--csv", str(csv), "--out", str(tmp_path / "new")]
    bad = {
        "missing target": (train + ["--target", "nope", "--horizon", "6", "--lookback", "24"],
                           "target column 'nope' not found"),
        "horizon 0": (train + ["--target", "y", "--horizon", "0", "--lookback", "24"], "--horizon must be >= 1, got 0"),
        "too short": (train + ["--target", "y", "--horizon", "6", "--lookback", "200"], "fewer than lookback"),
        "run exists": (["train", "--csv", str(csv), "--target", "y", "--horizon", "6", "--lookback", "24", "--out",
                        str(run)], "already holds a run"),
        "output exists": (["predict", str(run), "--csv", str(csv)], "already exists"),
        "columns differ": (["predict", str(run), "--csv", str(tmp_path / "other.csv"), "--out",
                            str(tmp_path / "p.csv")], "lacks columns ['load']"),
    }
    for name, (args, message) in bad.items():
        code, _, err = cli(capsys, "forecast", *args)
        assert code == 2, name
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (name, err)
    assert not (tmp_path / "new").exists()  # a failed start leaves no run directory behind


@pytest.mark.parametrize("freq, period, horizon, lookback", [
    ("h", 24, 24, 72), ("D", 7, 7, 21), ("W-SUN", 52, 52, 156), ("MS", 12, 12, 36), ("YS", 1, 4, 12),
])
def test_window_defaults_are_inferred_from_the_index(freq, period, horizon, lookback):
    from rnnlab.data.series import load_series
    from rnnlab.runs.forecast import infer_window

    n = 200 if freq == "YS" else 1000
    frame = pd.DataFrame({"date": pd.date_range("1800-01-01" if freq == "YS" else "1990-01-01", periods=n, freq=freq), "y": np.sin(np.arange(n) / 5)})
    window = infer_window(load_series(frame, calendar=False))
    assert (window["period"], window["horizon"], window["lookback"]) == (period, horizon, lookback)


def test_short_series_shrink_the_inferred_window_to_fit():
    from rnnlab.data.series import load_series
    from rnnlab.runs.forecast import infer_window

    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=60, freq="MS"), "y": np.arange(60.0)})
    window = infer_window(load_series(frame, calendar=False))
    assert window["period"] == 12 and window["horizon"] == 6  # the 10% validation part holds 6 months
    assert window["lookback"] + window["horizon"] <= 42  # fits in the 70% training part
