"""Series loading, validation (each bad input), splits, windows and the train-only scaler."""
import numpy as np
import pandas as pd
import pytest
import torch

from rnnlab.data.series import calendar_features, load_series
from rnnlab.data.series_windows import (
    ForecastData,
    Split,
    StandardScaler,
    WindowBatches,
    ett_split,
    ratio_split,
    tail_split,
    window_starts,
)
from rnnlab.errors import ConfigError, DataError


def frame(n=50, freq="h"):
    t = np.arange(n, dtype=float)
    return pd.DataFrame({"date": pd.date_range("2021-03-01", periods=n, freq=freq).astype(str),
                         "y": np.sin(t / 3), "z": t, "cov": t % 5})


def write(tmp_path, df, name="s.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_load_csv_roles_and_calendar(tmp_path):
    s = load_series(write(tmp_path, frame()), targets=["y", "z"], past_covariates="cov")
    assert s.target_names == ["y", "z"] and s.past_names == ["cov"]
    assert s.target.shape == (50, 2) and s.past.shape == (50, 1)
    np.testing.assert_allclose(s.target[:, 1], np.arange(50))
    assert s.calendar_names == ["hour_sin", "hour_cos", "dow_sin", "dow_cos", "doy_sin", "doy_cos"]
    cal = s.calendar()
    # 2021-03-01 00:00 is hour 0: sin 0, cos 1; one hour later the phase is 1/24 of a day.
    np.testing.assert_allclose(cal[0, :2], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(cal[1, :2], [np.sin(2 * np.pi / 24), np.cos(2 * np.pi / 24)], atol=1e-6)
    future = s.future_index(3)
    assert list(future) == list(pd.date_range(s.index[-1], periods=4, freq="h")[1:])


def test_calendar_drops_cycles_finer_than_the_step():
    weekly = pd.date_range("2000-01-01", periods=10, freq="W-SAT")
    names, values = calendar_features(weekly, weekly.freq)
    assert names == ["doy_sin", "doy_cos"] and values.shape == (10, 2)


def test_missing_target_and_time_columns(tmp_path):
    path = write(tmp_path, frame())
    with pytest.raises(DataError, match="target column 'OT' not found.*'y'"):
        load_series(path, targets="OT")
    with pytest.raises(DataError, match="time column 'when' not found"):
        load_series(path, targets="y", time_col="when")
    with pytest.raises(DataError, match="no time column"):
        load_series(frame().drop(columns="date"), targets="y")


def test_non_numeric_value_says_where_and_fill_policy(tmp_path):
    df = frame()
    df["y"] = df["y"].astype(object)
    df.loc[7, "y"] = "oops"
    path = write(tmp_path, df)
    with pytest.raises(DataError, match=r"column 'y' has a non-numeric value 'oops' at row 8 \(2021-03-01 07:00:00\).*fill="):
        load_series(path, targets="y")
    s = load_series(path, targets="y", fill="interpolate")
    assert s.filled == {"y": 1}
    np.testing.assert_allclose(s.target[7, 0], (np.sin(6 / 3) + np.sin(8 / 3)) / 2, rtol=1e-5)


def test_missing_values_raise_then_fill(tmp_path):
    df = frame()
    df.loc[[0, 10], "z"] = np.nan
    path = write(tmp_path, df)
    with pytest.raises(DataError, match=r"column 'z' has a missing value .* at row 1 .*2 cell"):
        load_series(path, targets="z")
    s = load_series(path, targets="z", fill="ffill")
    assert s.target[0, 0] == 1.0 and s.target[10, 0] == 9.0  # leading gap takes the first observation
    assert load_series(path, targets="z", fill="zero").target[10, 0] == 0.0
    with pytest.raises(DataError, match="fill must be one of"):
        load_series(path, targets="z", fill="guess")


def test_irregular_index_and_reindex(tmp_path):
    df = frame().drop(index=[20, 21]).reset_index(drop=True)
    path = write(tmp_path, df)
    with pytest.raises(DataError, match=r"irregular time index: row 21 \(2021-03-01 22:00:00\) comes 0 days 03:00:00"):
        load_series(path, targets="z")
    with pytest.raises(DataError, match="missing value"):  # the inserted rows are missing values
        load_series(path, targets="z", reindex=True)
    s = load_series(path, targets="z", reindex=True, fill="interpolate")
    assert len(s) == 50 and s.filled == {"z": 2}
    np.testing.assert_allclose(s.target[:, 0], np.arange(50))


def test_unsorted_or_duplicate_timestamps(tmp_path):
    df = frame()
    df.loc[5, "date"] = df.loc[4, "date"]
    with pytest.raises(DataError, match="strictly increasing: row 6"):
        load_series(write(tmp_path, df), targets="y")
    df = frame()
    df.loc[3, "date"] = "not a date"
    with pytest.raises(DataError, match="row 4 holds 'not a date'"):
        load_series(write(tmp_path, df), targets="y")


def test_missing_file():
    with pytest.raises(DataError, match="not found"):
        load_series("/nonexistent/x.csv", targets="y")


def test_horizon_and_lookback_must_be_positive():
    for bad in (0, -3):
        with pytest.raises(ConfigError, match="horizon must be a positive"):
            window_starts(Split("train", 0, 100), 10, bad)
    with pytest.raises(ConfigError, match="lookback"):
        window_starts(Split("train", 0, 100), 0, 5)


def test_series_shorter_than_lookback_plus_horizon():
    with pytest.raises(DataError, match="fewer than lookback \\+ horizon = 30 \\+ 10 = 40"):
        window_starts(Split("train", 0, 35), 30, 10)


def test_no_window_crosses_into_later_targets():
    n, L, H = 200, 24, 12
    splits = ratio_split(n, (0.6, 0.2, 0.2))
    for name, split in splits.items():
        starts = window_starts(split, L, H)
        assert (starts >= 0).all()
        assert (starts + L >= split.start).all()  # first target inside the split
        assert (starts + L + H <= split.end).all()  # last target inside the split
    # every possible test window is there: one per target origin
    test = splits["test"]
    assert len(window_starts(test, L, H)) == len(test) - H + 1
    train_starts = window_starts(splits["train"], L, H)
    assert train_starts.max() + L + H <= splits["valid"].start


def test_ett_split_matches_reference_window_counts():
    splits = ett_split(17420)
    assert (splits["train"].end, splits["valid"].end, splits["test"].end) == (8640, 11520, 14400)
    # The reference code: len = border2 - border1 - seq_len - pred_len + 1 with border1 = 11520 - seq_len.
    for H in (96, 192, 336, 720):
        assert len(window_starts(splits["test"], 336, H)) == 2880 - H + 1
    assert len(window_starts(splits["train"], 336, 96)) == 8640 - 336 - 96 + 1
    with pytest.raises(DataError, match="20 months"):
        ett_split(1000)


def test_batches_gather_the_right_rows_and_drop_nothing():
    n, L, H = 103, 8, 4
    inputs = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    starts = window_starts(Split("all", 0, n), L, H)
    batches = WindowBatches(inputs, inputs[:, :1], np.zeros((n, 0)), starts, L, H, batch_size=16)
    seen = []
    for batch in batches:
        for x, y, s in zip(batch["x"], batch["y"], batch["start"]):
            s = int(s)
            torch.testing.assert_close(x, torch.as_tensor(inputs[s:s + L]))
            torch.testing.assert_close(y, torch.as_tensor(inputs[s + L:s + L + H, :1]))
            seen.append(s)
    assert seen == list(starts) and len(seen) == n - L - H + 1  # 92 windows, not a multiple of 16
    shuffled = WindowBatches(inputs, inputs, np.zeros((n, 0)), starts, L, H, batch_size=16, shuffle=True, seed=3)
    order = [int(s) for b in shuffled for s in b["start"]]
    assert sorted(order) == seen and order != seen
    assert order == [int(s) for b in shuffled for s in b["start"]]  # same seed, same order


def test_scaler_sees_only_training_rows():
    df = frame(200)
    splits = ratio_split(200, (0.5, 0.25, 0.25))
    base = ForecastData(load_series(df, targets=["y", "z"], past_covariates="cov"), splits, 10, 5)
    df.loc[100:, ["y", "z", "cov"]] += 1e6  # poison everything after the training rows
    poisoned = ForecastData(load_series(df, targets=["y", "z"], past_covariates="cov"), splits, 10, 5)
    np.testing.assert_allclose(base.target_scaler.mean, poisoned.target_scaler.mean)
    np.testing.assert_allclose(base.past_scaler.std, poisoned.past_scaler.std)
    train = load_series(frame(200), targets=["y", "z"]).target[:100]
    np.testing.assert_allclose(base.target_scaler.mean, train.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(base.target_scaler.std, train.std(axis=0), rtol=1e-5)
    assert base.inputs.shape == (200, 2 + 1 + 6)


def test_scaler_round_trip_and_constant_column():
    values = np.array([[1.0, 5.0], [3.0, 5.0]])
    scaler = StandardScaler().fit(values)
    np.testing.assert_allclose(scaler.transform(values), [[-1, 0], [1, 0]])
    restored = StandardScaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(restored.inverse(restored.transform(values)), values)
    with pytest.raises(DataError, match="fitted on 2 columns; got 3"):
        scaler.transform(np.zeros((1, 3)))


def test_tail_split():
    splits = tail_split(100, 20, 10)
    assert (splits["train"].end, splits["valid"].end, splits["test"].start) == (70, 80, 80)
    with pytest.raises(DataError):
        tail_split(10, 10)
