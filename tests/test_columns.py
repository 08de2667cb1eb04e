"""rnnlab.data.columns: CSV errors that name the file, and index/time columns never taken as features."""
import numpy as np
import pandas as pd
import pytest

from rnnlab.data.columns import index_like_columns, read_csv_file
from rnnlab.data.labelled_sequences import load_sequence_csv
from rnnlab.errors import DataError


def test_counters_and_index_names_are_found_per_sequence():
    frame = pd.DataFrame({"id": [1, 1, 1, 2, 2], "step": [9, 9, 9, 9, 9], "t": [0, 1, 2, 0, 1],
                          "x": [0.3, 0.1, 0.5, 0.2, 0.9], "count": [1, 2, 3, 1, 2], "level": [0, 1, 2, 5, 6]})
    found = index_like_columns(frame, ["step", "t", "x", "count", "level"], group="id")
    assert set(found) == {"step", "t", "count"}  # "level" does not restart in each sequence; "x" measures
    assert "within each sequence" in found["count"] and "named like" in found["step"]
    whole = pd.DataFrame({"Unnamed: 0": range(5), "row_no": range(5), "y": [3.0, 1, 4, 1, 5]})
    assert set(index_like_columns(whole, ["Unnamed: 0", "row_no", "y"])) == {"Unnamed: 0", "row_no"}


def test_default_features_leave_out_the_time_index_and_say_so(tmp_path):
    rows = [{"id": s, "label": "ab"[s % 2], "t": t, "x": float(np.sin(s + t))} for s in range(4) for t in range(5)]
    pd.DataFrame(rows).to_csv(tmp_path / "a.csv", index=False)
    data = load_sequence_csv(tmp_path / "a.csv", id_col="id", label_col="label")
    assert data.feature_names == ["x"] and data.n_features == 1 and "t" in data.excluded
    assert data.ids == [0, 1, 2, 3]
    explicit = load_sequence_csv(tmp_path / "a.csv", id_col="id", label_col="label", features=["t", "x"])
    assert explicit.n_features == 2 and explicit.excluded == {}  # named columns are taken as given


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\xff\xfe\x00\x01binary\x00", "is a binary file"),
    ("naïve,x\n1,2\n".encode("latin-1"), "not UTF-8"),
    (b"id,x\n", "no rows"),
])
def test_unusable_csv_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_csv_file(path)
    with pytest.raises(DataError, match="is a directory|not found"):
        read_csv_file(tmp_path)
