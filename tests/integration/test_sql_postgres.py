"""The SQL source and ``--output sql://table`` on a real PostgreSQL server (Debian's
binaries, started on 127.0.0.1 by the test; skipped where they are not installed)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from deepcast.flows.flows import batch_forecast, train_pipeline
from deepcast.pipelines.forecast import FORECAST_COLUMNS
from tests.conftest import pipeline_dict
from tests.integration.test_sql import QUERY
from tests.servers import postgres_missing, postgres_server

MISSING = postgres_missing()
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg", reason="the psycopg driver is in the dev extra")
    with postgres_server() as url:
        yield url


@pytest.mark.slow
def test_train_from_postgres_and_forecast_into_a_table(prefect_harness, store, tmp_path,
                                                       retail_csv, postgres_url, monkeypatch):
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    frame = pd.read_csv(retail_csv, parse_dates=["ds"])
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA shop"))
        frame.to_sql("sales", conn, index=False)
    monkeypatch.setenv("DEEPCAST_DB_URL", postgres_url)
    raw = pipeline_dict(retail_csv, name="it-pg",
                        models=[{"type": "naive"}, {"type": "seasonal_naive"}])
    raw["data"] = {"sql": {"query": QUERY}, "freq": "MS", "season_length": 12}
    pipeline = tmp_path / "it-pg.yaml"
    pipeline.write_text(yaml.safe_dump(raw, sort_keys=False))
    summary = train_pipeline(pipeline=str(pipeline))
    assert summary.n_series == 6 and summary.n_rows == len(frame)
    assert summary.decision.promoted

    for _ in range(2):  # the second forecast replaces the rows, in one transaction
        out = batch_forecast(pipeline=str(pipeline), output="sql://shop.forecasts")
        assert out.rows == 36
        with engine.connect() as conn:
            table = pd.read_sql_query(text("SELECT * FROM shop.forecasts ORDER BY 1, 2"), conn)
            kind = conn.execute(text(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = 'shop' "
                "AND table_name = 'forecasts' AND column_name = 'ds'")).scalar()
        assert list(table.columns) == FORECAST_COLUMNS and len(table) == 36
        assert kind.startswith("timestamp") and table["yhat"].notna().all()

    # into a folder: PostgreSQL counts the rows per series, each shard reads its series
    raw["execution"] = {"shard_rows": 200}
    pipeline.write_text(yaml.safe_dump(raw, sort_keys=False))
    folder = batch_forecast(pipeline=str(pipeline), output=str(tmp_path / "tonight"))
    assert (folder.rows, folder.series) == (36, 6)
    parts = pd.read_parquet(tmp_path / "tonight").sort_values(["unique_id", "ds"])
    assert len(list((tmp_path / "tonight").glob("part-*.parquet"))) == 3
    assert parts["yhat"].tolist() == pytest.approx(table["yhat"].tolist())
    engine.dispose()
