"""Baselines and metrics on hand-computable series."""
import numpy as np
import pandas as pd
import pytest
import torch

from rnnlab import metrics
from rnnlab.data.series import load_series
from rnnlab.data.series_windows import ForecastData, ratio_split
from rnnlab.errors import ConfigError, DataError, InputShapeError
from rnnlab.models.baselines import LinearBaseline, evaluate_baselines, moving_average, naive, seasonal_naive


def window(values):
    return torch.tensor(values, dtype=torch.float64).view(1, -1, 1)


def test_naive_repeats_last_value():
    out = naive(window([1, 2, 3, 4]), 3)
    assert out.flatten().tolist() == [4, 4, 4]


def test_seasonal_naive_repeats_last_season():
    out = seasonal_naive(window([1, 2, 3, 7, 8, 9]), 5, period=3)
    assert out.flatten().tolist() == [7, 8, 9, 7, 8]
    with pytest.raises(ConfigError, match="seasonal period"):
        seasonal_naive(window([1, 2]), 2, period=3)
    with pytest.raises(InputShapeError):
        naive(torch.zeros(4), 2)


def test_moving_average_repeats_the_ends():
    # padded [1, 1, 2, 3, 4, 5, 5] -> means of 3
    out = moving_average(window([1, 2, 3, 4, 5]), 3).flatten()
    torch.testing.assert_close(out, torch.tensor([4 / 3, 2, 3, 4, 14 / 3], dtype=torch.float64))


def test_linear_baseline_is_exact_on_lines():
    # A straight line continues as x[L-1] + (h + 1) * slope: a linear map of the window.
    L, H = 6, 3
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for _ in range(40):
        a, b = rng.normal(size=2)
        t = np.arange(L + H)
        line = a + b * t
        xs.append(line[:L])
        ys.append(line[L:])
    x = torch.tensor(np.array(xs)).unsqueeze(-1)  # (40, L, 1)
    y = torch.tensor(np.array(ys)).unsqueeze(-1)
    for decomposition in (False, True):
        model = LinearBaseline(L, H, decomposition=decomposition, kernel=3, ridge=1e-10).fit([{"x": x, "y": y}], 1)
        test = window([2.0, 2.5, 3.0, 3.5, 4.0, 4.5])
        torch.testing.assert_close(model(test).flatten(), torch.tensor([5.0, 5.5, 6.0], dtype=torch.float64),
                                   atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="not fitted"):
        LinearBaseline(L, H)(x)


def test_ridge_is_picked_on_validation_windows():
    # Targets independent of the window: the strongest shrinkage predicts best on held-out windows.
    gen = torch.Generator().manual_seed(0)
    train = [{"x": torch.randn(200, 30, 1, generator=gen), "y": torch.randn(200, 2, 1, generator=gen)}]
    valid = [{"x": torch.randn(200, 30, 1, generator=gen), "y": torch.randn(200, 2, 1, generator=gen)}]
    model = LinearBaseline(30, 2).fit(train, 1, valid=valid, ridges=(1e-6, 1e-2, 10.0))
    assert model.ridge == 10.0
    # A noiseless line: the weakest shrinkage wins.
    t = torch.arange(12.0)
    lines = torch.stack([a + b * t for a, b in torch.randn(50, 2, generator=gen)]).unsqueeze(-1)
    batch = {"x": lines[:, :10], "y": lines[:, 10:]}
    assert LinearBaseline(10, 2).fit([batch], 1, valid=[batch], ridges=(1e-8, 1e-2, 10.0)).ridge == 1e-8


def test_evaluate_baselines_uses_the_same_test_windows():
    t = np.arange(120, dtype=float)
    df = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=120, freq="D"), "y": t % 7})
    data = ForecastData(load_series(df, targets="y", calendar=False), ratio_split(120, (0.6, 0.2, 0.2)), 14, 7)
    out = evaluate_baselines(data, "test", period=7)
    assert out["target"].shape == (24 - 7 + 1, 7, 1)
    # a pure weekly pattern: seasonal naive is exact, naive is not
    assert metrics.mse(out["target"], out["seasonal_naive"]) < 1e-10
    assert metrics.mse(out["target"], out["naive"]) > 0.1
    assert metrics.mse(out["target"], out["linear"]) < 1e-4


def test_point_metrics_by_hand():
    y, f = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 1.0])
    assert metrics.mse(y, f) == pytest.approx((1 + 0 + 9) / 3)
    assert metrics.mae(y, f) == pytest.approx((1 + 0 + 3) / 3)
    assert metrics.smape(y, f) == pytest.approx(100 / 3 * (2 * 1 / 3 + 0 + 2 * 3 / 5))
    assert metrics.smape(np.zeros(2), np.zeros(2)) == 0.0
    history = np.array([1.0, 3.0, 2.0, 6.0])  # period-1 diffs 2, 1, 4 -> scale 7/3
    assert metrics.mase(y, f, history) == pytest.approx((4 / 3) / (7 / 3))
    assert metrics.mase(y, f, history, period=2) == pytest.approx((4 / 3) / 2)  # diffs 1, 3
    with pytest.raises(DataError, match="same shape"):
        metrics.mse(y, f[:2])
    with pytest.raises(DataError, match="constant"):
        metrics.mase(y, f, np.ones(5))


def test_accuracy_and_confusion_matrix():
    labels, predicted = np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1])
    assert metrics.accuracy(labels, predicted) == 0.5
    np.testing.assert_array_equal(metrics.confusion_matrix(labels, predicted, 3),
                                  [[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    with pytest.raises(DataError, match="class indices"):
        metrics.confusion_matrix(labels, predicted, 2)
