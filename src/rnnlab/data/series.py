"""Time series from a CSV file or a DataFrame: validation, fill policy, regular grid, calendar features.

A :class:`TimeSeries` holds, on one regular time grid of ``N`` steps::

    target   (N, C)   the columns to forecast
    past     (N, P)   past covariates: observed up to the forecast origin only
    calendar (N, K)   sin/cos of the time of day, week and year, computed from the timestamps and
                      therefore known in the future as well (:func:`calendar_features`)

Nothing is guessed silently: a missing column, a non-numeric or missing value, or an irregular
time index raises :class:`~rnnlab.errors.DataError` naming the column, the row and its timestamp;
missing values are filled only when the caller picks a ``fill`` policy, and the number of filled
cells is kept in :attr:`TimeSeries.filled`. Windows, splits and scaling live in
:mod:`rnnlab.data.series_windows`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rnnlab.errors import DataError

FILL_POLICIES = ("raise", "ffill", "interpolate", "zero")
TIME_COLUMN_NAMES = ("date", "time", "timestamp", "datetime", "ds")
_DAY = pd.Timedelta(days=1)


@dataclass
class TimeSeries:
    """Validated series on a regular grid; see the module docstring for the arrays' meaning."""

    index: pd.DatetimeIndex
    target: np.ndarray  # (N, C) float32
    past: np.ndarray  # (N, P) float32
    target_names: list[str]
    past_names: list[str]
    step: pd.DateOffset  # one grid step, e.g. <Hour>, <Week: weekday=5>
    use_calendar: bool = True
    filled: dict[str, int] = field(default_factory=dict)  # column -> number of cells filled

    def __len__(self) -> int:
        return len(self.index)

    def calendar(self, index: pd.DatetimeIndex | None = None) -> np.ndarray:
        """Calendar features ``(N, K)`` for ``index`` (default: this series' own timestamps)."""
        if not self.use_calendar:
            return np.zeros((len(self.index if index is None else index), 0), np.float32)
        return calendar_features(self.index if index is None else index, self.step)[1]

    @property
    def calendar_names(self) -> list[str]:
        return calendar_features(self.index[:1], self.step)[0] if self.use_calendar else []

    def future_index(self, n: int) -> pd.DatetimeIndex:
        """The ``n`` timestamps that follow the last one on the grid."""
        return pd.date_range(self.index[-1], periods=n + 1, freq=self.step)[1:]


def calendar_features(index: pd.DatetimeIndex, step: pd.DateOffset) -> tuple[list[str], np.ndarray]:
    """Periodic calendar features ``(N, K)``: ``sin(2*pi*phase)``, ``cos(2*pi*phase)`` per cycle.

    Cycles finer than the grid step carry no information and are left out: hour-of-day only for
    sub-daily steps, day-of-week only for sub-weekly steps, day-of-year for steps under a year.
    The phase of day-of-year is ``(dayofyear - 1 + hour/24) / 365.25``.
    """
    delta = _approx_timedelta(step)
    hours = index.hour + index.minute / 60.0
    cycles = []
    if delta < _DAY:
        cycles.append(("hour", hours / 24.0))
    if delta < 7 * _DAY:
        cycles.append(("dow", (index.day_of_week + hours / 24.0) / 7.0))
    if delta < 360 * _DAY:
        cycles.append(("doy", (index.day_of_year - 1 + hours / 24.0) / 365.25))
    names, columns = [], []
    for name, phase in cycles:
        angle = 2 * np.pi * np.asarray(phase, dtype=np.float64)
        names += [f"{name}_sin", f"{name}_cos"]
        columns += [np.sin(angle), np.cos(angle)]
    array = np.stack(columns, axis=1) if columns else np.zeros((len(index), 0))
    return names, array.astype(np.float32)


def _approx_timedelta(step: pd.DateOffset) -> pd.Timedelta:
    """A fixed-length stand-in for a (possibly calendar-relative) offset, e.g. one month -> ~30 days."""
    first = pd.Timestamp("2001-01-01") + step  # on the offset's anchor (e.g. a Saturday for W-SAT)
    return (first + step) - first


def _read(source) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source.copy()
    path = Path(source)
    if not path.is_file():
        raise DataError(f"CSV file not found: {path}")
    try:
        # Read everything as text first so that a bad cell can be reported, never silently coerced.
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise DataError(f"cannot parse {path} as CSV: {error}") from None


def _time_index(frame: pd.DataFrame, time_col: str | None) -> tuple[pd.DatetimeIndex, pd.DataFrame, str]:
    """Pull the time column (or a DatetimeIndex) out of ``frame``; return index, data columns, its name."""
    if time_col is None and isinstance(frame.index, pd.DatetimeIndex):
        return frame.index, frame.reset_index(drop=True), frame.index.name or "index"
    if time_col is None:
        found = [c for c in frame.columns if str(c).lower() in TIME_COLUMN_NAMES]
        if not found:
            raise DataError(
                f"no time column: expected one named {' / '.join(TIME_COLUMN_NAMES)} or time_col=...; "
                f"got columns {list(frame.columns)}"
            )
        time_col = found[0]
    if time_col not in frame.columns:
        raise DataError(f"time column {time_col!r} not found; the data has columns {list(frame.columns)}")
    raw = frame[time_col]
    parsed = pd.to_datetime(raw.replace("", None), errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"time column {time_col!r}: row {i + 1} holds {raw.iloc[i]!r}, which is not a timestamp "
            f"({len(bad)} such rows)"
        )
    return pd.DatetimeIndex(parsed), frame.drop(columns=[time_col]).reset_index(drop=True), time_col


def check_regular(index: pd.DatetimeIndex, reindex: bool = False) -> tuple[pd.DatetimeIndex, pd.DateOffset]:
    """Return ``(grid, step)``: the regular grid the series lives on, and one step of it.

    Timestamps must be strictly increasing. With ``reindex=False`` they must already be regular;
    with ``reindex=True`` missing timestamps of the most common step are inserted (their values
    become missing and go through the fill policy). Raises :class:`DataError` saying where.
    """
    if len(index) < 2:
        raise DataError(f"a series needs at least 2 timestamps to define a time step; got {len(index)}")
    index = index.as_unit("ns")  # pandas may parse to s or us; the step arithmetic below is in ns
    order = np.diff(index.asi8)
    if (order <= 0).any():
        i = int(np.flatnonzero(order <= 0)[0]) + 1
        raise DataError(
            f"timestamps must be strictly increasing: row {i + 1} ({index[i]}) follows row {i} "
            f"({index[i - 1]}); sort the data and remove duplicate timestamps"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        freq = pd.infer_freq(index) if len(index) >= 3 else None
    if freq is not None:
        return index, pd.tseries.frequencies.to_offset(freq)
    values, counts = np.unique(order, return_counts=True)
    usual = pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")
    step = pd.tseries.frequencies.to_offset(usual)
    grid = pd.date_range(index[0], index[-1], freq=step)
    if reindex and index.isin(grid).all():
        return grid, step
    i = int(np.flatnonzero(order != usual.value)[0]) + 1
    hint = (
        "the timestamps do not sit on one grid, so reindexing cannot fix it"
        if reindex
        else "resample the data to a regular grid, or pass reindex=True to insert missing timestamps"
    )
    raise DataError(
        f"irregular time index: row {i + 1} ({index[i]}) comes {pd.Timedelta(int(order[i - 1]), unit='ns')} "
        f"after row {i} ({index[i - 1]}) but the usual step is {usual} "
        f"({int((order != usual.value).sum())} of {len(order)} steps differ); {hint}"
    )


def _numeric(frame: pd.DataFrame, columns: list[str], index: pd.DatetimeIndex, fill: str) -> tuple[np.ndarray, dict]:
    """Convert ``columns`` to float, report bad cells by row and timestamp, fill them if asked."""
    out = np.empty((len(frame), len(columns)), np.float64)
    filled = {}
    for j, name in enumerate(columns):
        raw = frame[name]
        numeric = pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw)
        text = None if numeric else raw.astype(str).str.strip()
        values = pd.to_numeric(raw.replace("", np.nan) if text is not None else raw, errors="coerce")
        values = values.astype(np.float64).to_numpy().copy()
        values[~np.isfinite(values)] = np.nan
        missing = np.isnan(values)
        if text is not None:
            # A cell that had text but did not parse is non-numeric; an empty or NA cell is missing.
            empty = text.str.lower().isin(["", "nan", "na", "null", "none"]).to_numpy()
            non_numeric = missing & ~empty & raw.notna().to_numpy()
        else:
            non_numeric = np.zeros_like(missing)
        if missing.any() and fill == "raise":
            kind = "a non-numeric value" if non_numeric.any() else "a missing value"
            i = int(np.flatnonzero(non_numeric if non_numeric.any() else missing)[0])
            raise DataError(
                f"column {name!r} has {kind} {raw.iloc[i]!r} at row {i + 1} ({index[i]}); "
                f"{int(missing.sum())} cell(s) in that column are missing or non-numeric. Clean the data, "
                f"or pass a fill policy (fill='interpolate', 'ffill' or 'zero'; CLI --fill)"
            )
        if missing.all():
            raise DataError(f"column {name!r} has no numeric value at all; it cannot be filled")
        if missing.any():
            series = pd.Series(values)
            if fill == "interpolate":
                series = series.interpolate(limit_direction="both")
            elif fill == "ffill":
                series = series.ffill().bfill()  # leading gaps take the first observed value
            else:
                series = series.fillna(0.0)
            values = series.to_numpy()
            filled[name] = int(missing.sum())
        out[:, j] = values
    return out.astype(np.float32), filled


def load_series(
    source,
    *,
    targets=None,
    time_col: str | None = None,
    past_covariates=(),
    calendar: bool = True,
    fill: str = "raise",
    reindex: bool = False,
) -> TimeSeries:
    """Load and validate a series from a CSV path or a DataFrame.

    Args:
        source: path to a CSV file with a header, or a DataFrame (a DatetimeIndex counts as the
            time column when ``time_col`` is None).
        targets: column name or list of names to forecast; None = every column that is neither
            the time column nor a past covariate.
        time_col: the timestamp column; None looks for date/time/timestamp/datetime/ds.
        past_covariates: columns observed only up to the forecast origin (inputs, never targets).
        calendar: derive calendar features from the timestamps (known in the future).
        fill: what to do with missing or non-numeric cells: "raise" (default), "interpolate"
            (linear; the ends take the nearest value), "ffill" (last observation carried forward)
            or "zero".
        reindex: insert timestamps missing from a regular grid (they become missing values).
    """
    if fill not in FILL_POLICIES:
        raise DataError(f"fill must be one of {FILL_POLICIES}; got {fill!r}")
    frame = _read(source)
    index, frame, time_name = _time_index(frame, time_col)
    target_names = [targets] if isinstance(targets, str) else list(targets or [])
    past_names = [past_covariates] if isinstance(past_covariates, str) else list(past_covariates)
    for role, names in (("target", target_names), ("past covariate", past_names)):
        for name in names:
            if name not in frame.columns:
                raise DataError(
                    f"{role} column {name!r} not found; the data has columns {[time_name, *frame.columns]}"
                )
    if not target_names:
        target_names = [c for c in frame.columns if c not in past_names]
    if not target_names:
        raise DataError(f"no target column: the data has only {[time_name, *frame.columns]}")
    overlap = set(target_names) & set(past_names)
    if overlap:
        raise DataError(f"columns {sorted(overlap)} cannot be both targets and past covariates")
    grid, step = check_regular(index, reindex=reindex)
    if len(grid) != len(index):
        frame = frame.set_index(index).reindex(grid).reset_index(drop=True)
    target, filled = _numeric(frame, target_names, grid, fill)
    past, filled_past = _numeric(frame, past_names, grid, fill)
    return TimeSeries(
        index=grid, target=target, past=past.reshape(len(grid), len(past_names)),
        target_names=[str(n) for n in target_names], past_names=[str(n) for n in past_names],
        step=step, use_calendar=calendar, filled={**filled, **filled_past},
    )
