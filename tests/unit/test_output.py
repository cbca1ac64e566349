"""Forecast files: spreadsheet formula injection is guarded in CSV output; files written
together change together."""

from __future__ import annotations

import pandas as pd
import pytest

from deepcast.pipelines.forecast import forecast_file, guard_formulas, write_atomic, write_files


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


def test_files_written_together_change_together(tmp_path):
    """The forecast and its report: every file to a temp first, renamed only when all are
    written; a failure anywhere leaves every previous file as it was and no temp file."""
    out, rep = tmp_path / "f.csv", tmp_path / "sub" / "r.html"
    out.write_bytes(b"previous\n")

    def boom(fh) -> None:
        fh.write(b"half")
        raise ValueError()

    def database_down() -> None:
        raise RuntimeError("db down")

    with pytest.raises(ValueError):
        write_files([forecast_file(_frame(), out), (rep, boom)])
    with pytest.raises(RuntimeError):
        write_files([forecast_file(_frame(), out), (rep, lambda fh: fh.write(b"ok"))],
                    before_rename=database_down)
    assert out.read_bytes() == b"previous\n" and not rep.exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["f.csv"]
    assert write_files([forecast_file(_frame(), out), (rep, lambda fh: fh.write(b"ok"))]) \
        == [out, rep]
    assert rep.read_bytes() == b"ok" and pd.read_csv(out)["unique_id"].iloc[1] == "'+A1"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["f.csv", "r.html"]


def test_a_failing_store_is_described_by_its_kind():
    """A local SQLite store is a file, not a server: its failure says so."""
    from deepcast.pipelines.tracking import store_failed

    local = store_failed("sqlite:////tmp/x/mlflow.db", OSError("disk I/O error"))
    assert "disk I/O error" in str(local) and "/tmp/x/mlflow.db" in local.hint
    assert "server" not in local.hint
    remote = store_failed("http://127.0.0.1:5055", ConnectionError("refused"))
    assert "MLflow server is running" in remote.hint


def test_an_output_under_a_file_is_refused_before_any_work(tmp_path):
    import pytest

    from deepcast.features.errors import ConfigError
    from deepcast.pipelines.forecast import check_output_path

    (tmp_path / "taken.csv").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_path(tmp_path / "taken.csv" / "sub" / "f.csv")
    assert check_output_path(tmp_path / "new" / "deeper" / "f.csv")  # made when written


def test_json_output_is_strict():
    """`--json` is RFC 8259 JSON: a metric that could not be measured (NaN, e.g. the 95 %
    coverage of a backtest with too few windows) is null, not a bare NaN that strict
    parsers (JavaScript's JSON.parse) reject."""
    import json

    import numpy as np

    from deepcast.flows.commands import _dumps

    text = _dumps({"rows": [{"conformal_coverage_95": float("nan"), "mase": np.float64(0.9),
                             "skill": float("-inf")}], "n": (1, 2)})
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"rows": [{"conformal_coverage_95": None, "mase": 0.9,
                                          "skill": None}], "n": [1, 2]}
