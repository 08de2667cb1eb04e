"""Real series that ship with a dependency (statsmodels), so forecasting works with no download.

``co2``: weekly atmospheric CO2 at Mauna Loa, 1958-03-29 .. 2001-12-29 (2284 Saturdays, ppm),
from ``statsmodels.datasets.co2``. 59 weeks have no measurement; they are filled explicitly by
linear interpolation in time (the count is kept in ``TimeSeries.filled``), never dropped,
which would break the weekly grid. Seasonal period 52 weeks.

``sunspots``: yearly mean sunspot numbers 1700 .. 2008 (309 values), from
``statsmodels.datasets.sunspots``; no gaps. Its cycle is about 11 years (not exact), used as the
seasonal-naive period.
"""
from __future__ import annotations

import pandas as pd

from rnnlab.data.series import TimeSeries, load_series
from rnnlab.errors import DataError

SEASONAL_PERIOD = {"co2": 52, "sunspots": 11}


def builtin_frame(name: str) -> pd.DataFrame:
    """The raw data as a DataFrame with a ``date`` column and one value column (gaps left as NaN)."""
    if name == "co2":
        from statsmodels.datasets import co2

        data = co2.load_pandas().data  # DatetimeIndex W-SAT, column "co2"
        return pd.DataFrame({"date": data.index, "co2": data["co2"].to_numpy()})
    if name == "sunspots":
        from statsmodels.datasets import sunspots

        data = sunspots.load_pandas().data  # YEAR (float), SUNACTIVITY
        years = data["YEAR"].astype(int)
        return pd.DataFrame({"date": pd.to_datetime(years.astype(str) + "-12-31"),
                             "sunspots": data["SUNACTIVITY"].to_numpy()})
    raise DataError(f"unknown built-in series {name!r}; expected one of {sorted(SEASONAL_PERIOD)}")


def load_builtin(name: str = "co2", *, calendar: bool = True) -> TimeSeries:
    """Load a built-in series as a validated :class:`TimeSeries` (CO2's gaps interpolated)."""
    fill = "interpolate" if name == "co2" else "raise"
    return load_series(builtin_frame(name), targets=name, time_col="date", calendar=calendar, fill=fill)
