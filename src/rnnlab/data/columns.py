"""CSV tables from users: read them with clear errors, and never mistake an index for a feature.

:func:`read_csv_file` turns every way a CSV can be unusable (missing, unreadable, empty, not text,
malformed) into a :class:`~rnnlab.errors.DataError` that names the file. :func:`index_like_columns`
finds columns that number rows or time steps rather than measure anything — by name (``index``,
``time``, ``t``, ``step``, ``Unnamed: 0`` …) or by value (within each group, exactly ``0, 1, 2, …``
or ``1, 2, 3, …``) — so that default feature and target choices leave them out and say so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rnnlab.errors import DataError

__all__ = ["read_csv_file", "index_like_columns", "INDEX_NAMES"]

INDEX_NAMES = {"index", "idx", "row", "rownum", "t", "step", "timestep", "time_step", "time", "timestamp",
               "date", "datetime", "ds", "frame", "position", "pos", "unnamed: 0"}


def read_csv_file(path, *, what: str = "CSV file", **options) -> pd.DataFrame:
    """``pandas.read_csv(path, **options)`` with one clear error for each way the file can be unusable."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    if not path.is_file():
        raise DataError(f"expected a {what} at {path}; it is a directory")
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except PermissionError:
        raise DataError(f"cannot read the {what} {path}: permission denied") from None
    if b"\x00" in head:
        raise DataError(f"the {what} {path} is a binary file (it holds NUL bytes), not CSV text")
    try:
        frame = pd.read_csv(path, **options)
    except PermissionError:
        raise DataError(f"cannot read the {what} {path}: permission denied") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"the {what} {path} is empty; expected a header line and rows") from None
    except UnicodeDecodeError as error:
        raise DataError(f"the {what} {path} is not UTF-8 text (byte {error.start}); is it a binary file?") from None
    except (pd.errors.ParserError, ValueError) as error:
        raise DataError(f"cannot parse the {what} {path} as CSV: {' '.join(str(error).split())}") from None
    if frame.empty:
        raise DataError(f"the {what} {path} has a header but no rows")
    return frame


def _is_counter(values: np.ndarray) -> bool:
    if len(values) < 2 or not np.issubdtype(values.dtype, np.number):
        return False
    return bool(np.array_equal(values, np.arange(len(values))) or np.array_equal(values, np.arange(1, len(values) + 1)))


def index_like_columns(frame: pd.DataFrame, columns, *, group: str | None = None) -> dict[str, str]:
    """Which of ``columns`` number rows or steps, with the reason: ``{"t": "named like a time index"}``.

    With ``group`` (a sequence-id column) a counter restarts in each sequence.
    """
    found: dict[str, str] = {}
    for column in columns:
        if str(column).strip().lower() in INDEX_NAMES:
            found[column] = "named like an index or time column"
            continue
        series = pd.to_numeric(frame[column], errors="coerce")
        if series.isna().any():
            continue
        if group is None:
            counter = _is_counter(series.to_numpy())
        else:
            parts = [series.loc[rows].to_numpy() for rows in frame.groupby(group, sort=False).groups.values()]
            counter = all(_is_counter(p) or len(p) == 1 for p in parts) and any(len(p) > 1 for p in parts)
        if counter:
            found[column] = "counts 0, 1, 2, ... (or 1, 2, 3, ...) " + ("within each sequence" if group else "down the rows")
    return found
