"""A forecast into a folder (``--output NAME`` without an extension): read, validated and
forecast shard by shard (each series whole in one shard), one Parquet file per shard,
committed atomically with a manifest; the same rows as the forecast into one file, in this
process and on a real Dask LocalCluster (a worker killed mid-run included)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import deepcast
import deepcast.flows.flows  # noqa: F401  Prefect first: see below
from deepcast.features.errors import ConfigError, ValidationFailed
from deepcast.pipelines.forecast_folder import MANIFEST
from tests.conftest import mlflow_store, pipeline_dict

pytestmark = pytest.mark.integration
# Prefect reconfigures logging when it is first imported and closes the handlers made before
# it: TensorFlow's absl handler (made by the training fixture) would close the stream it
# holds, pytest's capture of that moment, and the next report of this file would fail

MODELS = [{"type": "naive"}, {"type": "mlp", "hidden_size": 8}]
KEYS = ["unique_id", "ds"]


def _config(source: Path, **execution) -> dict:
    return pipeline_dict(source, name="it-shards", models=MODELS,
                         execution={"shard_rows": 200, **execution},
                         evaluation={"test_size": 6, "metric": "mase", "plots": False,
                                     "selection": "holdout", "conformal": [80]})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, retail_csv_path):
    """The retail slice as a hive-partitioned Parquet dataset, trained once."""
    import os

    root = tmp_path_factory.mktemp("shards")
    cwd = Path.cwd()
    os.chdir(root)  # reports under root/mlruns
    df = pd.read_csv(retail_csv_path)
    for i, (_, part) in enumerate(df.groupby("unique_id")):
        folder = root / "sales" / f"bucket={i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / f"p{i}.parquet", index=False)
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_store(root / "mlflow.db")
    deepcast.train(_config(root / "sales"), report_dir=root / "validation")
    one = deepcast.forecast(_config(root / "sales"), model=1, output=root / "one.parquet",
                            report=None).forecast
    yield root, one.sort_values(KEYS, ignore_index=True)
    os.chdir(cwd)
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture(scope="module")
def retail_csv_path() -> Path:
    from tests.conftest import DATA

    return DATA / "aus_retail_small.csv"


def _read(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder).sort_values(KEYS, ignore_index=True)


def test_folder_equals_one_file_and_is_replaced_whole(trained, tmp_path):
    root, one = trained
    out = tmp_path / "tonight"
    result = deepcast.forecast(_config(root / "sales"), model=1, output=out)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["shards"] == 3 and len(manifest["parts"]) == 3  # 6 series x 96 rows
    assert result.rows == manifest["rows"] == len(one) and result.series == 6
    assert result.forecast is None and result.output == str(out)
    pd.testing.assert_frame_equal(_read(out), one[_read(out).columns], check_exact=True)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, *(
        f"part-{i:05d}.parquet" for i in range(3))]
    # the next night replaces the folder whole; no staging or set-aside folder is left
    deepcast.forecast(_config(root / "sales", shard_rows=10_000), model=1, output=out)
    assert len(json.loads((out / MANIFEST).read_text())["parts"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["tonight"]
    # a folder deepcast did not write is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="did not write"):
        deepcast.forecast(_config(root / "sales"), model=1, output=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_query_is_sharded_in_the_database(trained, tmp_path, monkeypatch):
    """data.sql: the database counts the rows per series for the plan and each shard reads
    the query filtered to its series (IN lists of at most IN_CHUNK IDs: 1 here, so every
    shard of 2 series runs two); the same rows as the forecast into one file."""
    import sqlite3

    from deepcast.pipelines import sql

    root, one = trained
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        pd.read_parquet(root / "sales").drop(columns="bucket").to_sql("sales", conn,
                                                                      index=False)
    monkeypatch.setenv("SHOP_DB", f"sqlite:///{db}")
    monkeypatch.setattr(sql, "IN_CHUNK", 1)
    cfg = _config(root / "sales")
    cfg["data"] = {"sql": {"query": "SELECT * FROM sales WHERE y IS NOT NULL;",
                           "url_env": "SHOP_DB"}, "freq": "MS", "season_length": 12}
    out = tmp_path / "tonight"
    result = deepcast.forecast(cfg, model=1, output=out)
    assert json.loads((out / MANIFEST).read_text())["shards"] == 3
    assert result.rows == len(one) and result.series == 6
    pd.testing.assert_frame_equal(_read(out), one[_read(out).columns], check_exact=True)
    query = "SELECT * FROM sales -- a comment ends the query"
    plan = sql.plan_query(query, "unique_id", 200, "SHOP_DB")
    assert [s.rows for s in plan] == [192, 192, 192]
    assert [len(sql.read_query_shard(query, s, "unique_id", "SHOP_DB")) for s in plan] == [
        192, 192, 192]
    with sqlite3.connect(db) as conn:  # a row with no series ID goes with shard 1
        conn.execute("INSERT INTO sales (unique_id, ds, y) VALUES (NULL, '2019-01-01', 1.0)")
    plan = sql.plan_query(query, "unique_id", 200, "SHOP_DB")
    assert [(s.rows, s.nulls) for s in plan] == [(193, True), (192, False), (192, False)]
    assert len(sql.read_query_shard(query, plan[0], "unique_id", "SHOP_DB")) == 193


def test_a_failing_shard_is_named_and_nothing_is_committed(trained, tmp_path):
    root, _ = trained
    bad = tmp_path / "bad"
    df = pd.read_parquet(root / "sales").astype({"bucket": str})
    last = sorted(df["unique_id"].unique())[-1]
    df = pd.concat([df, df[df["unique_id"] == last].tail(1)])  # a duplicated (id, ds)
    df.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(ValidationFailed) as failed:
        deepcast.forecast(_config(tmp_path / "bad.parquet"), model=1, output=bad,
                          report=deepcast.ForecastReport(report_dir=tmp_path / "report"))
    summary = failed.value.report.summary()
    assert "1 of 3 shards failed validation: shard 3/3" in summary and last in summary
    assert not bad.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")
                                 ] == []
    saved = json.loads((tmp_path / "report" / "validation.json").read_text())
    assert not saved["success"] and saved["n_series"] == 6


@pytest.mark.slow
def test_dask_workers_forecast_the_shards_and_survive_a_killed_worker(trained, tmp_path):
    """Runner dask: a local cluster of 2 worker processes (memory-limited) forecasts the
    shards, one series each; a worker is killed once the first shard file appears, and
    the folder still has every row exactly once, equal to the forecast into one file."""
    import psutil

    root, one = trained
    cfg = _config(root / "sales", runner="dask", workers=2, shard_rows=1,
                  memory_limit="1.5GiB")
    out = tmp_path / "dask"
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            staging = list(tmp_path.glob(".dask.staging-*/part-*.parquet"))
            # the nannies run in this process; each worker is a spawned child of it
            workers = [p for p in psutil.Process().children()
                       if "spawn_main" in " ".join(p.cmdline())]
            if staging and workers:
                workers[0].kill()
                killed.append(workers[0].pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    result = deepcast.forecast(cfg, model=1, output=out, orchestrator="prefect")
    killer.join(timeout=5)
    assert killed, "no worker was killed: the run ended before the first shard file"
    got = _read(out)
    assert not got.duplicated(KEYS).any() and result.rows == len(one)
    pd.testing.assert_frame_equal(got, one[got.columns], check_exact=True)


@pytest.mark.slow
def test_validate_on_dask_checks_every_shard_in_a_worker(trained, tmp_path, capfd):
    """Runner dask: ``validate`` of a Parquet source runs shard by shard in 2 worker
    processes; the merged report counts what one process counts and names a failing
    shard; the CLI exits 3 on it."""
    import yaml

    from deepcast.flows.cli import main

    root, _ = trained
    whole = deepcast.validate(_config(root / "sales"), report_dir=tmp_path / "whole")
    dask = {"runner": "dask", "workers": 2, "memory_limit": "1.5GiB"}
    good = deepcast.validate(_config(root / "sales", **dask), report_dir=tmp_path / "good",
                             orchestrator="prefect")
    assert good.success and good.clean is None
    assert (good.report.n_rows, good.report.n_series) == (whole.report.n_rows, 6)
    assert [(r.expectation, r.column, r.description) for r in good.report.results] == [
        (r.expectation, r.column, r.description) for r in whole.report.results]
    assert any("validated in 3 shards" in n for n in good.report.notes)
    assert list((tmp_path / "good").glob("shard-*/data_docs")) == []  # docs: failing only
    df = pd.read_parquet(root / "sales").astype({"bucket": str})
    last = sorted(df["unique_id"].unique())[-1]
    no_id = df.head(1).assign(unique_id=None)  # read with shard 1, as one process reads it
    pd.concat([df, df[df["unique_id"] == last].tail(1), no_id]).to_parquet(
        tmp_path / "bad.parquet", index=False)  # and a duplicated (id, ds) in shard 3
    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text(yaml.safe_dump(_config(tmp_path / "bad.parquet", **dask)))
    capfd.readouterr()
    assert main(["validate", str(pipeline), "--report-dir", str(tmp_path / "bad")]) == 3
    err = capfd.readouterr().err
    assert "2 of 3 shards failed validation: shard 1/3" in err and "; shard 3/3" in err
    assert last in err and "unique_id must not be empty" in err
    saved = json.loads((tmp_path / "bad" / "validation.json").read_text())
    assert not saved["success"] and saved["n_series"] == 6
    assert (tmp_path / "bad" / "shard-00002" / "data_docs").is_dir()  # the failing shard's
    # each example names its shard (rows count within it), and both failing shards' Data
    # Docs are printed (before: only the first's)
    assert f"of shard 3/3, series {last}" in err and "of shard 1/3, series" in err
    assert "Data Docs of the other failing shards:" in err and "shard-00002" in err

