"""``metrics.csv``: one row per logged event, columns grow as new metrics appear.

Columns start with ``step, epoch, split, loss``; any other key becomes a column the first time it is
seen (the file is then rewritten once with the wider header, atomically). Rows are flushed on
every append, so a killed run keeps its log. :meth:`truncate_after` drops rows written after a
checkpoint, so a resumed run does not log the same steps twice.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from rnnlab.io import atomic_write_bytes

FIRST_COLUMNS = ["step", "epoch", "split", "loss"]


class MetricsLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.columns = list(FIRST_COLUMNS)
        if self.path.exists():
            with open(self.path, newline="") as handle:
                header = next(csv.reader(handle), None)
            if header:
                self.columns = header

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def _rewrite(self, rows: list[dict]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.path, buffer.getvalue().encode())

    def append(self, row: dict) -> None:
        new = [key for key in row if key not in self.columns]
        if new or not self.path.exists():
            rows = self.read()
            self.columns += new
            self._rewrite(rows)
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def truncate_after(self, step: int) -> None:
        """Drop rows with a step greater than ``step``."""
        rows = self.read()
        kept = [r for r in rows if int(float(r.get("step") or 0)) <= step]
        if len(kept) != len(rows):
            self._rewrite(kept)
