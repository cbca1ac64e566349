"""Forecast files: spreadsheet formula injection is guarded in CSV output."""

from __future__ import annotations

import pandas as pd

from deepcast.pipelines.forecast import guard_formulas, write_atomic


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"unique_id": ["=HYPERLINK(\"http://x\")", "+A1", "-A1+1", "@SUM(A1)",
                                       "\tx", "-12", "store 7", None],
                         "yhat": [1.0, -2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]})


def test_text_cells_that_start_a_formula_are_quoted():
    out = guard_formulas(_frame())
    assert out["unique_id"].tolist()[:5] == ["'=HYPERLINK(\"http://x\")", "'+A1", "'-A1+1",
                                             "'@SUM(A1)", "'\tx"]
    assert out["unique_id"].tolist()[5:7] == ["-12", "store 7"]  # numbers and plain text
    assert out["unique_id"].isna().iloc[7]
    assert out["yhat"].tolist() == _frame()["yhat"].tolist()  # numbers are never touched


def test_csv_is_guarded_by_default_and_parquet_keeps_values(tmp_path):
    write_atomic(_frame(), tmp_path / "f.csv")
    assert pd.read_csv(tmp_path / "f.csv")["unique_id"].iloc[1] == "'+A1"
    write_atomic(_frame(), tmp_path / "raw.csv", formula_guard=False)
    assert pd.read_csv(tmp_path / "raw.csv")["unique_id"].iloc[1] == "+A1"
    write_atomic(_frame(), tmp_path / "f.parquet")
    assert pd.read_parquet(tmp_path / "f.parquet")["unique_id"].iloc[1] == "+A1"
