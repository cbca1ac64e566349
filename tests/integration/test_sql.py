"""SQL source and sink on a real SQLite database: train from a query, forecast into a
table (rows replaced in one transaction), clear errors that never show the URL."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from deepcast.features.errors import ConfigError
from deepcast.flows.flows import batch_forecast, train_pipeline
from deepcast.pipelines.config import parse_config
from deepcast.pipelines.forecast import FORECAST_COLUMNS
from tests.conftest import pipeline_dict
from tests.integration.conftest import subprocess_env

pytestmark = pytest.mark.integration

QUERY = "SELECT unique_id, ds, y FROM sales WHERE y IS NOT NULL"


def _database(tmp_path, retail_csv) -> str:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        pd.read_csv(retail_csv).to_sql("sales", conn, index=False)
    return f"sqlite:///{db}"


def _pipeline(tmp_path, retail_csv, query=QUERY, name="it-sql"):
    raw = pipeline_dict(retail_csv, name=name,
                        models=[{"type": "seasonal_naive"}, {"type": "linear"}])
    raw["data"] = {"sql": {"query": query}, "freq": "MS", "season_length": 12}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_train_from_a_query_and_forecast_into_a_table(prefect_harness, store, tmp_path,
                                                      retail_csv, monkeypatch):
    url = _database(tmp_path, retail_csv)
    monkeypatch.setenv("DEEPCAST_DB_URL", url)
    pipeline = _pipeline(tmp_path, retail_csv)
    summary = train_pipeline(pipeline=str(pipeline))
    assert summary.n_series == 6 and summary.decision.promoted

    out = batch_forecast(pipeline=str(pipeline), output="sql://forecasts")
    assert out.rows == 36
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        table = pd.read_sql_query("SELECT * FROM forecasts", conn)
    assert list(table.columns) == FORECAST_COLUMNS and len(table) == 36
    # a second forecast replaces the rows (one transaction), it does not append
    batch_forecast(pipeline=str(pipeline), output="sql://forecasts")
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        assert pd.read_sql_query("SELECT COUNT(*) AS n FROM forecasts", conn)["n"][0] == 36


def _validate(pipeline, cwd, **env):
    return subprocess.run([sys.executable, "-m", "deepcast", "validate", str(pipeline)],
                          capture_output=True, text=True, cwd=cwd,
                          env=subprocess_env(**env), timeout=300)


def test_sql_errors_are_clear_and_hide_the_url(tmp_path, retail_csv):
    url = _database(tmp_path, retail_csv)
    env = subprocess_env()
    env.pop("DEEPCAST_DB_URL", None)
    done = subprocess.run([sys.executable, "-m", "deepcast", "validate",
                           str(_pipeline(tmp_path, retail_csv))], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 2 and "DEEPCAST_DB_URL is not set" in done.stderr

    bad = _pipeline(tmp_path, retail_csv, query="SELECT * FROM no_such_table", name="bad")
    done = _validate(bad, tmp_path, DEEPCAST_DB_URL=url)
    assert done.returncode == 3 and "no such table: no_such_table" in done.stderr
    assert url not in done.stderr + done.stdout and "Traceback" not in done.stderr

    secret = "sqlite:////nonexistent/dir/x.db"
    done = _validate(_pipeline(tmp_path, retail_csv), tmp_path, DEEPCAST_DB_URL=secret)
    assert done.returncode == 3 and secret not in done.stderr + done.stdout

    done = _validate(_pipeline(tmp_path, retail_csv), tmp_path, DEEPCAST_DB_URL=url)
    assert done.returncode == 0, done.stderr[-2000:]


def test_at_most_one_data_source(retail_csv):
    """A file or a query, not both; neither is a config for data passed with each call (the
    Python API's frames, --data), and reading it without data says so."""
    from deepcast.pipelines.ingest import ingest

    raw = pipeline_dict(retail_csv)
    raw["data"]["sql"] = {"query": QUERY}
    with pytest.raises(ConfigError, match="give one data source: .* not both"):
        parse_config(raw)
    del raw["data"]["path"], raw["data"]["sql"]
    cfg = parse_config(raw)
    with pytest.raises(ConfigError, match="names no data source .* no data was passed"):
        ingest(cfg.data)
    assert len(ingest(cfg.data, retail_csv)) == len(pd.read_csv(retail_csv))
    raw["data"]["sql"] = {"query": QUERY, "url_env": "not a name"}
    with pytest.raises(ConfigError, match="url_env"):
        parse_config(raw)


def test_a_table_name_in_other_case_is_sqlites_table(tmp_path, retail_csv, monkeypatch):
    """SQLite matches table names without case: sql://FC replaces the rows of table fc,
    without pandas' raw "not found exactly as such" warning (before: printed)."""
    import warnings

    from deepcast.pipelines.sql import write_table

    url = _database(tmp_path, retail_csv)
    monkeypatch.setenv("DEEPCAST_DB_URL", url)
    frame = pd.DataFrame({"unique_id": ["a", "b"], "yhat": [1.0, 2.0]})
    write_table(frame.iloc[:1], "sql://fc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_table(frame, "sql://FC")
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        assert pd.read_sql_query("SELECT * FROM fc", conn)["yhat"].tolist() == [1.0, 2.0]
